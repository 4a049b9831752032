"""Versioned schema migrations, run at start after a backup copy of the database.

Migrations are the numbered ``migrations/NNNN_name.sql`` files of this package,
applied in order inside one transaction each; ``PRAGMA user_version`` records the
last one applied. Before applying anything to an existing database a consistent
copy is written to ``<data_dir>/backups`` with SQLite's online backup API.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from edge.storage.db import Database

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("edge.storage").joinpath("migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    for expected, mig in enumerate(found, start=1):
        if mig.version != expected:
            raise RuntimeError(f"migration numbering has a gap or duplicate at {mig.version:04d}")
    return found


def schema_version(db: Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def latest_version() -> int:
    return available_migrations()[-1].version


def backup_database(db_path: Path, backups_dir: Path, label: str, keep: int) -> Path:
    """Write a consistent copy of ``db_path`` and prune old copies beyond ``keep``."""
    backups_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = backups_dir / f"hub-{stamp}-{label}.sqlite3"
    n = 1
    while target.exists():
        n += 1
        target = backups_dir / f"hub-{stamp}-{label}-{n}.sqlite3"
    src = sqlite3.connect(str(db_path))
    dst = sqlite3.connect(str(target))
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    target.chmod(0o600)
    copies = sorted(backups_dir.glob("hub-*.sqlite3"), key=lambda p: p.stat().st_mtime)
    for old in copies[:-keep]:
        old.unlink(missing_ok=True)
    return target


def migrate(db: Database, db_path: Path, backups_dir: Path, keep: int = 5) -> list[int]:
    """Bring the schema to the latest version; returns the versions applied.

    A database newer than this code is refused rather than touched.
    """
    current = schema_version(db)
    pending = [m for m in available_migrations() if m.version > current]
    latest = latest_version()
    if current > latest:
        raise RuntimeError(
            f"database schema {current} is newer than this hub software understands ({latest}); "
            "install the newer release or restore a backup"
        )
    if not pending:
        return []
    if current > 0:
        copy = backup_database(db_path, backups_dir, f"pre-v{pending[0].version:04d}", keep)
        log.info("backed up database before migration", extra={"backup": str(copy), "from_version": current})
    applied = []
    for mig in pending:
        conn = db.conn
        # executescript would commit implicitly; run statements one by one inside our transaction.
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_sql(mig.sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {mig.version}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        applied.append(mig.version)
        log.info("applied migration", extra={"version": mig.version, "migration": mig.name})
    return applied


def _split_sql(script: str) -> list[str]:
    statements, buf = [], []
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        buf.append(line)
        joined = "\n".join(buf)
        if sqlite3.complete_statement(joined):
            if joined.strip():
                statements.append(joined.strip())
            buf = []
    if "\n".join(buf).strip():
        raise RuntimeError("migration ends with an incomplete statement")
    return statements
