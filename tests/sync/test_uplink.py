"""The uplink end to end: a real Mosquitto with the district configuration, a
real district-ingest process, the hub's agent; rows leave the outbox only on
the district's ack."""

from __future__ import annotations

import json
import time

from sync.wire.messages import Ack
from sync.wire.topics import HubTopics

from .schoolday import write_day
from .support import DISTRICT, DistrictClient, assert_exactly_once, make_hub, wait_for


def test_a_school_day_arrives_exactly_once_and_leaves_the_outbox(tmp_path, broker, pki, district, ingest):
    url, store = district
    hub = make_hub(tmp_path, broker, pki, register=store)
    n = write_day(hub.db, hub.hub_id, scale=0.2)
    statements = hub.db.execute("SELECT COUNT(*) FROM outbox WHERE type = 'xapi.statement'").fetchone()[0]
    ingest()
    agent = hub.agent()
    agent.uplink.enable("test")
    agent.uplink.start()
    try:
        wait_for(agent.uplink.drained, 60, "the district to ack the day", step=agent.uplink.tick)
    finally:
        agent.uplink.stop()
    assert_exactly_once(url, hub, n)
    assert agent.uplink.progress.sent_batches > 1  # batched, not one message
    assert hub.db.execute("SELECT value FROM hub_meta WHERE key = 'last_sync_at'").fetchone() is not None
    assert store.counts()["statements"] == statements > 0  # keyed by statement id, ready for an LRS


def test_nothing_leaves_the_outbox_on_puback_alone(tmp_path, broker, pki, district):
    # A silent district: answers hello (so the hub sends), receives every batch
    # (so the broker PUBACKs them), never acks. No row may leave the outbox.
    url, store = district
    hub = make_hub(tmp_path, broker, pki, register=store)
    n = write_day(hub.db, hub.hub_id, scale=0.05)
    received = []
    silent = DistrictClient(broker, pki)
    topics = HubTopics(DISTRICT, hub.school, hub.hub_id)

    def on_message(client, msg):
        if msg.topic.endswith("/up/hello"):
            client.publish(topics.ack, Ack(kind="state", hwm=0).to_bytes(), qos=1)
        elif msg.topic.endswith("/up/batch"):
            received.append(msg.payload)

    silent.run(on_message, [(f"edu/{DISTRICT}/+/+/up/#", 1)])
    agent = hub.agent()
    agent.uplink.enable("test")
    agent.uplink.start()
    try:
        wait_for(lambda: len(received) >= 2, 20, "batches to reach the district", step=agent.uplink.tick)
        time.sleep(1)
        assert hub.depth() == n
        assert not agent.uplink.drained()
    finally:
        agent.uplink.stop()
        silent.stop()


def test_two_ingest_instances_share_the_load_into_postgresql(tmp_path, broker, pki):
    # The PostgreSQL backend end to end, with two instances on one shared subscription.
    import uuid

    import psycopg
    import pytest

    from sync.district.store import PostgresStore

    from .support import IngestProc
    from .test_district_store import PG_DSN, _pg_available

    reason = _pg_available()
    if reason:
        pytest.skip(reason)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(PG_DSN, schema)
    procs = []
    try:
        hub = make_hub(tmp_path, broker, pki, sync={"batch_max_events": 250})
        store.register_hub(hub.hub_id, DISTRICT, hub.school)
        n = write_day(hub.db, hub.hub_id, scale=0.1)
        procs = [IngestProc(broker, pki, PG_DSN, str(i), pg_schema=schema).start() for i in (1, 2)]
        agent = hub.agent()
        agent.uplink.enable("test")
        agent.uplink.start()
        try:
            wait_for(agent.uplink.drained, 90, "the district to ack the day")
        finally:
            agent.uplink.stop()
        assert_exactly_once(PG_DSN, hub, n, pg_schema=schema)
        for p in procs:
            p.stop()
        for p in procs:  # both instances took part (Mosquitto hands shared-subscription messages round-robin)
            stats = json.loads(p.log.read_text().split(" stopped: ")[-1].splitlines()[0])
            assert stats["batches"] > 0, stats
    finally:
        for p in procs:
            p.stop()
        store.close()
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
