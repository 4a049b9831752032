"""The uplink end to end: a real Mosquitto with the district configuration, a
real district-ingest process, the hub's agent; rows leave the outbox only on
the district's ack."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


class _ScriptedDistrict:
    """Answers hello with high-water mark 0 and acks only the batches the test names."""

    def __init__(self, broker, pki, hub) -> None:
        import threading

        from sync.wire.batch import decode_header

        self.topics = HubTopics(DISTRICT, hub.school, hub.hub_id)
        self.batches: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        self._decode_header = decode_header
        self.client = DistrictClient(broker, pki)
        self.client.run(self._on_message, [(f"edu/{DISTRICT}/+/+/up/#", 1)])

    def _on_message(self, client, msg) -> None:
        if msg.topic.endswith("/up/hello"):
            client.publish(self.topics.ack, Ack(kind="state", hwm=0).to_bytes(), qos=1)
        elif msg.topic.endswith("/up/batch"):
            header, _ = self._decode_header(msg.payload)
            with self._lock:
                self.batches.append((header.first, header.last))

    def ack(self, first: int, last: int) -> None:
        assert self.client.link is not None
        self.client.link.publish(self.topics.ack, Ack(kind="batch", status="ok", first=first, last=last).to_bytes(), qos=1)

    def stop(self) -> None:
        self.client.stop()


def test_acked_rows_leave_the_outbox_several_batches_at_a_time_and_when_the_window_empties(tmp_path, broker, pki, district):
    # Each commit that deletes acked rows rewrites the outbox's event-id index, so acked
    # ranges leave together: after delete_every_batches acks, or once nothing is in flight.
    with _scripted_uplink(tmp_path, broker, pki, district, inflight_batches=5, delete_every_batches=3, delete_within_s=600.0) as (hub, n, dist, agent):
        seqs = [r[0] for r in hub.db.execute("SELECT seq FROM outbox ORDER BY seq")]
        wait_for(lambda: len(dist.batches) == 5, 20, "a full window of batches")
        first_five = list(dist.batches)
        for b in first_five[:2]:
            dist.ack(*b)
        wait_for(lambda: agent.uplink.progress.acked_batches == 2, 10, "two acks")
        assert hub.depth() == n  # acked, waiting for the third
        dist.ack(*first_five[2])
        wait_for(lambda: hub.depth() == n - 300, 10, "the three acked batches to leave together")
        # Acked out of order: the rows of exactly the acked ranges leave, nothing else.
        dist.ack(*first_five[4])
        wait_for(lambda: agent.uplink.progress.acked_batches == 4, 10, "a fourth ack")
        assert hub.depth() == n - 300
        # Ack everything sent from now on; once nothing is in flight the last acked ranges leave at once.
        done: set[tuple[int, int]] = set(first_five[:3]) | {first_five[4]}
        dist.ack(*first_five[3])
        done.add(first_five[3])
        deadline = time.monotonic() + 30
        while hub.depth() and time.monotonic() < deadline:
            for b in list(dist.batches):
                if b not in done:
                    dist.ack(*b)
                    done.add(b)
            time.sleep(0.05)
        assert hub.depth() == 0
        assert agent.uplink.drained()
        assert agent.uplink.progress.acked_events == n == len(seqs)


def test_an_acked_batch_waits_at_most_delete_within_s_to_leave(tmp_path, broker, pki, district):
    with _scripted_uplink(tmp_path, broker, pki, district, inflight_batches=3, delete_every_batches=64, delete_within_s=1.0) as (hub, n, dist, agent):
        wait_for(lambda: len(dist.batches) == 3, 20, "a full window of batches")
        dist.ack(*dist.batches[0])
        wait_for(lambda: agent.uplink.progress.acked_batches == 1, 10, "the ack")
        acked_at = time.monotonic()
        assert hub.depth() == n
        wait_for(lambda: hub.depth() == n - 100, 10, "the acked rows to leave")  # the uplink's own tick, every 0.5 s
        assert 0.9 < time.monotonic() - acked_at < 5
        assert len(dist.batches) == 4  # its slot was free at once: the next batch went out with the ack


@contextmanager
def _scripted_uplink(tmp_path, broker, pki, district, **sync: float) -> Iterator[tuple[Any, int, Any, Any]]:  # type: ignore[no-untyped-def]
    """A hub with 1 % of a school day in 100-event batches, its uplink started against a scripted
    district that acks only when told: yields (hub, events, district, agent)."""
    _, store = district
    hub = make_hub(tmp_path, broker, pki, register=store, sync={"batch_max_events": 100, "ack_timeout_s": 600.0, **sync})
    n = write_day(hub.db, hub.hub_id, scale=0.01)
    dist = _ScriptedDistrict(broker, pki, hub)
    agent = hub.agent()
    agent.uplink.enable("test")
    agent.uplink.start()
    try:
        yield hub, n, dist, agent
    finally:
        agent.uplink.stop()
        dist.stop()
