"""The reference district ingest service.

Consumes ``up/batch`` and ``up/hello`` of every hub through an MQTT v5 shared
subscription (``$share/district-ingest/...``), so any number of instances split
the load. Against a 3.1.1-only broker the link falls back to 3.1.1 (see
``sync/mqttlink.py``); the shared subscription then works only where that broker
offers ``$share`` to 3.1.1 clients (Mosquitto >= 1.6 does); elsewhere run one instance.

For each batch, in this order:

1. check the sender: the topic's hub must be registered for the topic's school
   (the broker's ACL already pins a hub to its own prefix; this is the second lock);
2. validate the envelope (hash before decompression, size limits, schema);
3. write it in one transaction (idempotent, see ``store.py``) and commit;
4. publish the ack to the hub (QoS 1);
5. only then PUBACK the broker (``manual_ack``).

Group commit: the network thread only queues messages; one worker takes every
batch that arrived meanwhile (up to ``max_group``), validates each, writes the
valid ones in one transaction and commits once, then acks each. The commit's
fsync (tens of milliseconds on a busy disk) was most of the time per batch; it
is now paid once per group, and the broker keeps delivering while it runs
(up to its in-flight window, since nothing is PUBACKed before the commit).

A crash between 3 and 4 loses nothing: the hub re-sends after its ack timeout
(or asks with hello after reconnecting) and the batch is acked as a duplicate.
A batch that fails 1 or 2 is quarantined with its reason and answered with a
``rejected`` ack; the next batch is processed as usual.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from sync.district.store import Store
from sync.mqttlink import Link, LinkSettings
from sync.wire import topics
from sync.wire.batch import Batch, BatchError, decode, decode_header
from sync.wire.messages import Ack, Hello

log = logging.getLogger(__name__)

# Fault injection for the crash tests only: exit (like kill -9) right after the
# Nth database commit, before the ack is published.
_FAULT_ENV = "DISTRICT_INGEST_FAULT_EXIT_AFTER_COMMIT"


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """The cyclic garbage collector off for the duration.

    A group holds up to ~100,000 decoded events (tuples, so tracked by the
    collector) from decoding until its commit; they survive many young
    collections, get promoted, and each full collection walks all of them. That
    tripled the ingest's CPU per event. They hold no reference cycles, so plain
    reference counting frees them; the collector runs again after the group.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass
class _Item:
    """One received message, and what became of it within its group."""

    msg: mqtt.MQTTMessage
    client: mqtt.Client
    connection: int  # the connection it arrived on: a PUBACK goes only to that one
    hub: topics.HubTopics | None = None
    batch: Batch | None = None
    ok: bool = True  # False: not handled (e.g. the database failed), so no PUBACK; it comes again
    acks: list[Ack] = field(default_factory=list)


class Ingest:
    def __init__(
        self,
        store: Store,
        settings: LinkSettings,
        district: str = "+",
        max_raw_bytes: int = 8 * 1_048_576,
        max_events: int = 20_000,
        max_group: int = 64,
    ) -> None:
        self.store = store
        self.district = district
        self.max_raw_bytes = max_raw_bytes
        self.max_events = max_events
        self.max_group = max_group
        # A persistent session: batches published while every instance is down wait at the broker.
        settings.clean_start = False
        settings.session_expiry_s = settings.session_expiry_s or 86400
        self.link = Link(settings, self._subscribe, self._message, manual_ack=True, on_subscribe=self._subscribed)
        self.ready = threading.Event()
        self.stats = {"batches": 0, "duplicates": 0, "events": 0, "rejected": 0, "hellos": 0, "commits": 0}
        self._stats_lock = threading.Lock()
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._connection = 0
        self._worker: threading.Thread | None = None
        fault = os.environ.get(_FAULT_ENV, "")
        self._exit_after_commit = int(fault) if fault.isdigit() else 0

    def start(self) -> None:
        # Everything alive now (modules, classes, pydantic and paho internals) lives as long
        # as the process: out of the collector's sight, a full collection walks only what
        # the batches allocate. In the fleet benchmark the collector's walks were ~3 % of
        # an ingest's CPU (perf).
        gc.freeze()
        self._worker = threading.Thread(target=self._work, name="ingest-worker", daemon=True)
        self._worker.start()
        self.link.start()

    def stop(self) -> None:
        self.link.stop()
        self._queue.put(None)
        if self._worker:
            self._worker.join(30)

    def _subscribe(self, client: mqtt.Client) -> None:
        self._connection += 1
        for flt in topics.ingest_filters(self.district):
            client.subscribe(flt, qos=1)

    def _subscribed(self, client: mqtt.Client, userdata: object, mid: int, reasons: list, props: object) -> None:
        failed = [str(r) for r in reasons if getattr(r, "is_failure", False)]
        if failed:
            log.error("the broker refused the ingest subscription (check the ACL)", extra={"reasons": failed})
            return
        if not self.ready.is_set():
            log.info("district-ingest ready: subscribed to every hub's uplink")
        self.ready.set()

    def _message(self, client: mqtt.Client, msg: mqtt.MQTTMessage) -> None:
        self._queue.put(_Item(msg, client, self._connection))

    # -- the worker: one group at a time ------------------------------------------------
    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < self.max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                group.append(item)
            try:
                with no_gc():
                    self._process(group)
            except Exception:
                log.exception("ingest group failed; its batches will be re-sent")

    def _process(self, group: list[_Item]) -> None:
        hellos = []
        valid = []
        for item in group:
            try:
                parsed = topics.parse_up(item.msg.topic)
                if parsed is None:
                    self.store.quarantine(None, item.msg.topic, "topic", "not an uplink topic", item.msg.payload, time.time())
                    continue
                item.hub, what = parsed
                if what == "batch":
                    self._check_batch(item)
                    if item.batch is not None:
                        valid.append(item)
                elif what == "hello":
                    hellos.append(item)
            except Exception:
                # The database is down or similar: no ack and no PUBACK, so the message comes again.
                log.exception("ingest failed; the batch will be re-sent", extra={"topic": item.msg.topic})
                item.ok = False
        if valid:
            self._commit(valid)
        for item in group:
            for ack in item.acks:
                assert item.hub is not None
                self.link.publish(item.hub.ack, ack.to_bytes(), qos=1)
        # Hellos after the group's commit, so the high-water mark includes it.
        for item in hellos:
            try:
                self._hello(item)
            except Exception:
                log.exception("hello failed", extra={"topic": item.msg.topic})
                item.ok = False
        for item in group:
            if item.ok and item.connection == self._connection:
                item.client.ack(item.msg.mid, item.msg.qos)

    def _commit(self, valid: list[_Item]) -> None:
        try:
            duplicates = self.store.ingest_many([(i.batch.header, i.batch.events) for i in valid if i.batch], time.time())
        except Exception:
            log.exception("ingest commit failed; the batches will be re-sent", extra={"batches": len(valid)})
            for item in valid:
                item.ok = False
            return
        with self._stats_lock:
            self.stats["commits"] += 1
            for item, duplicate in zip(valid, duplicates, strict=True):
                assert item.batch is not None
                self.stats["batches"] += 1
                self.stats["duplicates"] += int(duplicate)
                self.stats["events"] += 0 if duplicate else item.batch.header.count
            committed = self.stats["batches"]
        if self._exit_after_commit and committed >= self._exit_after_commit:
            log.error("fault injection: exiting between commit and ack", extra={"batches": len(valid)})
            os._exit(70)
        for item, duplicate in zip(valid, duplicates, strict=True):
            assert item.batch is not None
            h = item.batch.header
            item.acks.append(Ack(kind="batch", status="ok", first=h.first, last=h.last, duplicate=duplicate))

    def _registered(self, hub: topics.HubTopics) -> bool:
        return self.store.hub_school(hub.hub) == (hub.district, hub.school)

    def _reject(self, item: _Item, reason: str, detail: str, body: bytes, first: int | None, last: int | None) -> None:
        hub = item.hub
        assert hub is not None
        self.store.quarantine(hub.hub, item.msg.topic, reason, detail, body, time.time())
        with self._stats_lock:
            self.stats["rejected"] += 1
        log.warning("batch quarantined", extra={"hub": hub.hub, "reason": reason, "detail": detail, "first": first, "last": last})
        item.acks.append(Ack(kind="batch", status="rejected", first=first, last=last, reason=reason))

    def _check_batch(self, item: _Item) -> None:
        """Sets ``item.batch`` when the batch is valid and new; otherwise answers it (duplicate ack or rejection)."""
        hub, body = item.hub, item.msg.payload
        assert hub is not None
        first = last = None
        try:
            header, _ = decode_header(body)
            first, last = header.first, header.last
        except BatchError:
            pass
        if not self._registered(hub):
            self._reject(item, "identity", f"hub {hub.hub} is not registered for school {hub.school}", body, first, last)
            return
        if first is not None and last is not None and self.store.has_batch(hub.hub, first, last):
            # A re-sent batch we already committed (its ack was lost or late): ack it
            # again without decompressing it. The ack names a range this hub sent on
            # its own topic, and the (hub, first, last) row proves it was stored.
            with self._stats_lock:
                self.stats["batches"] += 1
                self.stats["duplicates"] += 1
            item.acks.append(Ack(kind="batch", status="ok", first=first, last=last, duplicate=True))
            return
        try:
            batch = decode(body, self.max_raw_bytes, self.max_events)
        except BatchError as exc:
            self._reject(item, exc.reason, exc.detail, body, first, last)
            return
        h = batch.header
        if (h.district, h.school, h.hub) != (hub.district, hub.school, hub.hub):
            self._reject(item, "identity", "envelope names another hub or school than its topic", body, h.first, h.last)
            return
        item.batch = batch

    def _hello(self, item: _Item) -> None:
        hub, msg = item.hub, item.msg
        assert hub is not None
        if not self._registered(hub):
            self._reject(item, "identity", f"hub {hub.hub} is not registered for school {hub.school}", b"", None, None)
        else:
            try:
                hello = Hello.model_validate_json(msg.payload)
            except ValueError as exc:
                self._reject(item, "schema", f"hello: {exc}", msg.payload, None, None)
            else:
                hwm = self.store.hwm(hub.hub, hello.floor)
                with self._stats_lock:
                    self.stats["hellos"] += 1
                item.acks.append(Ack(kind="state", hwm=hwm))
        for ack in item.acks:
            self.link.publish(hub.ack, ack.to_bytes(), qos=1)
        item.acks.clear()
