"""Opening the hub database with the pragmas every process must use.

Durability policy: WAL journal with ``synchronous=FULL`` (configurable) so a
commit is fsynced before the hub answers the request that caused it; an
acknowledged write therefore survives ``kill -9`` of any hub process and a power
cut. ``busy_timeout`` lets the several worker processes queue for the write
lock instead of failing, and ``BEGIN IMMEDIATE`` takes that lock up front so a
transaction never fails half-way on an upgrade from read to write.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

Database = sqlite_utils.Database


def connect(path: Path | str, busy_timeout_ms: int = 5000, synchronous: str = "FULL") -> Database:
    """Open ``path`` with WAL, busy timeout, foreign keys and the durability setting."""
    conn = sqlite3.connect(
        str(path),
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,  # we issue BEGIN/COMMIT ourselves
        check_same_thread=False,
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA journal_mode = WAL")
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA temp_store = MEMORY")
    return sqlite_utils.Database(conn)


#: Rows per statement in :func:`execute_rows` (at most ~12 columns: well within SQLite's 32,766 variables).
ROWS_PER_STATEMENT = 256


def execute_rows(conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """``conn.executemany(sql, rows)`` for an ``INSERT ... VALUES (?, ...)`` (an upsert clause after
    it included), with many rows in the VALUES of one statement instead of a step per row.

    The hub's writers run these under the write lock every worker waits for, and every step lets
    go of the GIL, which the writer then waits to get back behind busy request threads. SQLite
    inserts the rows in order (rowids follow the list), an upsert's conflict with an earlier row
    of the same statement included, exactly as one by one.
    """
    start = sql.index("VALUES (") + len("VALUES ")
    end = sql.index(")", start) + 1
    head, group, tail = sql[:start], sql[start:end], sql[end:]
    for k in range(0, len(rows), ROWS_PER_STATEMENT):
        part = rows[k:k + ROWS_PER_STATEMENT]
        conn.execute(f"{head}{','.join([group] * len(part))}{tail}", [v for r in part for v in r])


def select_keys(table: str, columns: str, key: tuple[str, ...], n: int) -> str:
    """``SELECT columns FROM table`` for exactly ``n`` values of the composite ``key`` (parameters:
    the keys' values, flattened). Each key is looked up through the table's index on ``key``;
    separate ``IN`` lists per column would read their cross product, and a row-value
    ``IN (VALUES ...)`` makes SQLite scan the table."""
    names = ", ".join(f"k{i}" for i in range(len(key)))
    row = "(" + ",".join("?" * len(key)) + ")"
    on = " AND ".join(f"t.{col} = k.k{i}" for i, col in enumerate(key))
    cols = ", ".join(f"t.{c.strip()}" for c in columns.split(","))
    return f"WITH k({names}) AS (VALUES {','.join([row] * n)}) SELECT {cols} FROM k JOIN {table} t ON {on}"


@contextmanager
def transaction(db: Database) -> Iterator[Database]:
    """One write transaction: BEGIN IMMEDIATE ... COMMIT, rolled back on error."""
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


class ThreadLocalDatabase:
    """One connection per thread of a worker process, opened on first use."""

    def __init__(self, path: Path, busy_timeout_ms: int, synchronous: str) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._synchronous = synchronous
        self._local = threading.local()

    def get(self) -> Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = connect(self.path, self._busy_timeout_ms, self._synchronous)
            self._local.db = db
        return db
