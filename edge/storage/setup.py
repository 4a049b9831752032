"""Preparing the data directory: layout, migrations (after a backup), identity."""

from __future__ import annotations

import os

from edge.config import HubConfig
from edge.identity import ensure_identity
from edge.storage.db import connect
from edge.storage.migrations import migrate


def prepare_storage(config: HubConfig) -> tuple[str, str, list[int]]:
    """Create the data directory, migrate the schema and return (hub_id, secret, applied)."""
    data_dir = config.hub.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    for sub in (config.backups_dir, config.run_dir):
        sub.mkdir(parents=True, exist_ok=True)
    db = connect(config.db_path, config.storage.busy_timeout_ms, config.storage.synchronous)
    try:
        applied = migrate(db, config.db_path, config.backups_dir, config.storage.backups_kept)
        hub_id, secret = ensure_identity(db)
    finally:
        db.conn.close()
    os.chmod(config.db_path, 0o600)
    return hub_id, secret, applied
