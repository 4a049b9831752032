"""The inbox: files the district sent, already downloaded and verified by the
sync agent, waiting for the hub's installer of their kind.

The agent moves a verified file into place first and records it here second,
so a row always points at a complete file. Installers read ``pending(kind)``
and call ``mark_installed`` or ``mark_failed``.
"""

from __future__ import annotations

import time
from pathlib import Path

from edge.storage.db import Database, transaction

# The kinds the district may ship; the agent refuses a notice of any other kind.
KINDS = ("lesson_package", "roster", "timetable", "model", "firmware")


def add(db: Database, kind: str, path: Path, sha256: str) -> int:
    """Record a verified file; returns its inbox id. The same (kind, sha256) is recorded once."""
    if kind not in KINDS:
        raise ValueError(f"unknown inbox kind {kind!r}")
    with transaction(db):
        row = db.conn.execute("SELECT id FROM inbox WHERE kind = ? AND sha256 = ?", (kind, sha256)).fetchone()
        if row:
            return int(row[0])
        cur = db.conn.execute(
            "INSERT INTO inbox (kind, path, sha256, received_at) VALUES (?, ?, ?, ?)", (kind, str(path), sha256, time.time())
        )
        return int(cur.lastrowid or 0)


def has(db: Database, kind: str, sha256: str) -> bool:
    return db.execute("SELECT 1 FROM inbox WHERE kind = ? AND sha256 = ?", (kind, sha256)).fetchone() is not None


def pending(db: Database, kind: str) -> list[tuple[int, str, str]]:
    """(id, path, sha256) of files of ``kind`` not yet installed, oldest first."""
    sql = "SELECT id, path, sha256 FROM inbox WHERE kind = ? AND installed_at IS NULL ORDER BY id"
    return db.execute(sql, (kind,)).fetchall()


def mark_installed(db: Database, inbox_id: int) -> None:
    with transaction(db):
        db.conn.execute("UPDATE inbox SET installed_at = ?, error = NULL WHERE id = ?", (time.time(), inbox_id))


def mark_failed(db: Database, inbox_id: int, error: str) -> None:
    with transaction(db):
        db.conn.execute("UPDATE inbox SET error = ? WHERE id = ?", (error[:500], inbox_id))
