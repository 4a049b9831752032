"""One MQTT v5 connection kept up in its own thread, for the hub agent and the
district services alike.

Why our own loop and not paho's ``loop_start`` auto-reconnect: paho doubles the
delay but adds no jitter, so 300 hubs cut off by one broker restart would come
back in lock-step. Here every wait is "full jitter" (uniform in [0, delay]) and
the delay doubles from ``min_delay`` to ``max_delay``, reset by a successful CONNACK.
"""

from __future__ import annotations

import logging
import random
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
    ) -> None:
        self.settings = settings
        self._on_connect = on_connect
        self._on_message = on_message
        self._on_disconnect = on_disconnect
        self.backoff = Backoff(settings.min_delay, settings.max_delay)
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=settings.client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack
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
        if will:
            self.client.will_set(will[0], will[1], qos=1, retain=will[2])
        # All socket writes on the link's own thread. Without loop_start(), paho's
        # publish() writes to the socket from the caller's thread, racing the loop
        # thread's writes: under load two partial TLS writes interleave and the
        # broker drops the connection ("protocol error"). A (no-op) write-
        # registration callback makes publish() only queue and wake the loop.
        self.client.on_socket_register_write = lambda client, userdata, sock: None
        self.client.on_connect = self._connected
        self.client.on_message = lambda c, u, m: self._on_message(c, m)
        self.client.on_disconnect = self._disconnected
        self.last_error: str | None = None

    # -- paho callbacks (network thread) -----------------------------------------------
    def _connected(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            self.last_error = f"broker refused the connection: {reason}"
            log.warning("mqtt connect refused", extra={"reason": str(reason), "host": self.settings.host})
            return
        self.backoff.reset()
        self.last_error = None
        self.connected.set()
        log.info("mqtt connected", extra={"host": self.settings.host, "port": self.settings.port, "client_id": self.settings.client_id})
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
        props = Properties(PacketTypes.CONNECT)
        if self.settings.session_expiry_s:
            props.SessionExpiryInterval = self.settings.session_expiry_s
        try:
            self.client.connect(
                self.settings.host, self.settings.port, keepalive=self.settings.keepalive,
                clean_start=self.settings.clean_start, properties=props,
            )
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

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._connect_once():
                while not self._stop.is_set():
                    rc = self.client.loop(timeout=0.2)
                    if rc != mqtt.MQTT_ERR_SUCCESS:
                        break
                self.connected.clear()
            if self._stop.is_set():
                break
            self._stop.wait(self.backoff.next())

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    def stop(self, final: tuple[str, bytes, bool] | None = None, timeout: float = 5.0) -> None:
        """Publish ``final`` (e.g. a retained offline status) if connected, disconnect, join."""
        if final and self.connected.is_set():
            info = self.client.publish(final[0], final[1], qos=1, retain=final[2])
            deadline = time.monotonic() + timeout
            while not info.is_published() and time.monotonic() < deadline and self.connected.is_set():
                time.sleep(0.02)
        self._stop.set()
        try:
            self.client.disconnect()
        except Exception:  # noqa: S110 - already gone is fine on shutdown
            pass
        if self._thread:
            self._thread.join(timeout)
