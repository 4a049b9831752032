"""Versioned schema migrations, run at start after a backup copy of the database.

The core's migrations are the numbered ``migrations/NNNN_name.sql`` files of
this package, applied in order inside one transaction each; ``PRAGMA
user_version`` records the last one applied. Every capability package
``edge/<capability>/`` may have its own ``migrations/`` folder with its own
numbering, recorded in ``schema_migrations``; capabilities are migrated after
the core, in name order, and may reference core tables but not each other's
(they talk through interfaces, not tables), so their order does not matter. Before applying anything to an existing database a consistent
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
from typing import Any

from edge.storage.db import Database

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """The core's migrations, in order."""
    return _read_folder(resources.files("edge.storage").joinpath("migrations"))


def component_migrations(root: Any = None) -> dict[str, list[Migration]]:
    """Each capability's migrations, keyed by the capability's package name.

    ``root`` is the folder holding the capability packages (``edge`` by default).
    """
    out: dict[str, list[Migration]] = {}
    root = resources.files("edge") if root is None else root
    for package in sorted(root.iterdir(), key=lambda p: p.name):
        if package.name == "storage" or not package.is_dir():
            continue
        folder = package.joinpath("migrations")
        if folder.is_dir():
            found = _read_folder(folder)
            if found:
                out[package.name] = found
    return out


def _read_folder(folder: Any) -> list[Migration]:
    found = []
    for entry in folder.iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    for expected, mig in enumerate(found, start=1):
        if mig.version != expected:
            raise RuntimeError(f"migration numbering in {folder} has a gap or duplicate at {mig.version:04d}")
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


def pending_migrations(db: Database, components: dict[str, list[Migration]] | None = None) -> list[tuple[str, Migration]]:
    """Migrations not yet applied, as (component, migration); the core is ``core``."""
    current = schema_version(db)
    pending = [("core", m) for m in available_migrations() if m.version > current]
    applied: set[tuple[str, int]] = set()
    if current >= 2:  # schema_migrations exists from core 0002 on
        applied = {(r[0], r[1]) for r in db.execute("SELECT component, version FROM schema_migrations")}
    for component, migs in (component_migrations() if components is None else components).items():
        pending += [(component, m) for m in migs if (component, m.version) not in applied]
    return pending


def migrate(
    db: Database, db_path: Path, backups_dir: Path, keep: int = 5, components: dict[str, list[Migration]] | None = None
) -> list[int]:
    """Bring the core and every capability schema up to date.

    Returns the core versions applied. A database whose core schema is newer
    than this code is refused rather than touched.
    """
    current = schema_version(db)
    latest = latest_version()
    if current > latest:
        raise RuntimeError(
            f"database schema {current} is newer than this hub software understands ({latest}); "
            "install the newer release or restore a backup"
        )
    pending = pending_migrations(db, components)
    if not pending:
        return []
    fresh = current == 0 and not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1").fetchone()
    if not fresh:
        first = pending[0]
        label = f"pre-v{first[1].version:04d}" if first[0] == "core" else f"pre-{first[0]}-v{first[1].version:04d}"
        copy = backup_database(db_path, backups_dir, label, keep)
        log.info("backed up database before migration", extra={"backup": str(copy), "from_version": current})
    applied = []
    for component, mig in pending:
        conn = db.conn
        # executescript would commit implicitly; run statements one by one inside our transaction.
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_sql(mig.sql):
                conn.execute(statement)
            if component == "core":
                conn.execute(f"PRAGMA user_version = {mig.version}")
            else:
                conn.execute(
                    "INSERT INTO schema_migrations (component, version, name, applied_at) VALUES (?, ?, ?, ?)",
                    (component, mig.version, mig.name, time.time()),
                )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if component == "core":
            applied.append(mig.version)
        log.info("applied migration", extra={"component": component, "version": mig.version, "migration": mig.name})
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
