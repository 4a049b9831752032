"""The outbox: events for the district, appended in the same transaction as
the change that caused them. The sync agent (``sync/``) reads and ships them;
the hub never deletes an unsent row."""

from __future__ import annotations

import time
import uuid
from typing import Any

from edge.jsonio import compact
from edge.storage.db import Database


def append(db: Database, type_: str, payload: dict[str, Any], schema: int = 1, event_id: str | None = None) -> int:
    """Append one event; the caller owns the transaction. Returns its sequence number."""
    return append_json(db, type_, compact(payload), schema, event_id)


def append_json(db: Database, type_: str, payload_json: str, schema: int = 1, event_id: str | None = None) -> int:
    """:func:`append` of a payload already serialised as a JSON object (so a caller can do that
    before it takes the write lock)."""
    cur = db.conn.execute(
        "INSERT INTO outbox (event_id, type, schema, payload, created_at) VALUES (?, ?, ?, ?, ?)",
        (event_id or str(uuid.uuid4()), type_, schema, payload_json, time.time()),
    )
    return int(cur.lastrowid or 0)


def append_many_json(db: Database, events: list[tuple[str, str, int, str]]) -> None:
    """:func:`append_json` for many events, (type, payload JSON, schema, event id) each, in one statement;
    their sequence numbers follow the list's order."""
    if events:
        now = time.time()
        db.conn.executemany("INSERT INTO outbox (event_id, type, schema, payload, created_at) VALUES (?, ?, ?, ?, ?)",
                            [(event_id, type_, schema, payload, now) for type_, payload, schema, event_id in events])


def count(db: Database) -> int:
    """Unsent events. Counted on the event-id index: a small fraction of the pages
    :func:`depth` reads (it scans every row for the oldest creation time)."""
    return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


def depth(db: Database) -> tuple[int, float | None]:
    """Unsent events and the creation time of the oldest one."""
    row = db.execute("SELECT COUNT(*), MIN(created_at) FROM outbox").fetchone()
    return int(row[0]), row[1]


# -- reading and acknowledging (used by the sync agent) ----------------------------------
#
# Rows leave the outbox only when the district has acknowledged them. Sequence
# numbers come from AUTOINCREMENT under the write lock, so they only grow and a
# lower number can never commit after a higher one: "everything up to N" is a
# stable statement once N has been read.


def read_after(
    db: Database, after_seq: int, limit: int, upto_seq: int | None = None, payload_bytes: bool = False
) -> list[tuple[int, str, str, int, Any, float]]:
    """Up to ``limit`` unsent rows with ``after_seq < seq [<= upto_seq]``, oldest first.

    Each row is (seq, event_id, type, schema, payload JSON text, created_at). With
    ``payload_bytes`` the payload comes as its UTF-8 bytes, as stored: for the sync
    agent, which copies it into a batch unchanged (decoding it to ``str`` and encoding
    it back was a fifth of the agent's CPU per event).
    """
    payload = "CAST(payload AS BLOB)" if payload_bytes else "payload"
    columns = f"seq, event_id, type, schema, {payload}, created_at"
    if upto_seq is None:
        sql = f"SELECT {columns} FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?"
        return db.execute(sql, (after_seq, limit)).fetchall()
    sql = f"SELECT {columns} FROM outbox WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
    return db.execute(sql, (after_seq, upto_seq, limit)).fetchall()


def read_joined(db: Database, after_seq: int, limit: int, line_sql: str, upto_seq: int | None = None) -> tuple[int, int, int, bytes] | None:
    """The rows :func:`read_after` would return, each formatted by ``line_sql`` and joined, in one statement step.

    ``line_sql`` is an SQL expression over the outbox's columns (the caller owns the
    format). Returns (count, first seq, last seq, the joined lines as UTF-8), or None
    when nothing is waiting. One step for the lot, where reading rows took one per row:
    the sqlite3 module releases and re-takes the interpreter lock around every step,
    and with other threads waiting for it (a process syncing many hubs) each could
    hand it over.
    """
    where = "seq > ?1" if upto_seq is None else "seq > ?1 AND seq <= ?3"
    sql = (f"SELECT count(*), min(seq), max(seq), CAST(group_concat(line, '') AS BLOB) FROM "
           f"(SELECT seq, {line_sql} AS line FROM outbox WHERE {where} ORDER BY seq LIMIT ?2)")
    count, first, last, joined = db.execute(sql, (after_seq, limit) if upto_seq is None else (after_seq, limit, upto_seq)).fetchone()
    if not count:
        return None
    return int(count), int(first), int(last), bytes(joined)


def floor(db: Database) -> int:
    """The highest sequence number below which every event has left the outbox."""
    row = db.execute("SELECT MIN(seq) FROM outbox").fetchone()
    if row[0] is not None:
        return int(row[0]) - 1
    return high_water(db)


def high_water(db: Database) -> int:
    """The highest sequence number ever assigned (0 for a new hub)."""
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    return int(row[0]) if row else 0


def acknowledge(db: Database, first_seq: int, last_seq: int, synced_at: float | None = None) -> int:
    """Delete rows ``first_seq..last_seq`` the district acknowledged and record the sync time.

    Runs its own transaction; returns the number of rows removed (0 for a repeated ack).
    """
    return acknowledge_ranges(db, [(first_seq, last_seq)], synced_at)


def acknowledge_ranges(db: Database, ranges: list[tuple[int, int]], synced_at: float | None = None) -> int:
    """:func:`acknowledge` of several acknowledged ranges in one transaction.

    Each commit that deletes rows rewrites most pages of the ``event_id`` index (the
    ids are random, so any batch's rows are spread over all of it): one commit for
    several batches writes those pages once.
    """
    from edge.storage.db import transaction

    removed = 0
    with transaction(db):
        for first_seq, last_seq in ranges:
            removed += db.conn.execute("DELETE FROM outbox WHERE seq >= ? AND seq <= ?", (first_seq, last_seq)).rowcount
        db.conn.execute(
            "INSERT INTO hub_meta (key, value) VALUES ('last_sync_at', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (repr(synced_at if synced_at is not None else time.time()),),
        )
    return removed


# Event types that may be thinned when the disk runs short; everything else
# (answers, sign-ins, transcripts: learning data) is never dropped.
TELEMETRY_TYPES = ("device.telemetry", "cart.telemetry")


def thin_telemetry(db: Database, keep_every_s: float = 600.0) -> int:
    """Keep one unsent telemetry event per device (or cart) and ``keep_every_s`` bucket; delete the rest.

    For a hub whose disk nears its reserve while the district is unreachable.
    Returns the number of rows removed; learning data is never touched.
    """
    from edge.storage.db import transaction

    marks = ", ".join("?" for _ in TELEMETRY_TYPES)
    with transaction(db):
        cur = db.conn.execute(
            f"""DELETE FROM outbox WHERE type IN ({marks}) AND seq NOT IN (
                    SELECT MIN(seq) FROM outbox WHERE type IN ({marks})
                    GROUP BY type, json_extract(payload, '$.device'), json_extract(payload, '$.cart'),
                             CAST(created_at / ? AS INTEGER))""",
            (*TELEMETRY_TYPES, *TELEMETRY_TYPES, keep_every_s),
        )
    return cur.rowcount
