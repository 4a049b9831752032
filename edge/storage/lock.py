"""One hub per data directory: the serving process holds an exclusive lock."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class DataDirBusy(RuntimeError):
    pass


def acquire(run_dir: Path) -> int:
    """Take the data directory's lock; the lock lives as long as the returned fd."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / "hub.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataDirBusy(f"another hub process is using {run_dir.parent}; stop it first") from None
    os.set_inheritable(fd, False)
    return fd
