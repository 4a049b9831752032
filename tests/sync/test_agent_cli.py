"""The ``classroom-sync`` program as the systemd unit runs it, and ``classroom-sync now``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from sync.wire.messages import Status
from sync.wire.topics import HubTopics
from tests.proc import dies_with_parent

from .schoolday import write_day
from .support import BIN, DISTRICT, DistrictClient, assert_exactly_once, make_hub, wait_for


def _env(hub, tmp_path, creds=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_CONFIG"] = str(tmp_path / "empty.toml")
    env["HUB_HUB_DATA_DIR"] = str(hub.config.hub.data_dir)
    env["HUB_LOGGING_FORMAT"] = "text"
    for key, value in hub.config.sync.model_dump().items():
        if value is not None and key != "key_file":
            env[f"HUB_SYNC_{key.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    # The client key comes as the systemd credential, the way the unit passes it.
    creds = tmp_path / "creds"
    creds.mkdir(exist_ok=True)
    (creds / "district-tls-key").write_bytes(hub.config.sync.key_file.read_bytes())
    env["CREDENTIALS_DIRECTORY"] = str(creds)
    return env


def test_now_uploads_everything_with_progress_and_exits_zero(tmp_path, broker, pki, district, ingest):
    url, store = district
    hub = make_hub(tmp_path, broker, pki, register=store)
    n = write_day(hub.db, hub.hub_id, scale=0.1)
    ingest()
    out = subprocess.run([str(BIN / "classroom-sync"), "now", "--timeout", "60"], env=_env(hub, tmp_path), capture_output=True,
                         text=True, timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"done: {n} events" in out.stdout
    assert_exactly_once(url, hub, n)
    status = subprocess.run([str(BIN / "classroom-hub"), "--data-dir", str(hub.config.hub.data_dir), "status", "--json"],
                            env=_env(hub, tmp_path), capture_output=True, text=True, timeout=60)
    info = json.loads(status.stdout)
    assert info["outbox_depth"] == 0 and info["outbox_oldest_age_s"] is None
    assert abs(info["last_sync_at"] - time.time()) < 120


def test_now_without_a_district_fails_clearly(tmp_path, broker, pki):
    hub = make_hub(tmp_path, broker, pki)
    write_day(hub.db, hub.hub_id, scale=0.02)
    broker.stop()
    out = subprocess.run([str(BIN / "classroom-sync"), "now", "--timeout", "3"], env=_env(hub, tmp_path), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1
    assert "not finished" in out.stderr and "cannot reach" in out.stdout
    assert hub.depth() > 0


def test_the_service_shows_online_and_its_last_will_shows_offline(tmp_path, broker, pki, district, ingest):
    url, store = district
    hub = make_hub(tmp_path, broker, pki, register=store)
    topics = HubTopics(DISTRICT, hub.school, hub.hub_id)
    seen = []
    watcher = DistrictClient(broker, pki, cn="district-publish")  # may read every hub's status
    watcher.run(lambda c, m: seen.append(Status.model_validate_json(m.payload).state), [(topics.status, 1)])
    n = write_day(hub.db, hub.hub_id, scale=0.02)
    ingest()
    # Window 00:00-23:59 with no spread: the service uploads as soon as it starts.
    env = {**_env(hub, tmp_path), "HUB_SYNC_WINDOW_START": "00:00", "HUB_SYNC_WINDOW_END": "23:59", "HUB_SYNC_WINDOW_SPREAD_MIN": "0"}
    proc = subprocess.Popen(dies_with_parent([str(BIN / "classroom-sync")]), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "online" in seen, 20, "the retained online status")
        wait_for(lambda: hub.depth() == 0, 60, "the service to upload")
        proc.send_signal(signal.SIGKILL)  # no goodbye: the broker publishes the last will
        proc.wait(10)
        wait_for(lambda: seen[-1] == "offline", 60, "the last will")
    finally:
        if proc.poll() is None:
            proc.kill()
        watcher.stop()
    assert_exactly_once(url, hub, n)
