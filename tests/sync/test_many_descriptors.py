"""The MQTT link in a process that holds more than 1024 file descriptors.

``select()`` cannot watch a descriptor numbered 1024 or above; paho's own loop uses
it, so in such a process every connection looked lost at once and the link took
the broker for one without MQTT v5. The full suite reached that many descriptors
(browsers, hubs, databases) before the sync tests ran, which is why they once
needed a process of their own. Every sync test now runs that way (conftest); this
one checks that the agent's socket really is above 1024."""

from __future__ import annotations

import os

import paho.mqtt.client as mqtt

from .schoolday import write_day
from .support import assert_exactly_once, hold_descriptors_up_to, make_hub, wait_for


def test_the_link_works_with_its_socket_above_descriptor_1024(tmp_path, broker, pki, district, ingest):
    # conftest's high_descriptors raised the limit and filled 0..1100 at the session's start;
    # fill whatever was closed below that since (a new socket takes the lowest free number).
    held = hold_descriptors_up_to(1100)
    try:
        _sync_a_day(tmp_path, broker, pki, district, ingest)
    finally:
        for fd in held:
            os.close(fd)


def _sync_a_day(tmp_path, broker, pki, district, ingest) -> None:
    url, store = district
    hub = make_hub(tmp_path, broker, pki, register=store)
    n = write_day(hub.db, hub.hub_id, scale=0.05)
    ingest()
    agent = hub.agent()
    agent.uplink.enable("test")
    agent.uplink.start()
    try:
        wait_for(agent.uplink.drained, 60, "the district to ack the day", step=agent.uplink.tick)
        link = agent.uplink.link
        assert link.client.socket().fileno() >= 1024
        assert link.protocol == mqtt.MQTTv5  # not demoted to 3.1.1 by a select() error
    finally:
        agent.uplink.stop()
    assert_exactly_once(url, hub, n)
