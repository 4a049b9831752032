"""MQTT 3.1.1 fallback: the agent and district-ingest connect through a proxy that
makes the real Mosquitto look like a 3.1.1-only broker. Both try v5, are refused,
fall back to 3.1.1 and the whole protocol still works: batches and application-
level acks, the retained online status and the last will, and resuming from the
district's high-water mark after the connection is cut."""

from __future__ import annotations

import json

import paho.mqtt.client as mqtt
import pytest

from sync.wire.topics import HubTopics

from .broker import Broker
from .oldbroker import OldBroker
from .schoolday import write_day
from .support import DISTRICT, DistrictClient, IngestProc, assert_exactly_once, make_hub, wait_for

HUB_PASSWORD = "hub-secret-1"
INGEST_PASSWORD = "ingest-secret-1"


@pytest.mark.parametrize("mode", ["connack", "close"])
def test_a_311_only_broker_gets_the_whole_protocol_over_311(tmp_path, pki, district, monkeypatch, mode):
    url, store = district
    broker = Broker(tmp_path / "broker", pki)
    proxy = OldBroker(broker.password_port, pki.ca_file, pki.server_cert, pki.server_key, mode=mode)
    hub = make_hub(tmp_path, broker, pki, register=store, identity=False, sync={"broker_port": proxy.port})
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "district-mqtt-password").write_text(HUB_PASSWORD)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    ingest_pw = tmp_path / "ingest.pw"
    ingest_pw.write_text(INGEST_PASSWORD)
    broker.add_password(hub.hub_id, HUB_PASSWORD)
    broker.add_password("district-ingest", INGEST_PASSWORD)
    broker.start()
    proxy.start()
    ingest = IngestProc(broker, pki, url, password_file=ingest_pw, port=proxy.port)
    watcher = DistrictClient(broker, pki, cn="district-publish")  # straight to the broker, v5
    topics = HubTopics(DISTRICT, hub.school, hub.hub_id)
    statuses: list[str] = []
    agent = None
    try:
        ingest.start()
        assert b"using MQTT 3.1.1" in ingest.log.read_bytes()
        watcher.run(lambda c, m: statuses.append(json.loads(m.payload)["state"]), [(topics.status, 1)])
        n = write_day(hub.db, hub.hub_id, scale=0.05)
        agent = hub.agent()
        agent.uplink.enable("test")
        agent.uplink.start()
        wait_for(agent.uplink.drained, 60, "the district to ack the day over 3.1.1")
        link = agent.uplink.link
        assert link.protocol == mqtt.MQTTv311 and link.protocol_name == "3.1.1"
        assert agent.uplink.progress.acked_batches > 1
        assert_exactly_once(url, hub, n)
        # Every v5 attempt was turned away; everything that got through spoke 3.1.1.
        assert proxy.levels[5] >= 2 and proxy.levels[4] >= 2 and set(proxy.levels) == {4, 5}
        wait_for(lambda: statuses[-1:] == ["online"], 10, "the retained online status")

        # Cut the line (no DISCONNECT): the broker publishes the last will; the agent
        # reconnects (3.1.1 straight away), asks the high-water mark and sends the rest.
        more = write_day(hub.db, hub.hub_id, scale=0.02, seed=2)
        v5_before = proxy.levels[5]
        proxy.cut()
        try:
            wait_for(lambda: "offline" in statuses, 20, "the last will (offline)")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; statuses {statuses}, cut {proxy.cuts} connections; broker log:\n{_broker_story(broker)}") from None
        wait_for(agent.uplink.drained, 60, "the rest after the cut")
        assert_exactly_once(url, hub, n + more)
        assert proxy.levels[5] == v5_before  # the fallback sticks: no new v5 attempts
        wait_for(lambda: statuses[-1:] == ["online"], 10, "online again")
    finally:
        if agent is not None:
            agent.uplink.stop()
        watcher.stop()
        ingest.stop()
        proxy.stop()
        broker.stop()


def _broker_story(broker: Broker) -> str:
    """The broker's log without the per-packet lines: who connected and left, and how."""
    lines = broker.log.read_text(errors="replace").splitlines()
    return "\n".join(line for line in lines if not any(k in line for k in ("PUBLISH", "PUBACK", "PINGREQ", "PINGRESP", "PUBREC", "PUBREL", "PUBCOMP")))[-4000:]
