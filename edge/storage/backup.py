"""Backup and restore of the hub database (the content store is re-creatable
from lesson packages and is backed up by copying the directory)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from edge.storage.migrations import backup_database, latest_version


class RestoreError(RuntimeError):
    pass


def make_backup(db_path: Path, backups_dir: Path, keep: int, target: Path | None = None) -> Path:
    if target is None:
        return backup_database(db_path, backups_dir, "manual", keep)
    src, dst = sqlite3.connect(str(db_path)), sqlite3.connect(str(target))
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    os.chmod(target, 0o600)
    return target


def check_backup(path: Path) -> int:
    """Integrity-check a backup file; return its schema version."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute("SELECT value FROM hub_meta WHERE key = 'hub_id'").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise RestoreError(f"{path} is not a hub database: {exc}") from None
    if result != "ok":
        raise RestoreError(f"{path} fails the integrity check: {result}")
    if version > latest_version():
        raise RestoreError(f"{path} has schema {version}, newer than this software ({latest_version()})")
    return int(version)


def restore(backup: Path, db_path: Path, backups_dir: Path, keep: int) -> Path | None:
    """Replace the database with ``backup`` atomically; the current one is backed up first.

    The hub must be stopped (the caller holds the data-directory lock).
    """
    check_backup(backup)
    safety = None
    if db_path.exists():
        safety = backup_database(db_path, backups_dir, "pre-restore", keep)
    tmp = db_path.with_suffix(".restoring")
    src, dst = sqlite3.connect(f"file:{backup}?mode=ro", uri=True), sqlite3.connect(str(tmp))
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    for suffix in ("-wal", "-shm"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    os.replace(tmp, db_path)
    os.chmod(db_path, 0o600)
    dir_fd = os.open(db_path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return safety
