"""Building the agent from the hub's configuration."""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from edge.config import HubConfig, read_secret
from edge.district_key import district_public_key
from edge.storage.db import Database, connect
from sync.agent.batcher import Batcher, Limits
from sync.agent.download import Downloader
from sync.agent.uplink import Uplink
from sync.mqttlink import LinkSettings
from sync.wire.topics import HubTopics

log = logging.getLogger(__name__)

# Below this multiple of the disk reserve the agent thins unsent telemetry: the hub
# refuses recordings at the reserve itself, so this acts well before anything is refused.
DISK_ALERT_FACTOR = 2

PASSWORD_CREDENTIAL = "district-mqtt-password"  # noqa: S105 - a credential name, not a password
TLS_KEY_CREDENTIAL = "district-tls-key"


class NotConfigured(Exception):
    """The hub is not enrolled with a district (no broker host)."""


@dataclass
class Agent:
    config: HubConfig
    hub_id: str
    db: Database
    uplink: Uplink
    downloader: Downloader

    def last_sync_at(self) -> float | None:
        row = self.db.execute("SELECT value FROM hub_meta WHERE key = 'last_sync_at'").fetchone()
        return float(row[0]) if row else None

    def housekeeping(self) -> None:
        """Disk pressure: alert and thin telemetry (never learning data); drop stale partial downloads."""
        from edge.outbox import thin_telemetry

        data_dir = self.config.hub.data_dir
        free = shutil.disk_usage(data_dir).free
        reserve = self.config.storage.disk_reserve_mb * 1_048_576
        if free < DISK_ALERT_FACTOR * reserve:
            removed = thin_telemetry(self.db)
            log.warning("disk nearly at its reserve: thinned unsent telemetry", extra={
                "free_mb": free // 1_048_576, "reserve_mb": self.config.storage.disk_reserve_mb, "telemetry_removed": removed})
        partial = data_dir / "inbox" / ".partial"
        if partial.is_dir():
            for f in partial.iterdir():
                if time.time() - f.stat().st_mtime > 7 * 86400:
                    f.unlink(missing_ok=True)

    def idle(self) -> bool:
        """The classroom is idle when nothing was written to the outbox for ``idle_after_s``."""
        row = self.db.execute("SELECT MAX(created_at) FROM outbox").fetchone()
        return row[0] is not None and time.time() - float(row[0]) > self.config.sync.idle_after_s


def _key_file(config: HubConfig) -> Path | None:
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (Path(cred_dir) / TLS_KEY_CREDENTIAL).exists():
        return Path(cred_dir) / TLS_KEY_CREDENTIAL
    return config.sync.key_file


# Page cache of the agent's own connection (SQLite's default is 2 MiB). With batches
# in flight, a batch's rows were read (to build it) and read again (to delete them on
# its ack) with several other batches read in between: in 2 MiB, beside the outbox's
# event-id index that every delete walks, they were gone again by then.
AGENT_CACHE_KIB = 8192


def open_db(config: HubConfig) -> Database:
    if not config.db_path.exists():
        raise FileNotFoundError(f"no hub database at {config.db_path}: start classroom-hub (or run 'classroom-hub init') first")
    return connect(config.db_path, config.storage.busy_timeout_ms, config.storage.synchronous)


def build_agent(config: HubConfig, client_suffix: str = "") -> Agent:
    s = config.sync
    if not s.broker_host:
        raise NotConfigured("sync.broker_host is empty: this hub is not enrolled with a district")
    db = open_db(config)
    db.conn.execute(f"PRAGMA cache_size = -{AGENT_CACHE_KIB}")
    row = db.execute("SELECT value FROM hub_meta WHERE key = 'hub_id'").fetchone()
    if not row:
        raise FileNotFoundError("the hub database has no identity yet: start classroom-hub once first")
    hub_id = row[0]
    topics = HubTopics(s.district, s.school_id, hub_id)
    link = LinkSettings(
        host=s.broker_host,
        port=s.broker_port,
        client_id=f"hub-{hub_id}{client_suffix}",
        tls=s.tls,
        ca_file=s.ca_file if s.tls else None,
        cert_file=s.cert_file,
        key_file=_key_file(config),
        username=s.username or hub_id,
        password=read_secret(PASSWORD_CREDENTIAL),
        min_delay=s.reconnect_min_s,
        max_delay=s.reconnect_max_s,
    )
    batcher = Batcher(s.district, s.school_id, hub_id, Limits(s.batch_max_events, s.batch_max_raw_bytes, s.batch_max_wire_bytes))
    downloader = Downloader(open_db(config), None, config.hub.data_dir / "inbox", district_public_key(config), s.download_retries)
    uplink = Uplink(db, topics, batcher, link, s.inflight_batches, s.ack_timeout_s, on_notice=downloader.submit,
                    delete_every=s.delete_every_batches, delete_within_s=s.delete_within_s)
    return Agent(config, hub_id, db, uplink, downloader)
