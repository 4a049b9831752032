"""The uplink: outbox -> batches -> district, rows deleted only on the district's ack.

State machine, per connection:

1. CONNACK: publish the retained ``online`` status, subscribe to our acks and
   notices, send ``hello`` with our floor (everything up to it already left the
   outbox). Nothing is sent before the reply.
2. The district's ``state`` reply carries its high-water mark: it holds every
   event up to it. Rows up to it are deleted (their acks were lost), and
   sending resumes right after it.
3. Up to ``inflight_batches`` batches are published (QoS 1) and wait for their
   application-level ack; an ``ok`` ack frees its slot at once and its range is
   deleted with those of the next acks, in one transaction (see below); a
   ``rejected`` ack (quarantined in transit) re-sends the range, rebuilt; a
   batch without an ack after ``ack_timeout_s`` is re-sent. PUBACK means nothing
   here: the broker holding a batch is not the district having it.
4. A disconnect forgets everything in flight; step 1 starts over.

Deleting acked rows: every commit that deletes outbox rows rewrites most pages of
the outbox's ``event_id`` index (random ids, so any batch's rows are spread over all
of it): 3 us per event, the agent's largest cost. Acked ranges therefore wait for
``delete_every`` of them, or ``delete_within_s``, or the window running empty, or a
(re)connect, a stop or a ``drained`` check, whichever comes first, and leave in one
transaction. Waiting costs nothing in safety: the rows were acked, so they are never
sent again (the cursor is past them), and if the agent dies first, the hello after
the restart gets a high-water mark that covers them and they are deleted then.

All state and database work happen under one lock, from paho's network thread
(callbacks) and the caller's thread (``tick``).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from edge import outbox
from edge.storage.db import Database
from sync.agent.batcher import Batcher
from sync.mqttlink import Link, LinkSettings
from sync.wire.messages import Ack, Hello, Notice, Status
from sync.wire.topics import HubTopics

log = logging.getLogger(__name__)

# A range the district rejected this many times in one connection waits for the next one.
_MAX_REJECTS = 3


@dataclass
class _InFlight:
    first: int
    last: int
    count: int
    sent_at: float
    attempts: int = 1


@dataclass
class Progress:
    acked_events: int = 0
    acked_batches: int = 0
    sent_batches: int = 0
    sent_bytes: int = 0
    resent_batches: int = 0
    rejected_batches: int = 0
    last_ack_at: float | None = None
    reasons: set[str] = field(default_factory=set)


class Uplink:
    def __init__(
        self,
        db: Database,
        topics: HubTopics,
        batcher: Batcher,
        link_settings: LinkSettings,
        inflight_batches: int = 8,
        ack_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        on_notice: Callable[[Notice], None] | None = None,
        delete_every: int = 4,
        delete_within_s: float = 30.0,
    ) -> None:
        self.db = db
        self.topics = topics
        self.batcher = batcher
        self.window = inflight_batches
        self.ack_timeout_s = ack_timeout_s
        self.clock = clock
        self.on_notice = on_notice
        self.delete_every = delete_every
        self.delete_within_s = delete_within_s
        self.progress = Progress()
        self._lock = threading.RLock()
        self._ready = False
        self._cursor = 0
        self._inflight: dict[int, _InFlight] = {}
        self._resend: collections.deque[tuple[int, int]] = collections.deque()
        self._rejects: collections.Counter[int] = collections.Counter()
        self._acked: list[tuple[int, int]] = []  # ranges the district acked whose rows are still in the outbox
        self._acked_since: float | None = None  # monotonic time of the oldest of them
        self._acked_at = 0.0  # hub clock at the latest ack (recorded as the last sync)
        self._hello_at: float | None = None
        self._enabled: set[str] = set()
        self._stopping = threading.Event()
        self._ticker: threading.Thread | None = None
        self.upto: int | None = None  # send nothing past this sequence (``classroom-sync now``)
        will = (topics.status, Status(state="offline").to_bytes(), True)
        self.link = Link(link_settings, self._connected, self._message, self._disconnected, will=will)

    # -- control ---------------------------------------------------------------------
    def start(self) -> None:
        self.link.start()
        self._ticker = threading.Thread(target=self._tick_loop, name="uplink-tick", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        with self._lock:
            self._delete_acked()
        self._stopping.set()
        self.link.stop(final=(self.topics.status, Status(state="offline", at=self.clock()).to_bytes(), True))
        if self._ticker is not None:
            self._ticker.join(5)

    def _tick_loop(self) -> None:
        # Time-outs are the uplink's own business: they must fire whoever drives the agent.
        while not self._stopping.wait(0.5):
            try:
                self.tick()
            except Exception:
                log.exception("uplink tick failed")

    def enable(self, reason: str) -> None:
        with self._lock:
            if reason not in self._enabled:
                log.info("upload enabled", extra={"reason": reason})
            self._enabled.add(reason)
            self.progress.reasons = set(self._enabled)
            self._pump()

    def disable(self, reason: str) -> None:
        with self._lock:
            if reason in self._enabled:
                log.info("upload paused", extra={"reason": reason})
            self._enabled.discard(reason)
            self.progress.reasons = set(self._enabled)

    @property
    def connected(self) -> bool:
        return self.link.connected.is_set()

    def drained(self) -> bool:
        """True once the district acked everything up to ``upto`` (or everything, if unset)."""
        with self._lock:
            if not self._ready or self._inflight:
                return False
            self._delete_acked()
            rows = outbox.read_after(self.db, 0, 1, self.upto)
            return not rows

    # -- MQTT callbacks ----------------------------------------------------------------
    def _connected(self, client: mqtt.Client) -> None:
        with self._lock:
            self._ready = False
            self._inflight.clear()
            self._resend.clear()
            self._rejects.clear()
            self._delete_acked()  # before the hello: its floor says what already left
            depth = outbox.count(self.db)  # not outbox.depth: its scan read the whole outbox at every connect
        client.subscribe([(self.topics.ack, 1), (self.topics.notices, 1), (self.topics.broadcast_notices, 1)])
        client.publish(self.topics.status, Status(state="online", at=self.clock(), outbox_depth=depth).to_bytes(), qos=1, retain=True)
        self._send_hello()

    def _disconnected(self) -> None:
        with self._lock:
            self._ready = False
            self._inflight.clear()

    def _send_hello(self) -> None:
        with self._lock:
            hello = Hello(floor=outbox.floor(self.db), hub_seq=outbox.high_water(self.db))
            self._hello_at = time.monotonic()
        self.link.publish(self.topics.hello, hello.to_bytes(), qos=1)

    def _message(self, client: mqtt.Client, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.topics.ack:
            try:
                ack = Ack.model_validate_json(msg.payload)
            except ValueError:
                log.warning("ignoring a malformed ack", extra={"size": len(msg.payload)})
                return
            self._ack(ack)
        elif self.on_notice is not None:
            if not msg.payload:
                return  # a cleared retained notice
            try:
                notice = Notice.model_validate_json(msg.payload)
            except ValueError as exc:
                log.warning("ignoring a malformed notice", extra={"topic": msg.topic, "error": str(exc)[:300]})
                return
            self.on_notice(notice)

    def _ack(self, ack: Ack) -> None:
        with self._lock:
            if ack.kind == "state" and ack.hwm is not None:
                self._delete_acked()
                floor = outbox.floor(self.db)
                hwm = min(ack.hwm, outbox.high_water(self.db))
                if hwm > floor:
                    removed = outbox.acknowledge(self.db, 0, hwm, self.clock())
                    self.progress.acked_events += removed
                if self._ready:
                    # A late reply to a repeated hello: never move the cursor back
                    # over batches already in flight.
                    self._cursor = max(self._cursor, hwm)
                else:
                    self._cursor = max(hwm, floor)
                self._ready = True
                self._hello_at = None
                log.info("resuming after the district's high-water mark", extra={"hwm": ack.hwm, "floor": floor})
                self._pump()
                return
            if ack.kind != "batch" or ack.first is None or ack.last is None:
                return
            flight = self._inflight.pop(ack.first, None)
            if ack.status == "ok":
                self._acked.append((ack.first, ack.last))
                self._acked_at = self.clock()
                self.progress.acked_batches += 1
                self.progress.last_ack_at = time.monotonic()
                if self._acked_since is None:
                    self._acked_since = self.progress.last_ack_at
                if len(self._acked) >= self.delete_every:
                    self._delete_acked()
            else:
                self.progress.rejected_batches += 1
                self._rejects[ack.first] += 1
                log.warning("district rejected a batch", extra={"first": ack.first, "last": ack.last, "reason": ack.reason})
                if flight is not None and self._rejects[ack.first] < _MAX_REJECTS:
                    self._resend.append((ack.first, ack.last))
            self._pump()
            if not self._inflight:
                self._delete_acked()  # nothing else to wait for

    def _delete_acked(self) -> None:
        """Delete the rows of every acked range still waiting, in one transaction (call under the lock)."""
        if self._acked:
            removed = outbox.acknowledge_ranges(self.db, self._acked, self._acked_at)
            self.progress.acked_events += removed
            self._acked.clear()
            self._acked_since = None

    # -- sending -----------------------------------------------------------------------
    def _publish(self, built_first: int, built_last: int, count: int, message: bytes, attempts: int) -> None:
        self._inflight[built_first] = _InFlight(built_first, built_last, count, time.monotonic(), attempts)
        self.progress.sent_batches += 1
        self.progress.sent_bytes += len(message)
        self.link.publish(self.topics.batch, message, qos=1)

    def _pump(self) -> None:
        if not (self._ready and self._enabled and self.connected):
            return
        while len(self._inflight) < self.window:
            if self._resend:
                first, last = self._resend.popleft()
                built = self.batcher.rebuild(self.db, first, last, self.clock())
                if built is None:
                    continue
                self.progress.resent_batches += 1
                self._publish(built.first, built.last, built.count, built.message, self._rejects[first] + 1)
                continue
            built = self.batcher.next_after(self.db, self._cursor, self.clock(), self.upto)
            if built is None:
                return
            self._cursor = built.last
            self._publish(built.first, built.last, built.count, built.message, 1)

    def tick(self) -> None:
        """Re-send what timed out and re-ask the high-water mark if the reply was lost; call every ~0.5 s."""
        now = time.monotonic()
        with self._lock:
            # Offline too: acked rows need no district to leave.
            if self._acked_since is not None and now - self._acked_since >= self.delete_within_s:
                self._delete_acked()
        if not self.connected:
            return
        resend_hello = False
        with self._lock:
            if not self._ready:
                resend_hello = self._hello_at is None or now - self._hello_at > self.ack_timeout_s
            else:
                # A batch times out only when the district has acked nothing for the
                # whole period: while acks keep coming it is queued behind other hubs'
                # batches, and re-sending it would only deepen that queue.
                last_ack = self.progress.last_ack_at or 0.0
                for first, flight in list(self._inflight.items()):
                    if now - max(flight.sent_at, last_ack) > self.ack_timeout_s:
                        del self._inflight[first]
                        self._resend.append((flight.first, flight.last))
                        log.info("no ack in time; sending the batch again", extra={"first": flight.first, "last": flight.last})
                self._pump()
        if resend_hello:
            self._send_hello()
