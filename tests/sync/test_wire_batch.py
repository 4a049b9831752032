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


def _outbox_with(rows):
    """An in-memory table with the hub outbox's columns holding ``rows`` (seq, id, type, schema, payload, created_at)."""
    import sqlite3

    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL, type TEXT NOT NULL, schema INTEGER NOT NULL,"
               " payload TEXT NOT NULL, created_at REAL NOT NULL)")
    db.executemany("INSERT INTO outbox VALUES (?, ?, ?, ?, ?, ?)", rows)
    return db


def test_the_sql_event_line_is_the_same_event_as_event_line():
    # The agent has SQLite format a batch's lines (EVENT_LINE_SQL, one step per batch); the
    # district must get the same events as from event_line: same keys, values, floats.
    import time

    import orjson

    from sync.wire.batch import EVENT_LINE_SQL

    rows = [
        (1, "a1", "xapi.statement", 1, '{"id":"a1","text":"第1题","nested":{"x":[1,2.5,null,true]}}', 1_764_000_000.123456),
        (2, 'q"uo\\te\x01\ttab', "type/with\u00e9", 3, '{"battery":80}', time.time()),
        (3, "a3", "t", 1, '{"text":"quote \\" and \\\\ and \\u0001"}', 0.1),
        (4, "a4", "t", 2**31 - 1, "{}", 1e-7),
        (5, "a5", "t", 1, "{}", 5),  # an integer in the REAL column (read back as 5.0)
        (6, "a6", "t", 1, "{}", 0.0),  # a hub clock reset to 1970
        (7, "a7", "t", 1, "{}", 1e300),
        (8, "a8", "t", 1, "{}", 1796291717.039812),  # where %.17g needs a digit more than the shortest form
    ]
    db = _outbox_with(rows)
    sql_lines = [r[0] for r in db.execute(f"SELECT CAST({EVENT_LINE_SQL} AS BLOB) FROM outbox ORDER BY seq")]
    py_lines = [event_line(*r) for r in rows]
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in sql_lines)
    assert [orjson.loads(a) for a in sql_lines] == [orjson.loads(b) for b in py_lines]
    # Through the district's decoder too: the same Event tuples, the float exactly.
    from_sql = decode(encode("d", "s", "h", 1, 8, 8, b"".join(sql_lines), 0.0), 1 << 20, 100).events
    from_py = decode(encode("d", "s", "h", 1, 8, 8, b"".join(py_lines), 0.0), 1 << 20, 100).events
    assert from_sql == from_py


def test_the_batcher_joins_in_sql_and_cuts_row_by_row_only_over_a_limit(tmp_path):
    import random
    import sqlite3

    from edge.storage.db import connect
    from sync.agent.batcher import Batcher, Limits

    rng = random.Random(5)  # incompressible text, so the wire limit can bite
    path = tmp_path / "o.sqlite3"

    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,"
                  " schema INTEGER NOT NULL DEFAULT 1, payload TEXT NOT NULL, created_at REAL NOT NULL)")
        c.executemany("INSERT INTO outbox (event_id, type, schema, payload, created_at) VALUES (?, 't', 1, ?, ?)",
                      [(f"e{i}", '{"text":"' + rng.randbytes(150 if i % 10 == 0 else 20).hex() + '字"}', 1_764_000_000.0 + i) for i in range(1, 201)])
    db = connect(path)
    rows = [r for r in db.execute("SELECT seq, event_id, type, schema, payload, created_at FROM outbox ORDER BY seq")]
    lines = [event_line(*r) for r in rows]

    def events(built):
        return decode(built.message, 1 << 22, 10_000).events

    # Within the limits: one batch of max_events, the same events as the row-by-row lines.
    b = Batcher("d", "s", "h", Limits(50, 1 << 20, 1 << 17)).next_after(db, 0, 0.0)
    assert (b.first, b.last, b.count) == (1, 50, 50)
    assert events(b) == decode(encode("d", "s", "h", 1, 50, 50, b"".join(lines[:50]), 0.0), 1 << 20, 100).events
    # Over max_raw_bytes: cut to what fits, as before.
    limit = sum(map(len, lines[:37])) + 5
    b = Batcher("d", "s", "h", Limits(200, limit, 1 << 17)).next_after(db, 0, 0.0)
    assert (b.first, b.last, b.count, b.raw_bytes) == (1, 37, 37, limit - 5)
    # Over max_wire_bytes: halved until it fits.
    b = Batcher("d", "s", "h", Limits(200, 1 << 20, 4096)).next_after(db, 10, 0.0)
    assert b.first == 11 and len(b.message) <= 4096 and b.count == b.last - 10 and b.count < 190
    # A rebuild skips rows that left meanwhile and keeps the range.
    db.conn.execute("DELETE FROM outbox WHERE seq IN (3, 4)")
    r = Batcher("d", "s", "h", Limits(50, 1 << 20, 1 << 17)).rebuild(db, 1, 50, 0.0)
    assert (r.first, r.last, r.count) == (1, 50, 48)
    assert [e.seq for e in events(r)] == [s for s in range(1, 51) if s not in (3, 4)]
