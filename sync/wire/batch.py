"""The batch envelope: how outbox events travel from a hub to the district.

One MQTT message = one batch::

    <header: one line of JSON>\\n<body: zstd frame of JSON lines, one event per line>

Header (schema ``v`` 1, see ``HISTORY`` below): district, school, hub, the
sequence range ``first..last`` the batch covers (every outbox sequence number in
that range that still existed when it was built is in it), ``count`` events,
``raw_bytes`` of the uncompressed body, ``sha256`` of the compressed body as sent,
``codec`` and the hub's clock at build time (informational only: a hub's clock
may be wrong, nothing on the district side depends on it).

Event line: ``{"seq", "id", "type", "schema", "at", "payload"}``, where ``id`` is
the producer-assigned event id (for ``xapi.statement`` events, the statement id).

The hash is checked before decompression and the decompressed size is bounded
by ``raw_bytes`` and the receiver's limit, so a corrupt or hostile message costs
the district nothing but a quarantine row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
import zstandard
from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION = 1
CODEC = "zstd"
# History of the envelope schema (bump SCHEMA_VERSION and add a line):
HISTORY = {1: "first version: JSON header line + zstd JSON-lines body"}

# zstd level 3: within a few percent of level 9's ratio on JSON at a fraction of the CPU.
_LEVEL = 3
_MAX_HEADER = 4096


class BatchError(ValueError):
    """The message is not a valid batch; ``reason`` is a short stable slug."""

    def __init__(self, reason: str, detail: str, header: dict[str, Any] | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.header = header or {}


class BatchHeader(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    v: int
    district: str = Field(min_length=1, max_length=64)
    school: str = Field(min_length=1, max_length=64)
    hub: str = Field(min_length=1, max_length=64)
    first: int = Field(ge=1)
    last: int = Field(ge=1)
    count: int = Field(ge=1)
    raw_bytes: int = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    codec: str
    created_at: float


class Event(NamedTuple):
    # A named tuple of plain values, built once per event of every hub of the
    # district. The parsed payload is not kept: thousands of live payload dicts
    # per batch cost more in allocation than parsing them (3x per event).
    seq: int
    id: str
    type: str
    schema: int
    at: float
    # The payload as compact JSON text (validated as a JSON object), as the district stores it.
    payload_json: str


def _event(line: bytes, number: int, header: dict[str, Any]) -> Event:
    # Checked by hand, not by a model, and parsed with orjson: this runs for every
    # event of every hub of the district, and it was most of the ingest's time
    # with the standard library's json and a validating model.
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise BatchError("schema", f"event {number} is not JSON", header) from None
    if type(obj) is not dict or obj.keys() != _EVENT_KEYS:
        raise BatchError("schema", f"event {number} must have exactly the keys {sorted(_EVENT_KEYS)}", header)
    seq, eid, type_, schema, at, payload = obj["seq"], obj["id"], obj["type"], obj["schema"], obj["at"], obj["payload"]
    # ``type(x) is int`` (not isinstance): JSON booleans must not pass as numbers.
    if not (type(seq) is int and seq >= 1 and type(schema) is int and schema >= 1):
        raise BatchError("schema", f"event {number}: seq and schema must be positive integers", header)
    if not (type(eid) is str and 0 < len(eid) <= 128 and type(type_) is str and 0 < len(type_) <= 128):
        raise BatchError("schema", f"event {number}: id and type must be strings of 1-128 characters", header)
    if (type(at) is not float and type(at) is not int) or type(payload) is not dict:
        raise BatchError("schema", f"event {number}: at must be a number and payload an object", header)
    return Event(seq, eid, type_, schema, float(at), orjson.dumps(payload).decode())


_EVENT_KEYS = frozenset({"seq", "id", "type", "schema", "at", "payload"})


@dataclass(frozen=True)
class Batch:
    header: BatchHeader
    events: list[Event]


def event_line(seq: int, event_id: str, type_: str, schema: int, payload_json: str, created_at: float) -> bytes:
    """One body line, built from the outbox row without re-parsing its payload (already JSON)."""
    return b'{"seq":%d,"id":%s,"type":%s,"schema":%d,"at":%s,"payload":%s}\n' % (
        seq, orjson.dumps(event_id), orjson.dumps(type_), schema, repr(float(created_at)).encode(), payload_json.encode()
    )


def compress(raw: bytes) -> bytes:
    # A content checksum in the frame as well: a second, codec-level integrity check.
    return zstandard.ZstdCompressor(level=_LEVEL, write_checksum=True).compress(raw)


def encode(district: str, school: str, hub: str, first: int, last: int, count: int, raw: bytes, created_at: float) -> bytes:
    """The MQTT payload of one batch whose body lines are ``raw``."""
    body = compress(raw)
    header = {
        "v": SCHEMA_VERSION,
        "district": district,
        "school": school,
        "hub": hub,
        "first": first,
        "last": last,
        "count": count,
        "raw_bytes": len(raw),
        "sha256": hashlib.sha256(body).hexdigest(),
        "codec": CODEC,
        "created_at": created_at,
    }
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + body


def decode_header(message: bytes) -> tuple[BatchHeader, bytes]:
    newline = message.find(b"\n", 0, _MAX_HEADER)
    if newline < 0:
        raise BatchError("malformed", "no header line")
    try:
        raw_header = json.loads(message[:newline])
    except (ValueError, UnicodeDecodeError):
        raise BatchError("malformed", "header is not JSON") from None
    if not isinstance(raw_header, dict):
        raise BatchError("malformed", "header is not an object")
    try:
        header = BatchHeader.model_validate(raw_header)
    except ValidationError as exc:
        raise BatchError("schema", f"header: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}", raw_header) from None
    if header.v != SCHEMA_VERSION:
        raise BatchError("schema", f"envelope version {header.v} is not supported (this side knows {SCHEMA_VERSION})", raw_header)
    if header.codec != CODEC:
        raise BatchError("schema", f"codec {header.codec!r} is not supported", raw_header)
    if header.last < header.first or header.count > header.last - header.first + 1:
        raise BatchError("schema", "sequence range and count disagree", raw_header)
    return header, message[newline + 1:]


def decode(message: bytes, max_raw_bytes: int, max_events: int) -> Batch:
    """Validate and unpack a batch; raises :class:`BatchError` with a reason slug."""
    header, body = decode_header(message)
    h = header.model_dump()
    if hashlib.sha256(body).hexdigest() != header.sha256:
        raise BatchError("hash", "sha256 of the body does not match the header", h)
    if header.raw_bytes > max_raw_bytes or header.count > max_events:
        raise BatchError("oversize", f"{header.raw_bytes} bytes / {header.count} events exceed the limits", h)
    try:
        raw = zstandard.ZstdDecompressor().decompress(body, max_output_size=header.raw_bytes)
    except zstandard.ZstdError as exc:
        raise BatchError("codec", f"body does not decompress: {exc}", h) from None
    if len(raw) != header.raw_bytes:
        raise BatchError("codec", "decompressed size differs from raw_bytes", h)
    lines = raw.splitlines()
    if len(lines) != header.count:
        raise BatchError("schema", f"header says {header.count} events, body has {len(lines)}", h)
    events = []
    seen: set[int] = set()
    for number, line in enumerate(lines, 1):
        event = _event(line, number, h)
        if not header.first <= event.seq <= header.last or event.seq in seen:
            raise BatchError("schema", f"event {number}: seq {event.seq} outside {header.first}..{header.last} or repeated", h)
        seen.add(event.seq)
        events.append(event)
    return Batch(header, events)
