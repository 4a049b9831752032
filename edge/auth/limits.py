"""Brute-force limits kept in the database, so every worker process sees them."""

from __future__ import annotations

import time

from edge.storage.db import Database


def record_failure(db: Database, kind: str, source: str) -> None:
    db.conn.execute("INSERT INTO auth_failures (kind, source, at) VALUES (?, ?, ?)", (kind, source, time.time()))


def recent_failures(db: Database, kind: str, window_s: float, source: str | None = None) -> int:
    since = time.time() - window_s
    if source is None:
        row = db.execute("SELECT COUNT(*) FROM auth_failures WHERE kind = ? AND at > ?", (kind, since)).fetchone()
    else:
        row = db.execute(
            "SELECT COUNT(*) FROM auth_failures WHERE kind = ? AND source = ? AND at > ?", (kind, source, since)
        ).fetchone()
    return int(row[0])


def prune(db: Database, older_than_s: float = 86400) -> None:
    db.conn.execute("DELETE FROM auth_failures WHERE at < ?", (time.time() - older_than_s,))
