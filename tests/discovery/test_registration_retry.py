"""The hub's arbiter does not wait forever on an mDNS registration that hangs.

The first attempt here is a real advertiser held back before its ``start()`` (standing
in for a zeroconf instance stuck during set-up); the second is a real advertiser on
loopback. The hub must become registered through the second, log the stuck thread's
stack, and withdraw the first quietly when it finishes late.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from edge.config import load_config
from edge.discovery import HubAdvertiser
from edge.server import gunicorn_app
from edge.tablet_client.discover import resolve_hub

LOOPBACK = ["127.0.0.1"]


class HeldBack:
    """A real advertiser whose start() waits until the test lets it go."""

    def __init__(self, real: HubAdvertiser) -> None:
        self.real = real
        self.release = threading.Event()
        self.discarded = threading.Event()

    def start(self) -> None:
        self.release.wait(30)
        self.real.start()

    def discard(self) -> None:
        self.real.discard()
        self.discarded.set()

    def stop(self) -> None:
        self.real.stop()


def _config(tmp_path: Path, school: str) -> Any:
    return load_config(environ={}, overrides={
        "hub": {"data_dir": str(tmp_path), "school": school, "room": "101"},
        "discovery": {"interfaces": ["lo"]},
        "http": {"port": 8765},
    })


def test_a_hung_registration_is_abandoned_and_started_again(tmp_path: Path, school: str, monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    config = _config(tmp_path, school)
    config.run_dir.mkdir(parents=True)
    hub_id = str(uuid.uuid4())
    advertising = gunicorn_app._Advertising(config, hub_id)
    monkeypatch.setattr(advertising, "REGISTER_DEADLINE_S", 8.0)  # a real registration takes ~2 s, more on a loaded CI
    made: list[Any] = []
    real_new = advertising._new_advertiser

    def new_advertiser() -> Any:
        adv = real_new() if made else HeldBack(real_new())
        made.append(adv)
        return adv

    monkeypatch.setattr(advertising, "_new_advertiser", new_advertiser)
    caplog.set_level(logging.INFO)
    t0 = time.monotonic()
    advertising.start()
    try:
        assert advertising.registered.wait(30), "never registered"
        assert time.monotonic() - t0 < 25
        assert advertising.failed is None and advertising.advertiser is made[1]
        assert (config.run_dir / gunicorn_app.DISCOVERY_STATE_FILE).read_text() == "registered"
        stuck = [r for r in caplog.records if r.getMessage() == "mDNS registration did not finish; starting it again"]
        assert len(stuck) == 1 and stuck[0].attempt == 1
        assert any(name.startswith("mdns-register-1") and "release.wait" in stack for name, stack in stuck[0].threads.items())
        endpoint = resolve_hub(hub_id, 5, interfaces=LOOPBACK)
        assert (endpoint.id, endpoint.name, endpoint.port) == (hub_id, f"{school} 101", 8765)

        # The stuck attempt finishes late: it goes away without goodbyes, and the hub stays found.
        made[0].release.set()
        assert made[0].discarded.wait(15)
        assert made[0].real._zc is None
        assert advertising.alive()
        assert resolve_hub(hub_id, 5, interfaces=LOOPBACK).id == hub_id
    finally:
        made[0].release.set()
        advertising.stop()


def test_registration_that_never_finishes_fails_loudly_and_the_hub_still_serves(tmp_path: Path, school: str,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, school)
    config.run_dir.mkdir(parents=True)
    advertising = gunicorn_app._Advertising(config, str(uuid.uuid4()))
    monkeypatch.setattr(advertising, "REGISTER_DEADLINE_S", 0.3)
    held: list[HeldBack] = []

    def new_advertiser() -> HeldBack:
        held.append(HeldBack(gunicorn_app._Advertising._new_advertiser(advertising)))
        return held[-1]

    monkeypatch.setattr(advertising, "_new_advertiser", new_advertiser)
    advertising.start()
    try:
        assert advertising.registered.wait(10)
        assert len(held) == advertising.ATTEMPTS
        assert advertising.failed == f"registration did not finish in {advertising.ATTEMPTS} attempts of 0.3 s"
        state = (config.run_dir / gunicorn_app.DISCOVERY_STATE_FILE).read_text()
        assert state.startswith("failed: registration did not finish")
        assert advertising.alive()  # serving by address: not a reason for the watchdog to restart the hub
    finally:
        for h in held:
            h.release.set()
        for h in held:
            assert h.discarded.wait(15)
