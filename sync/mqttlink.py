"""One MQTT v5 connection kept up in its own thread, for the hub agent and the
district services alike.

Why our own loop and not paho's ``loop_start`` auto-reconnect: paho doubles the
delay but adds no jitter, so 300 hubs cut off by one broker restart would come
back in lock-step. Here every wait is "full jitter" (uniform in [0, delay]) and
the delay doubles from ``min_delay`` to ``max_delay``, reset by a successful CONNACK.

MQTT v5 first, 3.1.1 when the broker has no v5: a 3.1.1-only broker answers a
v5 CONNECT with CONNACK return code 1 ("unacceptable protocol version"; paho
reports it as reason 132) or just closes the socket. Either way the next attempt,
right away, speaks 3.1.1, and the link stays on 3.1.1 for the life of the process
(a broker upgrade is picked up at the next restart). What is lost on 3.1.1 and why
nothing of ours depends on it: the session expiry interval (a persistent 3.1.1
session lives until the broker's own ``persistent_client_expiration``), reason
codes on SUBACK and DISCONNECT (a refused subscription is still visible as 0x80),
and shared subscriptions are a v5 feature that only some 3.1.1 brokers (Mosquitto
>= 1.6) also offer. The sync protocol itself (batches, application-level acks,
hello/high-water mark, retained status with a last will) uses only 3.1.1 features:
no user properties, no message expiry, no topic aliases.
"""

from __future__ import annotations

import logging
import random
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

# A broker that closes a v5 CONNECT unanswered this many times in a row (TCP and
# TLS were fine) is taken for a 3.1.1-only one. Twice, not once: a broker killed
# mid-handshake also closes unanswered, and a v5 broker must not demote us for that.
_UNANSWERED_BEFORE_311 = 2


@dataclass
class LinkSettings:
    host: str
    port: int
    client_id: str
    tls: bool = True
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password: str | None = None
    keepalive: int = 30
    clean_start: bool = True
    session_expiry_s: int = 0
    min_delay: float = 1.0
    max_delay: float = 120.0
    # TCP connect + TLS handshake + CONNACK. paho's 5 s default is too short when a
    # whole district reconnects after a broker restart and handshakes queue up.
    connect_timeout: float = 30.0
    # Fall back to MQTT 3.1.1 when the broker refuses v5 (see the module docstring).
    allow_mqtt311: bool = True


class Backoff:
    """Exponential backoff with full jitter."""

    def __init__(self, min_delay: float, max_delay: float, rng: random.Random | None = None) -> None:
        self.min_delay = min_delay
        self.max_delay = max_delay
        self._rng = rng or random.Random()
        self._ceiling = min_delay

    def next(self) -> float:
        delay = self._rng.uniform(self.min_delay / 2, self._ceiling)
        self._ceiling = min(self._ceiling * 2, self.max_delay)
        return delay

    def reset(self) -> None:
        self._ceiling = self.min_delay


class Link:
    """Connect, keep connected, call ``on_connect(client)`` after each CONNACK.

    ``will`` is (topic, payload, retain) set as the last will before every connect.
    """

    def __init__(
        self,
        settings: LinkSettings,
        on_connect: Callable[[mqtt.Client], None],
        on_message: Callable[[mqtt.Client, mqtt.MQTTMessage], None],
        on_disconnect: Callable[[], None] | None = None,
        will: tuple[str, bytes, bool] | None = None,
        manual_ack: bool = False,
        on_subscribe: Callable[..., None] | None = None,
    ) -> None:
        self.settings = settings
        self._on_connect = on_connect
        self._on_message = on_message
        self._on_disconnect = on_disconnect
        self._on_subscribe = on_subscribe
        self._will = will
        self._manual_ack = manual_ack
        self.backoff = Backoff(settings.min_delay, settings.max_delay)
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.protocol = mqtt.MQTTv5
        self._got_connack = False
        self._refused_version = False
        self._unanswered = 0  # v5 connections in a row the broker closed without a CONNACK
        self._connected_311 = False
        # Wakes the link's loop when another thread queues a packet (publish, disconnect).
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.client = self._make_client()

    @property
    def protocol_name(self) -> str:
        return "5" if self.protocol == mqtt.MQTTv5 else "3.1.1"

    def _make_client(self) -> mqtt.Client:
        settings = self.settings
        v5 = self.protocol == mqtt.MQTTv5
        # 3.1.1 has no clean_start flag at CONNECT: its clean_session is fixed per client.
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=settings.client_id, protocol=self.protocol, manual_ack=self._manual_ack,
            clean_session=None if v5 else settings.clean_start,
        )
        # Batches are acked by the district, not by PUBACK: allow a window of them in flight.
        self.client.max_inflight_messages_set(64)
        self.client.max_queued_messages_set(0)
        self.client.connect_timeout = settings.connect_timeout
        if settings.username:
            self.client.username_pw_set(settings.username, settings.password)
        if settings.tls:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(settings.ca_file) if settings.ca_file else None)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if settings.cert_file:
                context.load_cert_chain(str(settings.cert_file), str(settings.key_file) if settings.key_file else None)
            self.client.tls_set_context(context)
        if self._will:
            self.client.will_set(self._will[0], self._will[1], qos=1, retain=self._will[2])
        # All socket writes on the link's own thread. Without loop_start(), paho's
        # publish() writes to the socket from the caller's thread, racing the loop
        # thread's writes: under load two partial TLS writes interleave and the
        # broker drops the connection ("protocol error"). A write-registration
        # callback makes publish() only queue, and ours wakes the loop.
        self.client.on_socket_register_write = lambda client, userdata, sock: self._wake()
        self.client.on_connect = self._connected
        self.client.on_message = lambda c, u, m: self._on_message(c, m)
        self.client.on_disconnect = self._disconnected
        if self._on_subscribe is not None:
            self.client.on_subscribe = self._on_subscribe
        return self.client

    # -- paho callbacks (network thread) -----------------------------------------------
    def _connected(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        self._got_connack = True
        if getattr(reason, "is_failure", False):
            # 132 is how paho reports a 3.1.1 CONNACK "unacceptable protocol version" (rc 1) to a v5 client.
            self._refused_version = self.protocol == mqtt.MQTTv5 and getattr(reason, "value", None) == 132
            self.last_error = f"broker refused the connection: {reason}"
            log.warning("mqtt connect refused", extra={"reason": str(reason), "host": self.settings.host})
            return
        self.backoff.reset()
        self.last_error = None
        self._connected_311 = self._connected_311 or self.protocol != mqtt.MQTTv5
        self.connected.set()
        log.info("mqtt connected", extra={"host": self.settings.host, "port": self.settings.port, "client_id": self.settings.client_id,
                                          "mqtt": self.protocol_name})
        try:
            self._on_connect(client)
        except Exception:
            log.exception("on_connect handler failed")

    def _disconnected(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was:
            log.info("mqtt disconnected", extra={"reason": str(reason)})
        if self._on_disconnect:
            self._on_disconnect()

    # -- the loop -------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{self.settings.client_id}", daemon=True)
        self._thread.start()

    def _connect_once(self) -> bool:
        self._got_connack = False
        self._refused_version = False
        try:
            if self.protocol == mqtt.MQTTv5:
                props = Properties(PacketTypes.CONNECT)
                if self.settings.session_expiry_s:
                    props.SessionExpiryInterval = self.settings.session_expiry_s
                self.client.connect(
                    self.settings.host, self.settings.port, keepalive=self.settings.keepalive,
                    clean_start=self.settings.clean_start, properties=props,
                )
            else:
                self.client.connect(self.settings.host, self.settings.port, keepalive=self.settings.keepalive)
        except ssl.SSLCertVerificationError as exc:
            # The usual cause on an appliance is a clock far off (RTC reset to 1970).
            self.last_error = f"TLS: broker certificate not accepted ({exc.verify_message}); check the CA file and the system clock"
            log.error("mqtt tls verification failed", extra={"error": self.last_error})
            return False
        except (OSError, ssl.SSLError) as exc:
            self.last_error = f"cannot reach {self.settings.host}:{self.settings.port}: {exc}"
            log.info("mqtt connect failed", extra={"error": self.last_error})
            return False
        return True

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # full (a wake-up is already pending) or closed at stop
            pass

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._connect_once():
                with selectors.DefaultSelector() as sel:
                    sel.register(self._wake_r, selectors.EVENT_READ)
                    while not self._stop.is_set():
                        # A publish or disconnect from another thread wakes the selector, so a
                        # long timeout adds no latency; it saves 300 idle hubs' worth of
                        # wake-ups in the fleet benchmark (and a small box's CPU).
                        rc = self._loop_once(sel, 1.0)
                        if rc != mqtt.MQTT_ERR_SUCCESS:
                            break
                self.connected.clear()
                if not self._stop.is_set() and self._switch_protocol():
                    continue
            if self._stop.is_set():
                break
            self._stop.wait(self.backoff.next())

    def _loop_once(self, sel: selectors.BaseSelector, timeout: float) -> mqtt.MQTTErrorCode:
        """What paho's ``loop()`` does, on an epoll selector instead of ``select()``.

        ``select()`` cannot watch a file descriptor numbered 1024 or above: in a process
        holding that many (a district service with many files open, a long test run)
        paho's own loop reports every connection as lost at once, and the link would
        take that for a broker without MQTT v5.
        """
        client = self.client
        sock = client.socket()
        if sock is None:
            return mqtt.MQTT_ERR_NO_CONN
        mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.want_write() else 0)
        try:
            key = sel.get_map().get(sock)
            if key is None:
                sel.register(sock, mask)
            elif key.events != mask:  # epoll_ctl only when the interest changes
                sel.modify(sock, mask)
        except (OSError, ValueError):  # closed under us (a disconnect from another thread)
            return mqtt.MQTT_ERR_CONN_LOST
        # TLS may already hold decrypted bytes that no selector can see.
        pending = sock.pending() if isinstance(sock, ssl.SSLSocket) else 0
        readable = pending > 0
        writable = woken = False
        for key, events in sel.select(0.0 if pending else timeout):
            if key.fileobj is self._wake_r:
                woken = True
                try:
                    self._wake_r.recv(4096)
                except BlockingIOError:
                    pass
            else:
                readable = readable or bool(events & selectors.EVENT_READ)
                writable = bool(events & selectors.EVENT_WRITE)
        if readable:
            rc = client.loop_read()
            if rc or client.socket() is None:
                return rc
        if writable or woken:
            # A wake-up means a packet was queued after want_write() was asked.
            rc = client.loop_write()
            if rc or client.socket() is None:
                return rc
        return client.loop_misc()

    def _switch_protocol(self) -> bool:
        """After a connection ended: True if the next attempt should speak another MQTT version, at once."""
        v5 = self.protocol == mqtt.MQTTv5
        if self._got_connack:
            self._unanswered = 0
        else:
            self._unanswered += 1
        if v5 and self.settings.allow_mqtt311 and (self._refused_version or self._unanswered >= _UNANSWERED_BEFORE_311):
            why = "refused protocol level 5" if self._refused_version else "closed v5 connections before answering"
            log.warning("the broker %s: using MQTT 3.1.1 (no session expiry, no reason codes)", why,
                        extra={"host": self.settings.host, "port": self.settings.port})
            self.protocol = mqtt.MQTTv311
            self._unanswered = 0
        elif not v5 and not self._got_connack and not self._connected_311:
            # 3.1.1 fared no better than v5: the closes were not about the protocol version.
            log.info("mqtt 3.1.1 was not answered either; back to v5", extra={"host": self.settings.host})
            self.protocol = mqtt.MQTTv5
            self._make_client()
            return False
        else:
            return False
        self._make_client()
        return True

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> mqtt.MQTTMessageInfo:
        # paho calls on_socket_register_write (our wake-up) when this queues the first packet.
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    def stop(self, final: tuple[str, bytes, bool] | None = None, timeout: float = 5.0) -> None:
        """Publish ``final`` (e.g. a retained offline status) if connected, disconnect, join."""
        if final and self.connected.is_set():
            info = self.publish(final[0], final[1], qos=1, retain=final[2])
            deadline = time.monotonic() + timeout
            while not info.is_published() and time.monotonic() < deadline and self.connected.is_set():
                time.sleep(0.02)
        self._stop.set()
        try:
            self.client.disconnect()
        except Exception:  # noqa: S110 - already gone is fine on shutdown
            pass
        self._wake()
        if self._thread:
            self._thread.join(timeout)
        if not (self._thread and self._thread.is_alive()):
            self._wake_r.close()
            self._wake_w.close()
