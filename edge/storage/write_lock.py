"""The hub's database write lock between its own writers, an flock on ``<run_dir>/db-write.lock``.

SQLite makes a second writer wait by polling (its busy handler sleeps up to 100 ms
between tries), which a burst of answers cannot afford. The hub's writers that run
often (the quiz's answer writers, learning's catch-up) take this lock around their
write transactions instead: the waiter wakes the moment the holder lets go, and
SQLite's own lock is then always free for it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = "db-write.lock"


def lock_path(run_dir: Path) -> Path:
    return run_dir / LOCK_FILE


def open_lock(path: Path) -> int:
    """A descriptor for ``path``, to flock (kept open by a writer that takes the lock often)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


@contextmanager
def held(path: Path) -> Iterator[None]:
    """Hold the write lock for the ``with`` block (opens and closes its own descriptor)."""
    fd = open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
