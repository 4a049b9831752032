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

A crash between 3 and 4 loses nothing: the hub re-sends after its ack timeout
(or asks with hello after reconnecting) and the batch is acked as a duplicate.
A batch that fails 1 or 2 is quarantined with its reason and answered with a
``rejected`` ack; the next batch is processed as usual.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import paho.mqtt.client as mqtt

from sync.district.store import Store
from sync.mqttlink import Link, LinkSettings
from sync.wire import topics
from sync.wire.batch import BatchError, decode, decode_header
from sync.wire.messages import Ack, Hello

log = logging.getLogger(__name__)

# Fault injection for the crash tests only: exit (like kill -9) right after the
# Nth database commit, before the ack is published.
_FAULT_ENV = "DISTRICT_INGEST_FAULT_EXIT_AFTER_COMMIT"


class Ingest:
    def __init__(
        self,
        store: Store,
        settings: LinkSettings,
        district: str = "+",
        max_raw_bytes: int = 8 * 1_048_576,
        max_events: int = 20_000,
    ) -> None:
        self.store = store
        self.district = district
        self.max_raw_bytes = max_raw_bytes
        self.max_events = max_events
        # A persistent session: batches published while every instance is down wait at the broker.
        settings.clean_start = False
        settings.session_expiry_s = settings.session_expiry_s or 86400
        self.link = Link(settings, self._subscribe, self._message, manual_ack=True, on_subscribe=self._subscribed)
        self.ready = threading.Event()
        self.stats = {"batches": 0, "duplicates": 0, "events": 0, "rejected": 0, "hellos": 0}
        self._stats_lock = threading.Lock()
        fault = os.environ.get(_FAULT_ENV, "")
        self._exit_after_commit = int(fault) if fault.isdigit() else 0

    def start(self) -> None:
        self.link.start()

    def stop(self) -> None:
        self.link.stop()

    def _subscribe(self, client: mqtt.Client) -> None:
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
        try:
            parsed = topics.parse_up(msg.topic)
            if parsed is None:
                self.store.quarantine(None, msg.topic, "topic", "not an uplink topic", msg.payload, time.time())
            else:
                hub, what = parsed
                if what == "batch":
                    self._batch(hub, msg)
                elif what == "hello":
                    self._hello(hub, msg)
        except Exception:
            # The database is down or similar: no ack and no PUBACK, so the batch
            # comes again (the hub re-sends after its ack timeout).
            log.exception("ingest failed; the batch will be re-sent", extra={"topic": msg.topic})
            return
        client.ack(msg.mid, msg.qos)

    def _registered(self, hub: topics.HubTopics) -> bool:
        return self.store.hub_school(hub.hub) == (hub.district, hub.school)

    def _reject(self, hub: topics.HubTopics, topic: str, reason: str, detail: str, body: bytes, first: int | None, last: int | None) -> None:
        self.store.quarantine(hub.hub, topic, reason, detail, body, time.time())
        with self._stats_lock:
            self.stats["rejected"] += 1
        log.warning("batch quarantined", extra={"hub": hub.hub, "reason": reason, "detail": detail, "first": first, "last": last})
        ack = Ack(kind="batch", status="rejected", first=first, last=last, reason=reason)
        self.link.publish(hub.ack, ack.to_bytes(), qos=1)

    def _batch(self, hub: topics.HubTopics, msg: mqtt.MQTTMessage) -> None:
        body = msg.payload
        first = last = None
        try:
            header, _ = decode_header(body)
            first, last = header.first, header.last
        except BatchError:
            pass
        if not self._registered(hub):
            self._reject(hub, msg.topic, "identity", f"hub {hub.hub} is not registered for school {hub.school}", body, first, last)
            return
        if first is not None and last is not None and self.store.has_batch(hub.hub, first, last):
            # A re-sent batch we already committed (its ack was lost or late): ack it
            # again without decompressing it. The ack names a range this hub sent on
            # its own topic, and the (hub, first, last) row proves it was stored.
            with self._stats_lock:
                self.stats["batches"] += 1
                self.stats["duplicates"] += 1
            self.link.publish(hub.ack, Ack(kind="batch", status="ok", first=first, last=last, duplicate=True).to_bytes(), qos=1)
            return
        try:
            batch = decode(body, self.max_raw_bytes, self.max_events)
        except BatchError as exc:
            self._reject(hub, msg.topic, exc.reason, exc.detail, body, first, last)
            return
        h = batch.header
        if (h.district, h.school, h.hub) != (hub.district, hub.school, hub.hub):
            self._reject(hub, msg.topic, "identity", "envelope names another hub or school than its topic", body, h.first, h.last)
            return
        duplicate = self.store.ingest(h, batch.events, time.time())
        with self._stats_lock:
            self.stats["batches"] += 1
            self.stats["duplicates"] += int(duplicate)
            self.stats["events"] += 0 if duplicate else h.count
            committed = self.stats["batches"]
        if self._exit_after_commit and committed >= self._exit_after_commit:
            log.error("fault injection: exiting between commit and ack", extra={"first": h.first, "last": h.last})
            os._exit(70)
        ack = Ack(kind="batch", status="ok", first=h.first, last=h.last, duplicate=duplicate)
        self.link.publish(hub.ack, ack.to_bytes(), qos=1)

    def _hello(self, hub: topics.HubTopics, msg: mqtt.MQTTMessage) -> None:
        if not self._registered(hub):
            self._reject(hub, msg.topic, "identity", f"hub {hub.hub} is not registered for school {hub.school}", b"", None, None)
            return
        try:
            hello = Hello.model_validate_json(msg.payload)
        except ValueError as exc:
            self._reject(hub, msg.topic, "schema", f"hello: {exc}", msg.payload, None, None)
            return
        hwm = self.store.hwm(hub.hub, hello.floor)
        with self._stats_lock:
            self.stats["hellos"] += 1
        self.link.publish(hub.ack, Ack(kind="state", hwm=hwm).to_bytes(), qos=1)
