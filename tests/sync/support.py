"""Hubs, district ingest processes and waiting helpers for the sync tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.config import HubConfig, load_config
from edge.storage.db import Database, connect
from edge.storage.setup import prepare_storage
from sync.agent.service import Agent, build_agent
from sync.district.store import SqliteStore, open_store
from tests.proc import dies_with_parent

from .broker import Broker
from .pki import Pki

DISTRICT = "d1"
BIN = Path(sys.executable).parent


@dataclass
class Hub:
    config: HubConfig
    hub_id: str
    school: str
    db: Database

    def agent(self) -> Agent:
        return build_agent(self.config)

    def depth(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


def make_hub(root: Path, broker: Broker, pki: Pki, school: str = "school-1", register: SqliteStore | None = None,
             sync: dict | None = None, identity: bool = True, district: dict | None = None) -> Hub:
    """A migrated hub data dir with its own client certificate, configured for ``broker``; ``district`` is its [district] section."""
    data_dir = root / f"hub-{len(list(root.glob('hub-*')))}"
    empty = root / "empty.toml"
    empty.touch()
    base = load_config(empty, environ={}, overrides={"hub": {"data_dir": str(data_dir)}})
    hub_id, _, _ = prepare_storage(base)
    cert, key = pki.issue(hub_id) if identity else (None, None)
    overrides = {
        "hub": {"data_dir": str(data_dir)},
        "sync": {
            "broker_host": "127.0.0.1", "broker_port": broker.port, "ca_file": str(pki.ca_file),
            "cert_file": str(cert) if cert else None, "key_file": str(key) if key else None,
            "district": DISTRICT, "school_id": school, "ack_timeout_s": 3.0, "reconnect_min_s": 0.2, "reconnect_max_s": 2.0,
            **(sync or {}),
        },
        "district": district or {},
    }
    config = load_config(empty, environ={}, overrides=overrides)
    if register is not None:
        register.register_hub(hub_id, DISTRICT, school)
    return Hub(config, hub_id, school, connect(config.db_path))


class IngestProc:
    """``district-ingest run`` as its own process (so a test can kill it for real)."""

    def __init__(self, broker: Broker, pki: Pki, database: str, instance: str = "1", env: dict[str, str] | None = None,
                 log_dir: Path | None = None, pg_schema: str = "public", password_file: Path | None = None, port: int | None = None) -> None:
        """With ``password_file`` the ingest signs in as user district-ingest with that password (at ``port``), else by certificate."""
        if password_file is None:
            cert, key = pki.issue("district-ingest")
            identity = ["--cert", str(cert), "--key", str(key)]
        else:
            identity = ["--username", "district-ingest", "--password-file", str(password_file)]
        self.args = [
            str(BIN / "district-ingest"), "run", "--broker", "127.0.0.1", "--port", str(port or broker.port), "--ca", str(pki.ca_file),
            *identity, "--database", database, "--pg-schema", pg_schema, "--instance", instance,
        ]
        self.env = {**os.environ, "DISTRICT_LOG_LEVEL": "INFO", **(env or {})}
        self.log = (log_dir or broker.dir) / f"ingest-{instance}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> IngestProc:
        start = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(dies_with_parent(self.args), env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: b"district-ingest ready" in self.log.read_bytes()[start:] or self.proc.poll() is not None, 20, "the ingest to subscribe")
        assert self.proc.poll() is None, self.log.read_text()[-2000:]
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: Callable[[], None] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if step:
            step()
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def district_seqs(database: str, hub_id: str) -> list[int]:
    store = open_store(database)
    try:
        return store.event_seqs(hub_id)
    finally:
        store.close()


def assert_exactly_once(database: str, hub: Hub, expected: int, pg_schema: str = "public") -> None:
    """The district holds seq 1..expected of this hub, each once, and the hub's outbox is empty."""
    store = open_store(database, pg_schema)
    try:
        seqs = store.event_seqs(hub.hub_id)
        counts = store.counts()
    finally:
        store.close()
    assert counts["duplicate_events"] == 0
    assert len(seqs) == len(set(seqs)) == expected, (len(seqs), expected)
    assert seqs == list(range(1, expected + 1))
    assert hub.depth() == 0


class DistrictClient:
    """A test-side MQTT client with the ingest's identity (to play a silent or odd district)."""

    def __init__(self, broker: Broker, pki: Pki, cn: str = "district-ingest") -> None:
        from sync.mqttlink import LinkSettings

        cert, key = pki.issue(cn)
        self.settings = LinkSettings(host="127.0.0.1", port=broker.port, client_id=f"test-{cn}-{time.monotonic_ns()}", ca_file=pki.ca_file,
                                     cert_file=cert, key_file=key, min_delay=0.2, max_delay=1.0)
        self.link = None

    def run(self, on_message: Callable, subscriptions: list[tuple[str, int]], timeout: float = 10.0) -> None:
        import threading

        from sync.mqttlink import Link

        subscribed = threading.Event()

        def connected(client):
            client.subscribe(subscriptions)
            subscribed.set()

        self.link = Link(self.settings, connected, on_message)
        self.link.start()
        assert subscribed.wait(timeout), f"test district client could not connect: {self.link.last_error}"
        time.sleep(0.2)  # let the SUBACK land

    def stop(self) -> None:
        if self.link:
            self.link.stop()


def hold_descriptors_up_to(highest: int) -> list[int]:
    """Open /dev/null until the newest descriptor is numbered ``highest`` or above; returns them all.

    A new socket takes the lowest free number, so with these held it lands above ``highest``
    (where ``select()`` cannot watch it, for ``highest`` >= 1024). Close them when done."""
    held: list[int] = []
    while not held or held[-1] < highest:
        held.append(os.open(os.devnull, os.O_RDONLY))
    return held
