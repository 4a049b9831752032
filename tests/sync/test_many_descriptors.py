"""The MQTT link in a process that holds more than 1024 file descriptors.

``select()`` cannot watch a descriptor numbered 1024 or above; paho's own loop uses
it, so in such a process every connection looked lost at once and the link took
the broker for one without MQTT v5. The full suite reached that many descriptors
(browsers, hubs, databases) before the sync tests ran, which is why they once
needed a process of their own. Here the agent's socket is forced above 1024."""

from __future__ import annotations

import os
import resource

import paho.mqtt.client as mqtt
import pytest

from .schoolday import write_day
from .support import assert_exactly_once, make_hub, wait_for


@pytest.fixture
def high_descriptors():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.fail(f"RLIMIT_NOFILE hard limit {hard} < 2048: cannot put sockets above descriptor 1024")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    held = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_link_works_with_its_socket_above_descriptor_1024(tmp_path, broker, pki, district, ingest, high_descriptors):
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
