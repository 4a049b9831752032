"""The answer writer's syncer starts the WAL over once it has grown (edge/quiz/writer.py, _Syncer).

PASSIVE checkpoints alone never caught up under a steady stream of answers, so SQLite never
started the WAL over: it grew by a gigabyte in 16 s of the benchmark's loop and every read got
slower. Here a reader holds an old snapshot while pages are written (so a PASSIVE checkpoint
cannot finish, as under load); once it is gone, one checkpoint of the syncer's must leave an
empty WAL and the data in the database file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.quiz import writer as w
from edge.storage import write_lock
from edge.storage.db import connect


class _Bus:
    def wake(self) -> None:
        pass


def test_a_grown_wal_is_started_over_by_the_syncers_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(w, "RESTART_FRAMES", 64)
    path = tmp_path / "hub.sqlite3"
    db = connect(path, 5000, "NORMAL")
    db.conn.execute("PRAGMA wal_autocheckpoint = 0")  # as the answer writer's connection
    db.conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    reader = connect(path, 5000, "NORMAL")
    reader.conn.execute("BEGIN")
    reader.conn.execute("SELECT COUNT(*) FROM t").fetchone()  # an old snapshot: PASSIVE stops before its frames
    for i in range(200):
        db.conn.execute("INSERT INTO t (v) VALUES (?)", (os.urandom(3000),))
    wal = Path(f"{path}-wal")
    lock = write_lock.lock_path(tmp_path / "run")
    syncer = w._Syncer(None, _Bus(), lock)  # no thread: the test calls its checkpoint
    syncer._wal = wal
    restarts = w.WAL_RESTARTS._value.get()
    syncer._checkpoint()  # the reader is still there: tried, not done
    assert wal.stat().st_size > 64 * 4096
    reader.conn.execute("COMMIT")
    syncer._checkpoint()
    assert wal.stat().st_size == 0
    assert w.WAL_RESTARTS._value.get() == restarts + 1
    assert db.conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 200
    # Writing goes on in the fresh WAL.
    db.conn.execute("INSERT INTO t (v) VALUES (x'00')")
    assert connect(path).conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 201
