"""The district database: SQLite by default, PostgreSQL for real deployments.

Idempotent by construction: events are keyed by (hub, seq), xAPI statements
also by their statement id, batches by (hub, first, last); every insert ignores a
row that is already there, so a batch delivered three times, or re-sent after a
lost ack, or cut differently after a reconnect, leaves each event exactly once,
and a statement re-sent under another sequence number (a hub restored from a
backup) is not stored again. Nothing here depends on the order batches arrive in.

Written for the nightly fleet, where the disk is the limit: ``events`` is one
B-tree clustered by (hub, seq) (``WITHOUT ROWID`` on SQLite), so a batch lands in
a few adjacent pages; the only index on a random key is ``statements``'
statement id, and that table holds ids only (the statement's text is the
event's payload, joined when forwarding to an LRS). A second index on every
event id and a second copy of every statement made each commit write several
times the data (README, "Benchmarks > District sync", has the figures).

Both backends run the same statements; only the placeholder and the "ignore a
duplicate" spelling differ.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from sync.wire.batch import BatchHeader, Event

XAPI_TYPE = "xapi.statement"
# Page size of a new district SQLite file (SQLite's default is 4 KiB). In a
# WITHOUT ROWID table a row longer than about a quarter page spills into an
# overflow page of its own: with 4 KiB pages every xAPI statement (~1 KB) took a
# mostly empty 4 KiB page, 1.3 KB on disk per event of the day and half the
# store's CPU. 16 KiB pages hold them inline (README, "Benchmarks > District sync").
PAGE_SIZE = 16384
# Rows per INSERT statement when writing a batch: 100 x 8 columns stays under the
# 999 parameters of older SQLite builds (and PostgreSQL's 65,535).
ROWS_PER_INSERT = 100
# The district SQLite's WAL is checkpointed and truncated once it passes this size.
WAL_LIMIT_BYTES = 256 * 1_048_576

_TABLES = [
    """CREATE TABLE IF NOT EXISTS hubs (
        hub_id TEXT PRIMARY KEY, district TEXT NOT NULL, school TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS batches (
        hub_id TEXT NOT NULL, first_seq BIGINT NOT NULL, last_seq BIGINT NOT NULL, event_count INTEGER NOT NULL,
        sha256 TEXT NOT NULL, received_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (hub_id, first_seq, last_seq))""",
    """CREATE TABLE IF NOT EXISTS events (
        hub_id TEXT NOT NULL, seq BIGINT NOT NULL, event_id TEXT NOT NULL, type TEXT NOT NULL,
        schema INTEGER NOT NULL, created_at DOUBLE PRECISION NOT NULL, payload TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (hub_id, seq)) @CLUSTERED@""",
    """CREATE TABLE IF NOT EXISTS statements (
        statement_id TEXT PRIMARY KEY, hub_id TEXT NOT NULL, seq BIGINT NOT NULL, forwarded_at DOUBLE PRECISION)""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        hub_id TEXT, topic TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL, size INTEGER NOT NULL,
        body BYTEA, received_at DOUBLE PRECISION NOT NULL)""",
]


class Store(Protocol):
    def register_hub(self, hub_id: str, district: str, school: str) -> None: ...
    def hub_school(self, hub_id: str) -> tuple[str, str] | None: ...
    def ingest(self, header: BatchHeader, events: Sequence[Event], received_at: float) -> bool: ...
    def ingest_many(self, batches: Sequence[tuple[BatchHeader, Sequence[Event]]], received_at: float) -> list[bool]: ...
    def quarantine(self, hub_id: str | None, topic: str, reason: str, detail: str, body: bytes, received_at: float) -> None: ...
    def has_batch(self, hub_id: str, first: int, last: int) -> bool: ...
    def hwm(self, hub_id: str, floor: int) -> int: ...
    def counts(self) -> dict[str, int]: ...
    def unforwarded_statements(self, limit: int) -> list[tuple[str, str]]: ...
    def mark_forwarded(self, statement_ids: Iterable[str]) -> None: ...
    def close(self) -> None: ...


def _walk_hwm(floor: int, ranges: Iterable[tuple[int, int]]) -> int:
    """Highest N such that floor+1..N is covered by ``ranges`` (sorted by first)."""
    hwm = floor
    for first, last in ranges:
        if first > hwm + 1:
            break
        hwm = max(hwm, last)
    return hwm


class _SqlStore:
    """The statements both backends share; subclasses provide the connection and dialect."""

    P = "?"  # placeholder
    IGNORE_PREFIX = "INSERT OR IGNORE INTO"
    IGNORE_SUFFIX = ""
    BLOB = "BLOB"
    CLUSTERED = "WITHOUT ROWID"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    # -- dialect hooks --------------------------------------------------------------
    def _conn(self) -> Any:
        raise NotImplementedError

    def _begin(self, cur: Any) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def _ins(self, table: str, columns: str, n: int, rows: int = 1) -> str:
        marks = ", ".join([f"({', '.join([self.P] * n)})"] * rows)
        return f"{self.IGNORE_PREFIX} {table} ({columns}) VALUES {marks}{self.IGNORE_SUFFIX}"

    def _insert_many(self, cur: Any, table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
        """``executemany`` of one-row INSERTs, as INSERTs of ``ROWS_PER_INSERT`` rows each (the rest one by one).

        One statement step per row meant, per row, a round of the interpreter lock (released
        around every step), a statement reset and the per-statement bookkeeping of the VM:
        ~1 us per event at the district, ~8 % of an ingest's CPU in the fleet benchmark (perf).
        """
        if not rows:
            return
        n = len(rows[0])
        k = ROWS_PER_INSERT
        full = len(rows) - len(rows) % k
        if full:
            sql = self._ins(table, columns, n, k)
            cur.executemany(sql, [[v for row in rows[i:i + k] for v in row] for i in range(0, full, k)])
        if full < len(rows):
            cur.executemany(self._ins(table, columns, n), rows[full:])

    def _create(self) -> None:
        with self._lock:
            cur = self._conn().cursor()
            self._begin(cur)
            for ddl in _TABLES:
                cur.execute(ddl.replace("BYTEA", self.BLOB).replace("@CLUSTERED@", self.CLUSTERED))
            self._commit()
            # The first layout kept a copy of each statement in statements.statement; it is not migrated.
            try:
                cur.execute("SELECT statement FROM statements WHERE 1 = 0")
            except Exception:  # no such column: the current layout
                self._rollback()
            else:
                self._rollback()
                raise RuntimeError("this district database has the first table layout (statements.statement); start a new database")

    # -- the store --------------------------------------------------------------------
    def register_hub(self, hub_id: str, district: str, school: str) -> None:
        self.register_hubs([(hub_id, district, school)])

    def register_hubs(self, rows: Sequence[tuple[str, str, str]]) -> None:
        with self._lock:
            cur = self._conn().cursor()
            self._begin(cur)
            cur.executemany(self._ins("hubs", "hub_id, district, school", 3), list(rows))
            self._commit()

    def hub_school(self, hub_id: str) -> tuple[str, str] | None:
        with self._lock:
            cur = self._conn().cursor()
            cur.execute(f"SELECT district, school FROM hubs WHERE hub_id = {self.P}", (hub_id,))
            row = cur.fetchone()
            self._end_read()
        return (row[0], row[1]) if row else None

    def _end_read(self) -> None:
        pass

    def ingest(self, header: BatchHeader, events: Sequence[Event], received_at: float) -> bool:
        """Write a validated batch in one transaction; returns True if it was already there."""
        return self.ingest_many([(header, events)], received_at)[0]

    def ingest_many(self, batches: Sequence[tuple[BatchHeader, Sequence[Event]]], received_at: float) -> list[bool]:
        """Write validated batches in one transaction (one commit, one fsync); per batch, True if it was already there.

        A batch repeated within ``batches`` is written once and reported as a duplicate the second time.
        """
        dup_sql = f"SELECT 1 FROM batches WHERE hub_id = {self.P} AND first_seq = {self.P} AND last_seq = {self.P}"
        events_cols = "hub_id, seq, event_id, type, schema, created_at, payload, received_at"
        batches_sql = self._ins("batches", "hub_id, first_seq, last_seq, event_count, sha256, received_at", 6)
        out = []
        with self._lock:
            cur = self._conn().cursor()
            self._begin(cur)
            try:
                for header, events in batches:
                    hub = header.hub
                    cur.execute(dup_sql, (hub, header.first, header.last))
                    duplicate = cur.fetchone() is not None
                    out.append(duplicate)
                    if duplicate:
                        continue
                    statements = [(e.id, hub, e.seq) for e in events if e.type == XAPI_TYPE]
                    known = self._known_statements(cur, [s[0] for s in statements])
                    if known:
                        # Stored before, under this or another sequence number: not again.
                        events = [e for e in events if e.type != XAPI_TYPE or e.id not in known]
                        statements = [s for s in statements if s[0] not in known]
                    self._insert_many(cur, "statements", "statement_id, hub_id, seq", statements)
                    self._insert_many(cur, "events", events_cols, [(hub, e.seq, e.id, e.type, e.schema, e.at, e.payload_json, received_at) for e in events])
                    cur.execute(batches_sql, (hub, header.first, header.last, header.count, header.sha256, received_at))
                self._commit()
            except BaseException:
                self._rollback()
                raise
            self._after_write()
        return out

    def _after_write(self) -> None:
        pass

    def _known_statements(self, cur: Any, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(ids), 500):  # SQLite allows 999 parameters in older builds
            chunk = ids[i:i + 500]
            cur.execute(f"SELECT statement_id FROM statements WHERE statement_id IN ({', '.join([self.P] * len(chunk))})", chunk)
            found.update(r[0] for r in cur.fetchall())
        return found

    def quarantine(self, hub_id: str | None, topic: str, reason: str, detail: str, body: bytes, received_at: float) -> None:
        with self._lock:
            cur = self._conn().cursor()
            self._begin(cur)
            cur.execute(
                f"INSERT INTO quarantine (hub_id, topic, reason, detail, size, body, received_at) "
                f"VALUES ({self.P}, {self.P}, {self.P}, {self.P}, {self.P}, {self.P}, {self.P})",
                # Keep at most 1 MiB of a bad message: enough to study, not a disk-filling vector.
                (hub_id, topic, reason, detail[:1000], len(body), body[:1_048_576], received_at),
            )
            self._commit()

    def has_batch(self, hub_id: str, first: int, last: int) -> bool:
        with self._lock:
            cur = self._conn().cursor()
            cur.execute(
                f"SELECT 1 FROM batches WHERE hub_id = {self.P} AND first_seq = {self.P} AND last_seq = {self.P}", (hub_id, first, last)
            )
            found = cur.fetchone() is not None
            self._end_read()
        return found

    def hwm(self, hub_id: str, floor: int) -> int:
        with self._lock:
            cur = self._conn().cursor()
            cur.execute(
                f"SELECT first_seq, last_seq FROM batches WHERE hub_id = {self.P} AND last_seq > {self.P} ORDER BY first_seq",
                (hub_id, floor),
            )
            rows = cur.fetchall()
            self._end_read()
        return _walk_hwm(floor, rows)

    def counts(self) -> dict[str, int]:
        out = {}
        with self._lock:
            cur = self._conn().cursor()
            for table in ("hubs", "batches", "events", "statements", "quarantine"):
                cur.execute(f"SELECT COUNT(*) FROM {table}")
                out[table] = int(cur.fetchone()[0])
            cur.execute("SELECT COUNT(*) FROM (SELECT hub_id, seq FROM events GROUP BY hub_id, seq HAVING COUNT(*) > 1) d")
            out["duplicate_events"] = int(cur.fetchone()[0])
            self._end_read()
        return out

    def event_seqs(self, hub_id: str) -> list[int]:
        with self._lock:
            cur = self._conn().cursor()
            cur.execute(f"SELECT seq FROM events WHERE hub_id = {self.P} ORDER BY seq", (hub_id,))
            rows = [int(r[0]) for r in cur.fetchall()]
            self._end_read()
        return rows

    def unforwarded_statements(self, limit: int) -> list[tuple[str, str]]:
        with self._lock:
            cur = self._conn().cursor()
            cur.execute(
                "SELECT s.statement_id, e.payload FROM statements s JOIN events e ON e.hub_id = s.hub_id AND e.seq = s.seq "
                f"WHERE s.forwarded_at IS NULL ORDER BY s.hub_id, s.seq LIMIT {int(limit)}"
            )
            rows = [(r[0], r[1]) for r in cur.fetchall()]
            self._end_read()
        return rows

    def mark_forwarded(self, statement_ids: Iterable[str]) -> None:
        now = time.time()
        with self._lock:
            cur = self._conn().cursor()
            self._begin(cur)
            cur.executemany(
                f"UPDATE statements SET forwarded_at = {self.P} WHERE statement_id = {self.P}", [(now, s) for s in statement_ids]
            )
            self._commit()


class SqliteStore(_SqlStore):
    """The default district database: one file, WAL, fsync at every commit (an ack promises durability)."""

    def __init__(self, path: Path | str) -> None:
        super().__init__()
        self.path = str(path)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        # Takes effect only while the file is still empty (before WAL and the first table);
        # an existing database keeps its page size (README, "District sync", to convert one).
        self._db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA busy_timeout = 30000")
        # 256 MiB of page cache (SQLite's default is 2 MiB): the statement-id index takes
        # keys at random places, and each page it must read back from disk stalls the commit.
        self._db.execute("PRAGMA cache_size = -262144")
        self._create()

    def _conn(self) -> sqlite3.Connection:
        return self._db

    def _begin(self, cur: Any) -> None:
        cur.execute("BEGIN IMMEDIATE")

    def _after_write(self) -> None:
        # With two ingest processes taking turns, SQLite's automatic (passive)
        # checkpoints never find a moment to restart the WAL: in the full-day fleet
        # it grew to 16 GB, and every page read searches a wal-index that grows with
        # it. Past the limit, one full checkpoint waits its turn (busy_timeout) and
        # truncates the file.
        try:
            size = os.stat(self.path + "-wal").st_size
        except OSError:
            return
        if size > WAL_LIMIT_BYTES:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    def _commit(self) -> None:
        self._db.execute("COMMIT")

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        self._db.close()


class PostgresStore(_SqlStore):
    """PostgreSQL through psycopg 3; ``schema`` lets several deployments (or test runs) share a database."""

    P = "%s"
    IGNORE_PREFIX = "INSERT INTO"
    IGNORE_SUFFIX = " ON CONFLICT DO NOTHING"
    BLOB = "BYTEA"
    CLUSTERED = ""

    def __init__(self, dsn: str, schema: str = "public") -> None:
        import psycopg  # only the district needs it; the appliance never imports this module's backend

        super().__init__()
        if not schema.replace("_", "").isalnum():
            raise ValueError(f"schema name {schema!r} must be letters, digits and _")
        self._db = psycopg.connect(dsn, autocommit=False)
        with self._db.cursor() as cur:
            cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            cur.execute(f'SET search_path TO "{schema}"')
        self._db.commit()
        self._create()

    def _conn(self) -> Any:
        return self._db

    def _begin(self, cur: Any) -> None:
        pass  # psycopg opens a transaction at the first statement

    def _commit(self) -> None:
        self._db.commit()

    def _rollback(self) -> None:
        self._db.rollback()

    def _end_read(self) -> None:
        self._db.rollback()  # end the read transaction so it holds no snapshot

    def close(self) -> None:
        self._db.close()


def open_store(url: str, schema: str = "public") -> _SqlStore:
    """``sqlite:///path/to/district.sqlite3`` or ``postgresql://...`` (any libpq DSN URL)."""
    if url.startswith("sqlite:///"):
        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url, schema)
    raise ValueError(f"database URL {url!r}: use sqlite:///PATH or postgresql://...")
