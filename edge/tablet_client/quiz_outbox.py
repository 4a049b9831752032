"""The Python tablet's outbox of quiz answers (the web app's IndexedDB outbox, in SQLite).

An answer is written here (fsynced) before it is sent and leaves only when the hub
acknowledged it (201, or 200 for a resend) or refused it for good (404/409/422, kept in
``refused`` with the hub's reason). Anything else (hub unreachable, 5xx, signed out)
leaves it queued for the next :meth:`AnswerOutbox.flush`. Resends carry the same
``client_id``, so the hub records an answer once however often it is sent.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from edge.tablet_client.client import HubError, HubUnreachable, TabletClient

_FINAL_REFUSALS = (404, 409, 422)


class AnswerOutbox:
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS outbox (client_id TEXT PRIMARY KEY, body TEXT NOT NULL, queued_at REAL NOT NULL)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS refused (client_id TEXT PRIMARY KEY, body TEXT NOT NULL, status INTEGER, reason TEXT)")

    def add(self, student_id: int, session_id: int, item_id: int, response: dict[str, Any], final: bool = False) -> str:
        """Queue an answer made now; returns its client id."""
        body = {"client_id": str(uuid.uuid4()), "session_id": session_id, "item_id": item_id, "student_id": student_id,
                "response": response, "final": final, "answered_at": time.time()}
        self.conn.execute("INSERT INTO outbox (client_id, body, queued_at) VALUES (?, ?, ?)", (body["client_id"], json.dumps(body), time.time()))
        return str(body["client_id"])

    def pending(self, student_id: int | None = None) -> list[dict[str, Any]]:
        bodies = [json.loads(r[0]) for r in self.conn.execute("SELECT body FROM outbox ORDER BY queued_at")]
        return [b for b in bodies if student_id is None or b["student_id"] == student_id]

    def flush(self, client: TabletClient, student_id: int) -> int:
        """Send this student's queued answers; returns how many the hub acknowledged now."""
        sent = 0
        for body in self.pending(student_id):
            try:
                client.request("POST", "/quiz/answers", json={**body, "sent_at": time.time()}, expect=(200, 201))
            except HubError as err:
                if err.status in _FINAL_REFUSALS:
                    self.conn.execute("BEGIN IMMEDIATE")
                    self.conn.execute("INSERT OR REPLACE INTO refused VALUES (?, ?, ?, ?)", (body["client_id"], json.dumps(body), err.status, str(err)))
                    self.conn.execute("DELETE FROM outbox WHERE client_id = ?", (body["client_id"],))
                    self.conn.execute("COMMIT")
                    continue
                break  # 401/5xx: keep everything for later
            except HubUnreachable:
                break
            self.conn.execute("DELETE FROM outbox WHERE client_id = ?", (body["client_id"],))
            sent += 1
        return sent

    def close(self) -> None:
        self.conn.close()
