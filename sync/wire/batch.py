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
from typing import Annotated, Any, NamedTuple

import msgspec
import orjson
import zstandard
from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION = 1
CODEC = "zstd"
# History of the envelope schema (bump SCHEMA_VERSION and add a line):
HISTORY = {1: "first version: JSON header line + zstd JSON-lines body"}

# zstd level 1. On a school day's batches (tests/sync/schoolday.py) it is both the faster
# and the smaller of the low levels: 0.47 us per event and 8.2 % of the JSON, against
# 0.68 us and 9.6 % at level 3 (levels 4-5: no smaller, up to 4x the CPU).
_LEVEL = 1
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
    # district from the parsed line (see ``_Line``).
    seq: int
    id: str
    type: str
    schema: int
    at: float
    # The payload as the JSON text the hub sent (validated: JSON, an object), as the district stores it.
    payload_json: str


# The largest sequence number the district's BIGINT column holds.
MAX_SEQ = 2**63 - 1


class _Line(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """An event line as the parser checks it: every key required, no other allowed.

    msgspec parses and validates the lines in C, straight into these: a strict
    ``int`` refuses JSON booleans and floats, and the payload stays the raw JSON
    the hub sent (checked as JSON by the parser, never turned into Python objects
    and serialised again). orjson into dicts, checks by hand and re-serialising
    each payload cost 5.5 us per event of every hub of the district; this ~1.5.
    """

    seq: Annotated[int, msgspec.Meta(ge=1, le=MAX_SEQ)]
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    schema: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
    at: float
    payload: msgspec.Raw


_LINES = msgspec.json.Decoder(_Line)


@dataclass(frozen=True)
class Batch:
    header: BatchHeader
    events: list[Event]


def event_line(seq: int, event_id: str, type_: str, schema: int, payload_json: str | bytes, created_at: float) -> bytes:
    """One body line, built from the outbox row without re-parsing its payload (already JSON, as text or UTF-8).

    One orjson call with the payload as a ``Fragment`` (inserted as it is): half
    the CPU of formatting the line in Python, for every event a hub sends.
    """
    return orjson.dumps(
        {"seq": seq, "id": event_id, "type": type_, "schema": schema, "at": float(created_at), "payload": orjson.Fragment(payload_json)},
        option=orjson.OPT_APPEND_NEWLINE,
    )


# ``event_line`` as an SQL expression over the hub outbox's columns (seq, event_id, type,
# schema, created_at, payload), so the agent can have SQLite format and join a whole batch
# in one step. Same keys in the same order; strings through json_quote; ``at`` with 17
# significant digits (exactly the same float once parsed; orjson writes the shortest
# form, so the text may be a digit longer); the payload inserted as stored, like the
# Fragment above. tests/sync/test_wire_batch.py holds the two to the same lines.
EVENT_LINE_SQL = (
    """'{"seq":' || seq || ',"id":' || json_quote(event_id) || ',"type":' || json_quote(type) || ',"schema":' || schema"""
    """ || ',"at":' || printf('%!.17g', created_at) || ',"payload":' || payload || '}' || char(10)"""
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
    try:
        lines = _LINES.decode_lines(raw)
    except (msgspec.DecodeError, RecursionError) as exc:  # msgspec.ValidationError is a DecodeError
        raise BatchError("schema", f"event line: {exc}"[:500], h) from None
    if len(lines) != header.count:
        raise BatchError("schema", f"header says {header.count} events, body has {len(lines)}", h)
    try:
        # str(raw, "utf-8") checks the UTF-8 the parser skipped inside the payload's strings.
        payloads = [str(line.payload, "utf-8") for line in lines]
    except UnicodeDecodeError:
        raise BatchError("schema", "an event payload is not UTF-8", h) from None
    for number, text in enumerate(payloads, 1):
        if text[:1] != "{":  # valid JSON already: starting with a brace, it is an object
            raise BatchError("schema", f"event {number}: payload must be an object", h)
    seqs = [line.seq for line in lines]
    if len(set(seqs)) != len(seqs) or min(seqs) < header.first or max(seqs) > header.last:
        raise BatchError("schema", f"an event's seq is outside {header.first}..{header.last} or repeated", h)
    events = [Event(line.seq, line.id, line.type, line.schema, line.at, text) for line, text in zip(lines, payloads, strict=True)]
    return Batch(header, events)
