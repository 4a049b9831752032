"""The batch envelope on its own: what the district accepts and what it refuses
(without a broker: the same ``decode`` that district-ingest runs on every message)."""

from __future__ import annotations

import pytest

from sync.wire.batch import MAX_SEQ, BatchError, decode, encode, event_line

GOOD = b'{"seq":%d,"id":"e%d","type":"t","schema":1,"at":1.5,"payload":{"n":%d}}\n'


def _message(body: bytes, first: int = 1, last: int | None = None, count: int | None = None) -> bytes:
    lines = body.count(b"\n")
    return encode("d", "s", "h", first, last if last is not None else max(first, lines), count if count is not None else lines, body, 0.0)


def test_a_batch_comes_back_as_the_hub_built_it():
    rows = [
        (1, "a1", "xapi.statement", 1, '{"id":"a1","text":"第1题","nested":{"x":[1,2.5,null,true]}}', 1_764_000_000.123456),
        (2, "a2", "device.telemetry", 3, '{"battery":80}', 1_764_000_060.0),
        (7, "a7", "speech.segment", 1, '{"text":"quote \\" and \\\\ and \\u0001"}', 0.1),
    ]
    body = b"".join(event_line(*r) for r in rows)
    batch = decode(encode("d", "s", "h", 1, 7, 3, body, 0.0), 1 << 20, 100)
    assert [tuple(e) for e in batch.events] == [(s, i, t, v, at, p) for s, i, t, v, p, at in rows]
    assert (batch.header.first, batch.header.last, batch.header.count) == (1, 7, 3)


BAD_LINES = {
    "seq is a boolean": b'{"seq":true,"id":"e","type":"t","schema":1,"at":1.5,"payload":{}}',
    "seq is a float": b'{"seq":1.0,"id":"e","type":"t","schema":1,"at":1.5,"payload":{}}',
    "seq is zero": b'{"seq":0,"id":"e","type":"t","schema":1,"at":1.5,"payload":{}}',
    "seq past BIGINT": b'{"seq":%d,"id":"e","type":"t","schema":1,"at":1.5,"payload":{}}' % (MAX_SEQ + 1),
    "schema is a string": b'{"seq":1,"id":"e","type":"t","schema":"1","at":1.5,"payload":{}}',
    "at is a boolean": b'{"seq":1,"id":"e","type":"t","schema":1,"at":false,"payload":{}}',
    "at out of range": b'{"seq":1,"id":"e","type":"t","schema":1,"at":1e400,"payload":{}}',
    "id is empty": b'{"seq":1,"id":"","type":"t","schema":1,"at":1.5,"payload":{}}',
    "id is too long": b'{"seq":1,"id":"%s","type":"t","schema":1,"at":1.5,"payload":{}}' % (b"x" * 129),
    "type is a number": b'{"seq":1,"id":"e","type":5,"schema":1,"at":1.5,"payload":{}}',
    "a key is missing": b'{"seq":1,"id":"e","type":"t","at":1.5,"payload":{}}',
    "an extra key": b'{"seq":1,"id":"e","type":"t","schema":1,"at":1.5,"payload":{},"x":1}',
    "payload is an array": b'{"seq":1,"id":"e","type":"t","schema":1,"at":1.5,"payload":[1]}',
    "payload is a string": b'{"seq":1,"id":"e","type":"t","schema":1,"at":1.5,"payload":"{}"}',
    "payload is not JSON": b'{"seq":1,"id":"e","type":"t","schema":1,"at":1.5,"payload":{"a":}}',
    "payload has a trailing comma": b'{"seq":1,"id":"e","type":"t","schema":1,"at":1.5,"payload":{"a":1,}}',
    "payload has a bad escape": b'{"seq":1,"id":"e","type":"t","schema":1,"at":1.5,"payload":{"a":"\\x"}}',
    "payload has a raw control character": b'{"seq":1,"id":"e","type":"t","schema":1,"at":1.5,"payload":{"a":"\x01"}}',
    "payload has NaN": b'{"seq":1,"id":"e","type":"t","schema":1,"at":1.5,"payload":{"a":NaN}}',
    "payload is not UTF-8": b'{"seq":1,"id":"e","type":"t","schema":1,"at":1.5,"payload":{"a":"\xff\xfe"}}',
    "payload nested too deep": b'{"seq":1,"id":"e","type":"t","schema":1,"at":1.5,"payload":' + b'{"a":' * 5000 + b"1" + b"}" * 5001,
    "line is not an object": b"[1,2,3]",
    "trailing characters": b'{"seq":1,"id":"e","type":"t","schema":1,"at":1.5,"payload":{}} x',
}


@pytest.mark.parametrize("line", list(BAD_LINES.values()), ids=list(BAD_LINES))
def test_a_bad_event_line_is_refused_as_schema(line):
    body = GOOD % (2, 2, 2) + line + b"\n"
    with pytest.raises(BatchError) as exc:
        decode(_message(body, first=1, last=2, count=2), 1 << 20, 100)
    assert exc.value.reason == "schema", exc.value


@pytest.mark.parametrize(("body", "first", "last", "count"), [
    (GOOD % (1, 1, 1) + GOOD % (1, 1, 1), 1, 2, 2),  # the same seq twice
    (GOOD % (1, 1, 1) + GOOD % (5, 5, 5), 1, 4, 2),  # a seq past the header's last
    (GOOD % (1, 1, 1) + GOOD % (2, 2, 2), 2, 3, 2),  # a seq before the header's first
    (GOOD % (1, 1, 1) + GOOD % (2, 2, 2), 1, 3, 3),  # the header counts more events than the body has
])
def test_sequence_numbers_must_match_the_header(body, first, last, count):
    with pytest.raises(BatchError) as exc:
        decode(_message(body, first, last, count), 1 << 20, 100)
    assert exc.value.reason == "schema"


def test_hash_size_and_header_are_checked_before_the_body_is_read():
    message = _message(GOOD % (1, 1, 1))
    header, body = message.split(b"\n", 1)
    with pytest.raises(BatchError, match="hash"):
        decode(header + b"\n" + body[:-1] + bytes([body[-1] ^ 1]), 1 << 20, 100)
    with pytest.raises(BatchError, match="oversize"):
        decode(message, 10, 100)
    with pytest.raises(BatchError, match="malformed"):
        decode(b"not a header\n" + body, 1 << 20, 100)
