"""Small readiness checks, each answering (ok, detail)."""

from __future__ import annotations

import shutil
from collections.abc import Callable

from edge.context import Hub
from edge.storage.migrations import latest_version, pending_migrations, schema_version

Check = Callable[[Hub], tuple[bool, str]]


def database_reachable(hub: Hub) -> tuple[bool, str]:
    try:
        hub.db.execute("SELECT 1").fetchone()
    except Exception as exc:  # any failure means not ready
        return False, f"database error: {exc}"
    return True, "ok"


def migrations_done(hub: Hub) -> tuple[bool, str]:
    current, latest = schema_version(hub.db), latest_version()
    if current != latest:
        return False, f"schema version {current}, expected {latest}"
    pending = pending_migrations(hub.db)
    if pending:
        return False, "pending: " + ", ".join(f"{c} {m.version:04d}" for c, m in pending)
    return True, f"schema version {current}"


def disk_above_reserve(hub: Hub) -> tuple[bool, str]:
    free = shutil.disk_usage(hub.config.hub.data_dir).free
    reserve = hub.config.storage.disk_reserve_mb * 1_048_576
    if free < reserve:
        return False, f"{free // 1_048_576} MB free, below the {hub.config.storage.disk_reserve_mb} MB reserve"
    return True, f"{free // 1_048_576} MB free"


def discovery_settled(hub: Hub) -> tuple[bool, str]:
    """Under ``serve``, ready only once mDNS registration has finished (or failed:
    the hub then still serves by address, and says so)."""
    if not hub.config.discovery.enabled:
        return True, "disabled"
    path = hub.discovery_state
    if path is None:
        return True, "not advertised by this process"  # the app without the server (tests, tools)
    try:
        state = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return False, "mDNS registration in progress"
    return True, state


READINESS: dict[str, Check] = {
    "discovery": discovery_settled,
    "database": database_reachable,
    "migrations": migrations_done,
    "disk": disk_above_reserve,
}
