"""Forwarding ingested xAPI statements to an LRS (``POST <lrs>/statements``).

Statements carry the ids the hub assigned, so a repeated POST after a crash is
harmless: an LRS answers a statement id it already has with 204/200 (same
content) or 409, and either way the statement is there. Rows are marked
forwarded only after the LRS accepted the batch.
"""

from __future__ import annotations

import json
import logging
import threading

import requests

from sync.district.store import Store

log = logging.getLogger(__name__)

XAPI_VERSION = "1.0.3"


class LrsForwarder:
    def __init__(self, store: Store, url: str, auth: tuple[str, str] | None = None, batch: int = 200, period_s: float = 5.0) -> None:
        self.store = store
        self.url = url.rstrip("/") + "/statements"
        self.auth = auth
        self.batch = batch
        self.period_s = period_s
        self.session = requests.Session()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def forward_once(self) -> int:
        """Forward up to one batch; returns how many statements the LRS accepted."""
        rows = self.store.unforwarded_statements(self.batch)
        if not rows:
            return 0
        body = "[" + ",".join(statement for _, statement in rows) + "]"
        headers = {"Content-Type": "application/json", "X-Experience-API-Version": XAPI_VERSION}
        resp = self.session.post(self.url, data=body.encode(), headers=headers, auth=self.auth, timeout=30)
        if resp.status_code in (200, 204, 409):
            self.store.mark_forwarded([sid for sid, _ in rows])
            return len(rows)
        log.warning("LRS refused statements", extra={"status": resp.status_code, "body": resp.text[:300]})
        return 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lrs", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                while self.forward_once():
                    pass
            except (requests.RequestException, json.JSONDecodeError) as exc:
                log.warning("LRS not reachable; will retry", extra={"error": str(exc)[:300]})
            self._stop.wait(self.period_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
