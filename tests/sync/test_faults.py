"""Fault tests: real Mosquitto and district-ingest processes killed and
restarted for real; after each, the district holds every event exactly once."""

from __future__ import annotations

import random
import time

import pytest

from edge import outbox
from edge.storage.db import transaction
from sync.agent.batcher import Batcher, Limits
from sync.district.store import open_store
from sync.wire.batch import encode
from sync.wire.messages import Ack
from sync.wire.topics import HubTopics

from .schoolday import write_day
from .support import DISTRICT, DistrictClient, assert_exactly_once, make_hub, wait_for


def _run(agent):
    agent.uplink.enable("test")
    agent.uplink.start()
    return agent


def _drain(agent, timeout=90):
    try:
        wait_for(agent.uplink.drained, timeout, "the district to ack everything", step=agent.uplink.tick)
    finally:
        agent.uplink.stop()


def _append(hub, n, start_at=None):
    with transaction(hub.db):
        for i in range(n):
            seq = outbox.append(hub.db, "device.telemetry", {"device": "tab-01", "battery": i % 100})
            if start_at is not None:
                hub.db.conn.execute("UPDATE outbox SET created_at = ? WHERE seq = ?", (start_at + i, seq))


@pytest.mark.slow
def test_broker_killed_mid_batch_ten_times(tmp_path, broker, pki, district, ingest):
    url, store = district
    hub = make_hub(tmp_path, broker, pki, register=store, sync={"batch_max_events": 300})
    ingest()
    agent = _run(hub.agent())
    rng = random.Random(5)
    total = 0
    for _ in range(10):
        _append(hub, 1500)
        total += 1500
        sent = agent.uplink.progress.sent_batches
        wait_for(lambda s=sent: agent.uplink.progress.sent_batches > s, 30, "a batch in flight", step=agent.uplink.tick)
        time.sleep(rng.uniform(0, 0.3))
        broker.kill()
        time.sleep(rng.uniform(0, 0.5))
        broker.start()
    _drain(agent)
    assert_exactly_once(url, hub, total)


def test_ingest_killed_between_commit_and_ack(tmp_path, broker, pki, district, ingest):
    url, store = district
    hub = make_hub(tmp_path, broker, pki, register=store, sync={"batch_max_events": 200})
    n = write_day(hub.db, hub.hub_id, scale=0.05)
    crashing = ingest("1", env={"DISTRICT_INGEST_FAULT_EXIT_AFTER_COMMIT": "3"})
    agent = _run(hub.agent())
    crashing.proc.wait(30)
    assert crashing.proc.returncode == 70  # died after committing batch 3, before its ack
    committed_unacked = len(open_store(url).event_seqs(hub.hub_id))
    assert committed_unacked > 0 and hub.depth() > n - committed_unacked  # the district has rows the hub still holds
    ingest("2")
    _drain(agent)
    assert_exactly_once(url, hub, n)


def test_the_same_batch_delivered_three_times_is_stored_once(tmp_path, broker, pki, district, ingest):
    url, store = district
    hub = make_hub(tmp_path, broker, pki, register=store)
    _append(hub, 50)
    ingest()
    built = Batcher(DISTRICT, hub.school, hub.hub_id, Limits(1000, 1 << 20, 1 << 17)).next_after(hub.db, 0, time.time())
    topics = HubTopics(DISTRICT, hub.school, hub.hub_id)
    acks = []
    as_hub = DistrictClient(broker, pki, cn=hub.hub_id)  # the hub's own identity
    as_hub.run(lambda c, m: acks.append(Ack.model_validate_json(m.payload)), [(topics.ack, 1)])
    try:
        for _ in range(3):
            as_hub.link.publish(topics.batch, built.message, qos=1)
        wait_for(lambda: len(acks) == 3, 20, "three acks")
    finally:
        as_hub.stop()
    assert [a.status for a in acks] == ["ok", "ok", "ok"]
    assert sorted(bool(a.duplicate) for a in acks) == [False, True, True]
    seqs = open_store(url).event_seqs(hub.hub_id)
    assert seqs == list(range(1, 51))


@pytest.mark.slow
def test_a_hub_offline_for_three_days_drains_in_one_window(tmp_path, broker, pki, district, ingest):
    url, store = district
    hub = make_hub(tmp_path, broker, pki, register=store)
    broker.stop()  # the district is unreachable for three days
    day = 86400.0
    n = sum(write_day(hub.db, hub.hub_id, start=1_764_000_000.0 + d * day, seed=d, scale=0.2) for d in range(3))
    agent = _run(hub.agent())
    time.sleep(1.5)
    assert not agent.uplink.connected and hub.depth() == n
    broker.start()
    ingest()
    started = time.monotonic()
    _drain(agent, timeout=120)
    assert time.monotonic() - started < 120  # the window is hours; this is a generous bound, the bench measures
    assert_exactly_once(url, hub, n)


@pytest.mark.parametrize("skew_s", [2 * 3600, -86400, None], ids=["plus-2h", "minus-1-day", "reset-to-1970"])
def test_a_wrong_hub_clock_changes_nothing(tmp_path, broker, pki, district, ingest, skew_s):
    url, store = district
    hub = make_hub(tmp_path, broker, pki, register=store)
    now = time.time()
    stamp = (lambda: 3600.0) if skew_s is None else (lambda: time.time() + skew_s)
    _append(hub, 500, start_at=stamp())  # events stamped by the wrong clock
    _append(hub, 300, start_at=now)  # and some from before the clock went wrong
    ingest()
    agent = hub.agent()
    agent.uplink.clock = stamp
    _run(agent)
    _drain(agent)
    assert_exactly_once(url, hub, 800)


def test_corrupt_and_oversize_batches_are_quarantined_and_the_rest_flows(tmp_path, broker, pki, district, ingest):
    url, store = district
    hub = make_hub(tmp_path, broker, pki, register=store)
    _append(hub, 3000)
    ingest()
    topics = HubTopics(DISTRICT, hub.school, hub.hub_id)
    good = encode(DISTRICT, hub.school, hub.hub_id, 1, 2, 2, b'{"a":1}\n{"a":2}\n', time.time())
    header, body = good.split(b"\n", 1)
    corrupt = header + b"\n" + body[:-3] + bytes(b ^ 0xFF for b in body[-3:])
    huge_raw = b"".join(b'{"seq":%d,"id":"x%d","type":"t","schema":1,"at":0,"payload":{"pad":"%s"}}\n' % (i, i, b"x" * 900) for i in range(1, 20001))
    oversize = encode(DISTRICT, hub.school, hub.hub_id, 1, 20000, 20000, huge_raw, time.time())  # 18 MB raw, small on the wire
    not_json = b"\x00\x01garbage"
    as_hub = DistrictClient(broker, pki, cn=hub.hub_id)
    rejected = []
    as_hub.run(lambda c, m: rejected.append(Ack.model_validate_json(m.payload)), [(topics.ack, 1)])
    agent = _run(hub.agent())
    try:
        for bad in (corrupt, oversize, not_json):
            as_hub.link.publish(topics.batch, bad, qos=1)
        _drain(agent)
    finally:
        as_hub.stop()
    assert_exactly_once(url, hub, 3000)
    reasons = sorted(r[0] for r in open_store(url)._conn().execute("SELECT reason FROM quarantine").fetchall())
    assert reasons == ["hash", "malformed", "oversize"]
    assert {a.reason for a in rejected if a.status == "rejected"} == {"hash", "malformed", "oversize"}


def test_a_hub_cannot_publish_for_a_school_it_is_not_registered_in(tmp_path, broker, pki, district, ingest):
    url, store = district
    hub = make_hub(tmp_path, broker, pki, school="school-9")
    store.register_hub(hub.hub_id, DISTRICT, "school-1")  # the district knows it under another school
    _append(hub, 10)
    ingest()
    agent = _run(hub.agent())
    time.sleep(3)
    agent.uplink.stop()
    assert open_store(url).event_seqs(hub.hub_id) == []
    assert hub.depth() == 10  # kept, not dropped
    assert open_store(url).counts()["quarantine"] >= 1
