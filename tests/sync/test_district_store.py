"""The district database, both backends: idempotent by (hub, seq) and by
statement id, indifferent to arrival order; PostgreSQL on the server running on
this machine (each test in a schema of its own, dropped afterwards)."""

from __future__ import annotations

import random
import uuid

import pytest

from sync.district.store import PostgresStore, SqliteStore
from sync.wire.batch import decode, encode, event_line

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_DSN, connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_DSN}: {exc}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = SqliteStore(tmp_path / "d.sqlite3")
        yield s
        s.close()
        return
    reason = _pg_available()
    if reason:
        pytest.skip(reason)
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    s = PostgresStore(PG_DSN, schema)
    yield s
    s.close()
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _batches(hub: str, n_events: int, size: int):
    rows = []
    for seq in range(1, n_events + 1):
        eid = str(uuid.uuid4())
        type_ = "xapi.statement" if seq % 3 == 0 else "device.telemetry"
        payload = f'{{"id":"{eid}","n":{seq},"text":"第{seq}题"}}'
        rows.append((seq, eid, type_, 1, payload, 1_700_000_000.0 + seq))
    out = []
    for i in range(0, n_events, size):
        chunk = rows[i:i + size]
        raw = b"".join(event_line(*r) for r in chunk)
        out.append(decode(encode("d", "s", hub, chunk[0][0], chunk[-1][0], len(chunk), raw, 0.0), 1 << 22, 10_000))
    return out


def test_batches_in_any_order_and_repeated_leave_each_event_once(store):
    store.register_hub("h1", "d", "s")
    batches = _batches("h1", 1000, 70)
    order = batches * 3
    random.Random(7).shuffle(order)
    dups = [store.ingest(b.header, b.events, 1.0) for b in order]
    assert dups.count(False) == len(batches)
    c = store.counts()
    assert (c["events"], c["batches"], c["statements"], c["duplicate_events"]) == (1000, len(batches), 333, 0)
    assert store.event_seqs("h1") == list(range(1, 1001))


def test_batches_longer_than_one_insert_statement_store_every_row_as_sent(store):
    # Rows go in as INSERTs of ROWS_PER_INSERT rows each plus the rest one by one: batches of
    # 2.5 such statements, then the same events cut differently (a re-sent range after a
    # reconnect), overlap and all, leave each event once with its values as sent.
    from sync.district.store import ROWS_PER_INSERT

    store.register_hub("h1", "d", "s")
    n = ROWS_PER_INSERT * 5
    first_cut = _batches("h1", n, n // 2)
    assert [store.ingest(b.header, b.events, 1.0) for b in first_cut] == [False, False]
    sent = [e for b in first_cut for e in b.events]
    for b in _recut("h1", sent, ROWS_PER_INSERT + 30):
        assert store.ingest(b.header, b.events, 2.0) is False  # new ranges, their rows already there
    c = store.counts()
    assert (c["events"], c["statements"], c["duplicate_events"]) == (n, n // 3, 0)
    cur = store._conn().cursor()
    cur.execute("SELECT seq, event_id, type, schema, created_at, payload FROM events ORDER BY seq")
    assert [tuple(r) for r in cur.fetchall()] == [(e.seq, e.id, e.type, e.schema, e.at, e.payload_json) for e in sent]
    store._end_read()


def _recut(hub: str, events, size: int):
    out = []
    for i in range(0, len(events), size):
        chunk = events[i:i + size]
        raw = b"".join(event_line(e.seq, e.id, e.type, e.schema, e.payload_json, e.at) for e in chunk)
        out.append(decode(encode("d", "s", hub, chunk[0].seq, chunk[-1].seq, len(chunk), raw, 0.0), 1 << 22, 10_000))
    return out


def test_the_high_water_mark_is_the_contiguous_prefix(store):
    batches = _batches("h1", 100, 10)
    for b in batches[:3] + batches[4:6]:  # 1..30 and 41..60; 31..40 missing
        store.ingest(b.header, b.events, 1.0)
    assert store.hwm("h1", 0) == 30
    assert store.hwm("h1", 35) == 35  # the hub says 31..35 are gone (acked earlier): 36..40 still missing
    assert store.hwm("h1", 40) == 60
    store.ingest(batches[3].header, batches[3].events, 1.0)
    assert store.hwm("h1", 0) == 60


def test_a_statement_seen_under_another_sequence_is_not_stored_twice(store):
    (b,) = _batches("h1", 6, 6)  # seq 3 and 6 are statements, the rest telemetry
    store.ingest(b.header, b.events, 1.0)
    # The same events re-numbered (a hub restored from a backup): statement ids keep the
    # statements single; other events are keyed by (hub, seq) only, as the issue asks.
    moved = [type(e)(e.seq + 100, e.id, e.type, e.schema, e.at, e.payload_json) for e in b.events]
    header = b.header.model_copy(update={"first": 101, "last": 106})
    assert store.ingest(header, moved, 2.0) is False
    c = store.counts()
    assert (c["statements"], c["events"]) == (2, 6 + 4)
    assert store.event_seqs("h1") == [1, 2, 3, 4, 5, 6, 101, 102, 104, 105]
    assert [sid for sid, _ in store.unforwarded_statements(10)] == [b.events[2].id, b.events[5].id]


def test_registry_and_quarantine(store):
    store.register_hub("h1", "d", "s")
    store.register_hub("h1", "d", "s")  # idempotent
    assert store.hub_school("h1") == ("d", "s")
    assert store.hub_school("nope") is None
    store.quarantine("h1", "edu/d/s/h1/up/batch", "hash", "mismatch", b"\x00" * 10, 1.0)
    assert store.counts()["quarantine"] == 1


def test_a_new_sqlite_store_holds_a_statement_row_without_overflow_pages(tmp_path):
    # With SQLite's default 4 KiB pages a ~1 KB statement row of the WITHOUT ROWID events
    # table spilled into an overflow page of its own (1.3 KB on disk per event of the day).
    from sync.district.store import PAGE_SIZE

    s = SqliteStore(tmp_path / "d.sqlite3")
    try:
        assert s._db.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
        s.register_hub("h1", "d", "s")
        payload = '{"text":"' + "x" * 1100 + '"}'
        raw = event_line(1, str(uuid.uuid4()), "xapi.statement", 1, payload, 1.0)
        b = decode(encode("d", "s", "h1", 1, 1, 1, raw, 0.0), 1 << 20, 10)
        s.ingest(b.header, b.events, 1.0)
        assert s._db.execute("SELECT payload FROM events").fetchone()[0] == payload
        # dbstat (SQLite's page statistics): no overflow page anywhere in the events table.
        assert s._db.execute("SELECT COUNT(*) FROM dbstat WHERE name = 'events' AND pagetype = 'overflow'").fetchone()[0] == 0
    finally:
        s.close()
    # A database made with 4 KiB pages keeps them and still works.
    import sqlite3

    old = tmp_path / "old.sqlite3"
    sqlite3.connect(old).execute("CREATE TABLE x (a)").connection.close()
    s = SqliteStore(old)
    try:
        assert s._db.execute("PRAGMA page_size").fetchone()[0] == 4096
        s.register_hub("h1", "d", "s")
        assert s.hub_school("h1") == ("d", "s")
    finally:
        s.close()
