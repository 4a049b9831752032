"""A live-event bus shared by every process of the hub.

An event is a row in ``live_events`` (so it is durable, ordered by id, and a
reconnecting listener resumes from ``Last-Event-ID``) plus a one-byte datagram
to every worker's wake-up socket in ``<run_dir>/live/``, so the worker holding
the listener reads it at once instead of at its next poll. The poll (default
1 s) only covers a lost datagram. Each process runs one pump thread, started
lazily after the fork, which fans rows out to in-process subscribers.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.jsonio import compact
from edge.storage.db import Database, ThreadLocalDatabase

log = logging.getLogger(__name__)

#: Set when this process is shutting down; long-lived streams end promptly.
shutting_down = threading.Event()

RETENTION_S = 24 * 3600
REPLAY_LIMIT = 1000


@dataclass(frozen=True)
class LiveEvent:
    id: int
    channel: str
    type: str
    data: dict[str, Any]
    created_at: float


@dataclass(eq=False)  # identity-hashed: subscriptions live in a set
class Subscription:
    channels: frozenset[str]
    queue: queue.Queue[LiveEvent] = field(default_factory=lambda: queue.Queue(maxsize=10_000))
    overflowed: bool = False


class LiveBus:
    def __init__(self, databases: ThreadLocalDatabase, run_dir: Path, poll_s: float = 1.0) -> None:
        self._databases = databases
        self._dir = run_dir / "live"
        self._poll_s = poll_s
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self._pump: threading.Thread | None = None
        self._pump_pid: int | None = None
        self._sock: socket.socket | None = None
        self._sock_path: Path | None = None
        self._last_id = 0
        self._send_sock: socket.socket | None = None
        self._send_pid: int | None = None

    # -- writing ---------------------------------------------------------

    def emit(self, db: Database, channel: str, type_: str, data: dict[str, Any]) -> int:
        """Record an event in the caller's transaction; call :meth:`wake` after commit."""
        cur = db.conn.execute(
            "INSERT INTO live_events (channel, type, data, created_at) VALUES (?, ?, ?, ?)",
            (channel, type_, compact(data), time.time()),
        )
        return int(cur.lastrowid or 0)

    def emit_many(self, db: Database, events: list[tuple[str, str, dict[str, Any]]]) -> None:
        """:meth:`emit` for many (channel, type, data) events in one statement, in this order."""
        now = time.time()
        db.conn.executemany("INSERT INTO live_events (channel, type, data, created_at) VALUES (?, ?, ?, ?)",
                            [(channel, type_, compact(data), now) for channel, type_, data in events])

    def publish(self, channel: str, type_: str, data: dict[str, Any]) -> int:
        """Record and deliver an event on its own (autocommit)."""
        event_id = self.emit(self._databases.get(), channel, type_, data)
        self.wake()
        return event_id

    def wake(self) -> None:
        """Tell every worker's pump that new events are in the table."""
        try:
            names = os.listdir(self._dir)
        except FileNotFoundError:
            return
        if self._send_sock is None or self._send_pid != os.getpid():
            self._send_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._send_sock.setblocking(False)
            self._send_pid = os.getpid()
        for name in names:
            if not name.endswith(".sock"):
                continue
            path = self._dir / name
            try:
                self._send_sock.sendto(b"!", str(path))
            except (ConnectionRefusedError, FileNotFoundError):
                # The worker that owned it died without cleaning up.
                if not self._owner_alive(name):
                    path.unlink(missing_ok=True)
            except BlockingIOError:
                pass  # its buffer is full of wake-ups already: it will read the table
            except OSError as exc:
                log.warning("live wake-up failed", extra={"socket": name, "error": str(exc)})

    @staticmethod
    def _owner_alive(name: str) -> bool:
        try:
            pid = int(name.split("-", 1)[0])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            return False
        except PermissionError:
            return True
        return True

    # -- reading ---------------------------------------------------------

    def subscribe(self, channels: Iterable[str]) -> Subscription:
        self._ensure_pump()
        sub = Subscription(frozenset(channels))
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subs)

    def replay(self, channels: Iterable[str], after_id: int) -> list[LiveEvent]:
        """Events after ``after_id`` on ``channels`` (for Last-Event-ID resume)."""
        chans = list(channels)
        if not chans:
            return []
        marks = ",".join("?" for _ in chans)
        rows = self._databases.get().execute(
            f"SELECT id, channel, type, data, created_at FROM live_events "
            f"WHERE id > ? AND channel IN ({marks}) ORDER BY id LIMIT {REPLAY_LIMIT}",
            [after_id, *chans],
        ).fetchall()
        return [LiveEvent(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    def latest_id(self) -> int:
        row = self._databases.get().execute("SELECT COALESCE(MAX(id), 0) FROM live_events").fetchone()
        return int(row[0])

    # -- the pump ----------------------------------------------------------

    def _ensure_pump(self) -> None:
        if self._pump is not None and self._pump_pid == os.getpid() and self._pump.is_alive():
            return
        with self._lock:
            if self._pump is not None and self._pump_pid == os.getpid() and self._pump.is_alive():
                return
            self._dir.mkdir(parents=True, exist_ok=True)
            path = self._dir / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(str(path))
            sock.settimeout(self._poll_s)
            self._sock, self._sock_path = sock, path
            self._last_id = self.latest_id()
            self._pump_pid = os.getpid()
            self._pump = threading.Thread(target=self._run_pump, name="live-pump", daemon=True)
            self._pump.start()

    def close(self) -> None:
        """Remove this process's wake-up socket (called at worker exit)."""
        if self._sock_path is not None and self._pump_pid == os.getpid():
            self._sock_path.unlink(missing_ok=True)
        if self._sock is not None:
            self._sock.close()

    def _run_pump(self) -> None:
        sock = self._sock
        assert sock is not None
        next_prune = time.monotonic() + 60
        while not shutting_down.is_set():
            try:
                sock.recv(64)
                # Drain queued wake-ups: one table read serves them all.
                sock.setblocking(False)
                try:
                    while True:
                        sock.recv(64)
                except (BlockingIOError, InterruptedError):
                    pass
                finally:
                    sock.settimeout(self._poll_s)
            except TimeoutError:
                pass
            except OSError:
                if shutting_down.is_set():
                    return
                time.sleep(self._poll_s)
            try:
                self._deliver_new()
                if time.monotonic() > next_prune:
                    next_prune = time.monotonic() + 600
                    self._prune()
            except Exception:  # keep the pump alive whatever one read does
                log.exception("live pump iteration failed")

    def _deliver_new(self) -> None:
        with self._lock:
            if not self._subs:
                # Nobody listens here: skip ahead without reading payloads.
                self._last_id = max(self._last_id, self.latest_id())
                return
        rows = self._databases.get().execute(
            "SELECT id, channel, type, data, created_at FROM live_events WHERE id > ? ORDER BY id LIMIT 5000",
            (self._last_id,),
        ).fetchall()
        if not rows:
            return
        with self._lock:
            subs = list(self._subs)
        for r in rows:
            event = LiveEvent(r[0], r[1], r[2], json.loads(r[3]), r[4])
            self._last_id = event.id
            for sub in subs:
                if event.channel in sub.channels:
                    try:
                        sub.queue.put_nowait(event)
                    except queue.Full:
                        sub.overflowed = True

    def _prune(self) -> None:
        db = self._databases.get()
        db.conn.execute("DELETE FROM live_events WHERE created_at < ?", (time.time() - RETENTION_S,))
