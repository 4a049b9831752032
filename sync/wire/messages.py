"""The small JSON control messages: hello, ack, status, notice."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MESSAGE_VERSION = 1
NOTICE_KINDS = ("lesson_package", "roster", "timetable", "model", "firmware")


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class Hello(_Msg):
    """Hub -> district after (re)connecting: every event up to ``floor`` has left my outbox."""

    v: int = MESSAGE_VERSION
    floor: int = Field(ge=0)
    hub_seq: int = Field(ge=0, description="highest sequence number the hub has assigned")


class Ack(_Msg):
    """District -> hub.

    ``kind="batch"``: the batch ``first..last`` is committed (``ok``) or was
    quarantined (``rejected``; the hub sends that range again, rebuilt).
    ``kind="state"``: reply to hello; the district holds every event up to ``hwm``.
    """

    v: int = MESSAGE_VERSION
    kind: Literal["batch", "state"]
    status: Literal["ok", "rejected"] = "ok"
    first: int | None = None
    last: int | None = None
    duplicate: bool | None = None
    hwm: int | None = None
    reason: str | None = None


class Status(_Msg):
    v: int = MESSAGE_VERSION
    state: Literal["online", "offline"]
    at: float | None = None
    outbox_depth: int | None = None


class Notice(_Msg):
    """A file the district prepared. ``signature`` is Ed25519 (base64) over :func:`signed_bytes`."""

    v: int = MESSAGE_VERSION
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    kind: Literal["lesson_package", "roster", "timetable", "model", "firmware"]
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    url: str = Field(pattern=r"^https?://", max_length=2048)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    signature: str = Field(min_length=1, max_length=200)
    published_at: float | None = None


def signed_bytes(notice: Notice | dict[str, Any]) -> bytes:
    """The canonical bytes the district signs: every field except the signature and the URL.

    The URL is left out so a file can move between mirrors without re-signing;
    the hash binds the content, the kind and name bind what it is for.
    """
    data = notice.model_dump() if isinstance(notice, Notice) else dict(notice)
    fields = {k: data[k] for k in ("v", "id", "kind", "name", "size", "sha256")}
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
