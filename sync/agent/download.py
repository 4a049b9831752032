"""Downlink: fetch what a notice announces, verify it, hand it to the inbox.

Order of trust: the notice's signature is checked first (before a byte is
downloaded), so only files the district signed are fetched at all; the file's
size and sha256 are then checked against the signed notice. Only a file that
passes both is moved (atomically, ``os.replace`` in the same directory tree)
into ``<data_dir>/inbox/<kind>/`` and recorded in the inbox table; a refused
file is deleted and never recorded.

Downloads resume: the partial file is kept under ``inbox/.partial`` and the next
attempt asks for ``Range: bytes=<have>-``; a server that ignores Range (200)
restarts the file from zero.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from edge import inbox
from edge.signing import SignatureError, verify
from edge.storage.db import Database
from sync.mqttlink import Backoff
from sync.wire.messages import Notice, signed_bytes

log = logging.getLogger(__name__)

_CHUNK = 256 * 1024


class DownloadRefused(Exception):
    """The file (or its notice) failed a check; it is not kept."""


@dataclass
class Outcome:
    notice_id: str
    status: str  # installed | already | refused | failed
    detail: str = ""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Downloader:
    def __init__(
        self,
        db: Database,
        db_lock: threading.RLock | None,
        inbox_dir: Path,
        district_public_key: str,
        retries: int = 5,
        timeout_s: float = 30.0,
        session: requests.Session | None = None,
    ) -> None:
        self.db = db
        self._db_lock = db_lock or threading.RLock()
        self.inbox_dir = inbox_dir
        self.partial_dir = inbox_dir / ".partial"
        self.public_key = district_public_key
        self.retries = retries
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        self.outcomes: list[Outcome] = []
        self._queue: queue.Queue[Notice | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    # -- worker thread: downloads never run in the MQTT network thread -----------------
    def submit(self, notice: Notice) -> None:
        self._queue.put(notice)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="downloads", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        if self._thread:
            self._thread.join(10)

    def _run(self) -> None:
        while True:
            notice = self._queue.get()
            if notice is None:
                return
            self.outcomes.append(self.fetch(notice))

    # -- one notice ------------------------------------------------------------------
    def fetch(self, notice: Notice) -> Outcome:
        """Download, verify and record one notice's file; never raises."""
        with self._db_lock:
            if inbox.has(self.db, notice.kind, notice.sha256):
                return Outcome(notice.id, "already")
        try:
            self._check_signature(notice)
        except DownloadRefused as exc:
            log.error("notice refused", extra={"notice": notice.id, "kind": notice.kind, "reason": str(exc)})
            return Outcome(notice.id, "refused", str(exc))
        backoff = Backoff(1.0, 30.0)
        last_error = ""
        for attempt in range(self.retries + 1):
            try:
                path = self._download(notice)
                final = self._install(notice, path)
            except DownloadRefused as exc:
                log.error("download refused", extra={"notice": notice.id, "kind": notice.kind, "reason": str(exc)})
                return Outcome(notice.id, "refused", str(exc))
            except (requests.RequestException, OSError) as exc:
                last_error = str(exc)[:300]
                log.warning("download interrupted; will resume", extra={"notice": notice.id, "attempt": attempt + 1, "error": last_error})
                if attempt < self.retries:
                    time.sleep(backoff.next())
                continue
            log.info("download verified and queued for install", extra={"notice": notice.id, "kind": notice.kind, "path": str(final)})
            return Outcome(notice.id, "installed", str(final))
        return Outcome(notice.id, "failed", last_error)

    def _check_signature(self, notice: Notice) -> None:
        if not self.public_key:
            raise DownloadRefused("no district public key is configured ([district] public_key or public_key_file)")
        try:
            verify(signed_bytes(notice), notice.signature, self.public_key)
        except SignatureError as exc:
            raise DownloadRefused(f"signature: {exc}") from None

    def _download(self, notice: Notice) -> Path:
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        part = self.partial_dir / f"{notice.id}.part"
        have = part.stat().st_size if part.exists() else 0
        if have > notice.size:
            part.unlink()
            have = 0
        if have == notice.size:
            return part
        headers = {"Range": f"bytes={have}-"} if have else {}
        with self.session.get(notice.url, headers=headers, stream=True, timeout=self.timeout_s) as resp:
            if resp.status_code == 416 and have:
                part.unlink()  # our partial file is not a prefix of theirs: start over next attempt
                raise requests.RequestException("range not satisfiable; restarting the download")
            resp.raise_for_status()
            mode = "ab" if have and resp.status_code == 206 else "wb"
            if mode == "wb":
                have = 0
            with open(part, mode) as out:
                for chunk in resp.iter_content(_CHUNK):
                    have += len(chunk)
                    if have > notice.size:
                        out.close()
                        part.unlink()
                        raise DownloadRefused(f"the server sent more than the announced {notice.size} bytes")
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        if have != notice.size:
            raise requests.RequestException(f"connection ended at {have} of {notice.size} bytes")
        return part

    def _install(self, notice: Notice, part: Path) -> Path:
        digest = hashlib.sha256()
        with open(part, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                digest.update(chunk)
        if digest.hexdigest() != notice.sha256:
            part.unlink()
            raise DownloadRefused("sha256 of the downloaded file does not match the signed notice")
        dest_dir = self.inbox_dir / notice.kind
        dest_dir.mkdir(parents=True, exist_ok=True)
        final = dest_dir / f"{notice.id}-{notice.name}"
        os.replace(part, final)
        _fsync_dir(dest_dir)
        with self._db_lock:
            inbox.add(self.db, notice.kind, final, notice.sha256)
        return final
