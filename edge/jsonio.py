"""JSON in and out of every request, with orjson.

Flask's default provider runs the standard library's encoder; orjson writes the same
JSON (UTF-8, keys sorted, compact) in a fraction of the time, and reads request bodies
faster. Whatever orjson does not take the way Flask did falls back to Flask's own code,
so no response or request changes meaning:
- dates, datetimes and dataclasses go through Flask's ``default`` (RFC 822 dates, as before);
- integers beyond 64 bits, or any other value orjson refuses, are encoded by the stdlib;
- a float that is not a number is written as ``null`` (the stdlib wrote ``NaN``, which is
  not JSON and no tablet could parse);
- a body orjson refuses (e.g. a ``NaN`` literal, an integer beyond 64 bits) is parsed
  by the stdlib, which raises the same ``ValueError`` for truly broken JSON as before.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_OPTIONS_NEWLINE = _OPTIONS | orjson.OPT_APPEND_NEWLINE


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON provider, encoding and decoding with orjson when the result is the same."""

    def _encode(self, obj: Any, options: int) -> bytes | None:
        try:
            return orjson.dumps(obj, default=self.default, option=options)
        except TypeError:
            return None  # something orjson refuses; the stdlib path decides

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        # Indentation or other separators (the OpenAPI document, debug output) keep the stdlib.
        if not kwargs.keys() <= {"ensure_ascii"} or kwargs.get("ensure_ascii", self.ensure_ascii):
            return super().dumps(obj, **kwargs)
        data = self._encode(obj, _OPTIONS)
        return data.decode() if data is not None else super().dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        if kwargs:
            return super().loads(s, **kwargs)
        try:
            return orjson.loads(s)
        except orjson.JSONDecodeError:
            return json.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        if (self.compact is None and self._app.debug) or self.compact is False or self.ensure_ascii:
            return super().response(*args, **kwargs)
        obj = self._prepare_response_obj(args, kwargs)
        data = self._encode(obj, _OPTIONS_NEWLINE)
        if data is None:
            return super().response(*args, **kwargs)
        return self._app.response_class(data, mimetype=self.mimetype)


def compact(obj: Any) -> str:
    """``obj`` as compact JSON text (what the hub stores: events, answers), by orjson where it can.

    Insertion order is kept; what orjson refuses (an integer beyond 64 bits) is written by the stdlib.
    """
    try:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
