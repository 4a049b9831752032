"""A hub whose address changes is found at the new address within seconds (network namespaces)."""

from __future__ import annotations

import time
import uuid

import pytest
from netns import Agent, agent_argv, netns_pair, netns_unavailable_reason

_reason = netns_unavailable_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")


@pytest.fixture
def pair():
    with netns_pair() as p:
        yield p


def test_watching_tablet_sees_the_new_address_within_5_s(pair):
    old, new = pair.addr(1), pair.addr(77)
    pair.set_hub_address(None, old)
    hub_id = str(uuid.uuid4())
    # A long poll interval: the change must be noticed through netlink, not by polling.
    hub = Agent(agent_argv(pair, pair.hub, "hub", "--id", hub_id, "--poll", "30"))
    tablet = Agent(agent_argv(pair, pair.tab, "watch"))
    try:
        assert hub.wait(lambda m: m["event"] == "ready", 10)["addresses"] == [old]
        tablet.wait(lambda m: m["event"] == "endpoint" and m["addresses"] == [old], 10)
        changed_at = time.time()
        pair.set_hub_address(old, new)
        seen = tablet.wait(lambda m: m["event"] == "endpoint" and m["addresses"] == [new], 5)
        assert seen["id"] == hub_id
        assert seen["t"] - changed_at < 5.0
    finally:
        tablet.stop()
        hub.stop()


def test_fresh_lookup_after_the_change_returns_only_the_new_address(pair):
    old, new = pair.addr(1), pair.addr(78)
    pair.set_hub_address(None, old)
    hub_id = str(uuid.uuid4())
    hub = Agent(agent_argv(pair, pair.hub, "hub", "--id", hub_id, "--poll", "30"))
    try:
        hub.wait(lambda m: m["event"] == "ready", 10)
        pair.set_hub_address(old, new)
        hub.wait(lambda m: m["event"] == "reannounced" and m["addresses"] == [new], 5)
        lookup = Agent(agent_argv(pair, pair.tab, "resolve", "--id", hub_id))
        try:
            assert lookup.wait(lambda m: m["event"] == "resolved", 10)["addresses"] == [new]
        finally:
            lookup.stop()
    finally:
        hub.stop()
