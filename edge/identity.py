"""The hub's own identity: a UUID tablets verify and a secret that never leaves it."""

from __future__ import annotations

import secrets
import time
import uuid

from edge.storage.db import Database, transaction


def ensure_identity(db: Database) -> tuple[str, str]:
    """Return (hub_id, hub_secret), creating them on first start."""
    rows = dict(db.execute("SELECT key, value FROM hub_meta WHERE key IN ('hub_id', 'hub_secret')").fetchall())
    if "hub_id" in rows and "hub_secret" in rows:
        return rows["hub_id"], rows["hub_secret"]
    with transaction(db):
        db.conn.execute("INSERT OR IGNORE INTO hub_meta (key, value) VALUES ('hub_id', ?)", (str(uuid.uuid4()),))
        db.conn.execute("INSERT OR IGNORE INTO hub_meta (key, value) VALUES ('hub_secret', ?)", (secrets.token_hex(32),))
        db.conn.execute("INSERT OR IGNORE INTO hub_meta (key, value) VALUES ('created_at', ?)", (str(time.time()),))
    rows = dict(db.execute("SELECT key, value FROM hub_meta WHERE key IN ('hub_id', 'hub_secret')").fetchall())
    return rows["hub_id"], rows["hub_secret"]
