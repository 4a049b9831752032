"""Download a lesson package over HTTP(S) with resume, retries and a hash check.

The partial file lives in ``<data_dir>/content/downloads/<sha256 of URL>.part``;
a retry (in this run or a later one) asks for ``Range: bytes=<have>-`` and
appends when the server answers 206 for exactly that offset, else starts over.
Between attempts it waits with exponential backoff and jitter. A body shorter
than Content-Length is a failed attempt, never a finished file; the finished
file is checked against the expected sha256 when one is given. The package's
own manifest signature and file hashes are checked again by the importer.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import requests

from edge.config import HubConfig
from edge.lessons.store import content_root, free_bytes

CHUNK = 64 * 1024  # small enough that a dropped connection keeps most of what arrived
MAX_PACKAGE_BYTES = 8 * 1024**3


class DownloadError(Exception):
    """The download failed for good; the message says why."""


class _Retry(Exception):
    pass


def _part_path(config: HubConfig, url: str) -> Path:
    folder = content_root(config.hub.data_dir) / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".part")


def _attempt(url: str, part: Path, timeout: float, reserve: int, data_dir: Path,
             progress: Callable[[int], None] | None, on_total: Callable[[int], None] | None) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as resp:
            if resp.status_code == 416 and have:
                # Either we have it all already or the file changed: start again and let the hash decide.
                part.unlink()
                raise _Retry("server refused the resume offset")
            if resp.status_code == 206 and resp.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
                mode = "ab"
                total = int(resp.headers["Content-Range"].rsplit("/", 1)[1]) if "/" in resp.headers.get("Content-Range", "") else None
            elif resp.status_code == 200:
                mode, have = "wb", 0
                total = int(resp.headers["Content-Length"]) if resp.headers.get("Content-Length", "").isdigit() else None
            elif 500 <= resp.status_code < 600 or resp.status_code in (408, 429):
                raise _Retry(f"server answered {resp.status_code}")
            else:
                raise DownloadError(f"{url}: server answered {resp.status_code}")
            if total is not None:
                if total > MAX_PACKAGE_BYTES:
                    raise DownloadError(f"{url}: {total} bytes is larger than any lesson package may be")
                if free_bytes(data_dir) - (total - have) * 2 < reserve:
                    raise DownloadError("not enough free disk for this package (storage.disk_reserve_mb must stay free)")
                if on_total:
                    on_total(total)
            if progress and have:
                progress(have)
            with part.open(mode) as fh:
                try:
                    for chunk in resp.iter_content(CHUNK):
                        fh.write(chunk)
                        have += len(chunk)
                        if progress:
                            progress(len(chunk))
                        if have > MAX_PACKAGE_BYTES:
                            raise DownloadError(f"{url}: larger than any lesson package may be")
                except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                    raise _Retry(f"truncated: the connection closed after {have} of {total or '?'} bytes") from None
                finally:
                    fh.flush()
                    os.fsync(fh.fileno())
            if total is not None and have != total:
                raise _Retry(f"truncated: got {have} of {total} bytes")
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        raise _Retry(f"connection failed: {exc.__class__.__name__}") from None


def download(
    config: HubConfig,
    url: str,
    expected_sha256: str | None = None,
    retries: int = 5,
    timeout: float = 30.0,
    backoff_s: float = 1.0,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> Path:
    """Fetch ``url`` to a local file and return its path (resumes a previous partial download)."""
    part = _part_path(config, url)
    reserve = config.storage.disk_reserve_mb * 1_048_576
    last = ""
    for attempt in range(retries + 1):
        try:
            _attempt(url, part, timeout, reserve, config.hub.data_dir, progress, on_total)
            break
        except _Retry as exc:
            last = str(exc)
            if attempt < retries:
                time.sleep(min(60.0, backoff_s * 2**attempt) * (0.5 + random.random() / 2))
    else:
        raise DownloadError(f"{url}: gave up after {retries + 1} attempts ({last}); the partial file is kept and the next import resumes it")
    if expected_sha256:
        digest = hashlib.sha256()
        with part.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != expected_sha256.lower():
            part.unlink()
            raise DownloadError(f"{url}: sha256 {digest.hexdigest()} does not match the expected {expected_sha256}")
    done = part.with_suffix(".zip")
    os.replace(part, done)
    return done
