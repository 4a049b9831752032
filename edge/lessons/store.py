"""The content-addressed store: ``<data_dir>/content/sha256/<2 hex>/<64 hex>``.

A file's name is its sha256, so the same video in two lessons is stored once
and a URL built from the hash can be cached forever. Files enter only through
:func:`place` after their hash was checked in staging; they leave only through
:func:`collect_garbage`, which removes blobs no installed lesson lists. Both run
under one lock so a blob being installed is never collected.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge.storage.db import Database

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def content_root(data_dir: Path) -> Path:
    return data_dir / "content"


def blob_path(data_dir: Path, sha256: str) -> Path:
    if not _HEX64.match(sha256):
        raise ValueError("not a sha256 hex digest")
    return content_root(data_dir) / "sha256" / sha256[:2] / sha256


def staging_root(data_dir: Path) -> Path:
    return content_root(data_dir) / "staging"


@contextmanager
def store_lock(data_dir: Path) -> Iterator[None]:
    root = content_root(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def place(data_dir: Path, staged: Path, sha256: str) -> bool:
    """Move a verified staged file into the store. True if it was new. Caller holds :func:`store_lock`."""
    dest = blob_path(data_dir, sha256)
    if dest.exists():
        staged.unlink(missing_ok=True)
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(staged, 0o444)
    os.replace(staged, dest)
    _fsync_dir(dest.parent)
    return True


def collect_garbage(data_dir: Path, db: Database) -> int:
    """Remove blobs no lesson lists; returns how many. Caller holds :func:`store_lock`."""
    referenced = {r[0] for r in db.execute("SELECT DISTINCT sha256 FROM lesson_files")}
    removed = 0
    root = content_root(data_dir) / "sha256"
    if not root.is_dir():
        return 0
    for sub in root.iterdir():
        for blob in sub.iterdir():
            if blob.name not in referenced:
                blob.unlink(missing_ok=True)
                removed += 1
    return removed


def free_bytes(data_dir: Path) -> int:
    st = os.statvfs(content_root(data_dir) if content_root(data_dir).exists() else data_dir)
    return st.f_bavail * st.f_frsize
