"""The outbox: events for the district, appended in the same transaction as
the change that caused them. The sync agent (``sync/``) reads and ships them;
the hub never deletes an unsent row."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from edge.storage.db import Database


def append(db: Database, type_: str, payload: dict[str, Any], schema: int = 1, event_id: str | None = None) -> int:
    """Append one event; the caller owns the transaction. Returns its sequence number."""
    cur = db.conn.execute(
        "INSERT INTO outbox (event_id, type, schema, payload, created_at) VALUES (?, ?, ?, ?, ?)",
        (
            event_id or str(uuid.uuid4()),
            type_,
            schema,
            json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
            time.time(),
        ),
    )
    return int(cur.lastrowid or 0)


def depth(db: Database) -> tuple[int, float | None]:
    """Unsent events and the creation time of the oldest one."""
    row = db.execute("SELECT COUNT(*), MIN(created_at) FROM outbox").fetchone()
    return int(row[0]), row[1]
