"""Errors as RFC 9457 ``application/problem+json``.

Every error a client sees has a stable ``type`` URI (``/problems/<slug>`` on
the hub, documented in the OpenAPI document), a human ``title`` and ``detail``,
and never a stack trace. Raise :func:`problem` from a view.
"""

from __future__ import annotations

import logging
import sqlite3
from http import HTTPStatus
from typing import Any, NoReturn

import orjson
from apiflask import HTTPError
from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"
TYPE_BASE = "/problems/"

# Default slugs for errors raised by Flask/Werkzeug or the validation layer.
_STATUS_SLUGS = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    410: "gone",
    413: "payload-too-large",
    415: "unsupported-media-type",
    416: "range-not-satisfiable",
    422: "validation-failed",
    429: "too-many-requests",
    500: "internal-error",
    503: "unavailable",
}


def problem(
    status: int,
    slug: str,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> NoReturn:
    """Abort the request with a problem document."""
    raise HTTPError(status, message=title, detail=detail, headers=headers, extra_data={"type": TYPE_BASE + slug, **extra})


def _body_for(error: HTTPError) -> dict[str, Any]:
    extra = dict(error.extra_data or {})
    slug_type = extra.pop("type", None) or TYPE_BASE + _STATUS_SLUGS.get(error.status_code, "error")
    detail = error.detail
    errors = None
    if error.status_code == 422 and isinstance(detail, dict):
        # Validation errors from the schema layer: keep them machine-readable.
        errors = detail
        detail = "the request does not match the schema; see 'errors'"
    elif not isinstance(detail, str) or not detail:
        detail = error.message
    body: dict[str, Any] = {
        "type": slug_type,
        "title": error.message,
        "status": error.status_code,
        "detail": detail,
        "instance": request.path,
    }
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    return body


def problem_json(status: int, slug: str, detail: str, instance: str) -> bytes:
    """A problem document as :func:`problem_response` writes it, for code that answers without Flask
    (``edge.quiz.answer_endpoint``)."""
    body = {"type": TYPE_BASE + slug, "title": HTTPStatus(status).phrase, "status": status, "detail": detail, "instance": instance}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def problem_response(error: HTTPError) -> Response:
    body = _body_for(error)
    resp = Response(json.dumps(body, ensure_ascii=False), status=error.status_code, mimetype=PROBLEM_MIMETYPE)
    for key, value in (error.headers or {}).items():
        resp.headers[key] = value
    if error.status_code == 401:
        resp.headers.setdefault("WWW-Authenticate", 'Bearer realm="classroom-hub"')
    return resp


# Clearer words than Werkzeug's defaults for what tablets most often get wrong.
_DETAILS = {
    400: "the request could not be read (is the body valid JSON?)",
    404: "there is nothing at this address",
    405: "this address does not accept that method",
}


def _from_werkzeug(exc: HTTPException) -> Response:
    code = exc.code or 500
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    detail = _DETAILS.get(code, exc.description or exc.name)
    if code == 413:
        limit = request.max_content_length
        detail = f"the request body is larger than the {limit} bytes this endpoint accepts" if limit else "the request body is too large"
    return problem_response(HTTPError(code, message=exc.name, detail=detail, headers=headers))


_PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details; 'type' is stable, 422 responses add 'errors'.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "object"},
    },
}


def document_problems(spec: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI spec processor: every documented 4xx/5xx is ``application/problem+json``."""
    spec.setdefault("components", {}).setdefault("schemas", {})["Problem"] = _PROBLEM_SCHEMA
    problem_content = {PROBLEM_MIMETYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for ops in spec.get("paths", {}).values():
        for op in ops.values():
            if isinstance(op, dict) and op.get("security") and "401" in op.get("responses", {}):
                # Role checks answer 403; the generator does not document them.
                op["responses"].setdefault("403", {"description": "Signed in, but not allowed to do this"})
            if isinstance(op, dict) and "requestBody" in op:
                # Answered before the view runs (see app._install_request_hooks and MAX_CONTENT_LENGTH).
                op["responses"].setdefault("400", {"description": "The body could not be read"})
                op["responses"].setdefault("413", {"description": "The body is too large"})
                op["responses"].setdefault("415", {"description": "The body is not JSON"})
            for status, resp in (op.get("responses") or {}).items() if isinstance(op, dict) else ():
                if str(status)[:1] in ("4", "5"):
                    resp["content"] = dict(problem_content)
    for unused in ("HTTPError", "ValidationError"):
        spec["components"]["schemas"].pop(unused, None)
    return spec


BUSY_DETAIL = "the hub is busy; try again in a moment"
INTERNAL_ERROR_DETAIL = "the hub could not complete this request; it has been logged"


def install_error_handlers(app: Flask) -> None:
    app.error_processor(problem_response)  # type: ignore[attr-defined]
    # Replaces APIFlask's handler, which drops the description.
    app.register_error_handler(HTTPException, _from_werkzeug)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return _from_werkzeug(exc)
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            # busy_timeout ran out under a burst of writes: nothing was written,
            # and a retry moments later succeeds.
            log.warning("database busy", extra={"path": request.path, "method": request.method})
            return problem_response(
                HTTPError(503, message="Service Unavailable", detail=BUSY_DETAIL,
                          headers={"Retry-After": "1"}, extra_data={"type": TYPE_BASE + "busy"})
            )
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return problem_response(HTTPError(500, message="Internal Server Error", detail=INTERNAL_ERROR_DETAIL))
