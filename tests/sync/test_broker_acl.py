"""The district broker configuration from the repository, run by a real
Mosquitto: TLS with per-hub identities and an ACL that confines each hub to its
own topics."""

from __future__ import annotations

import selectors
import ssl
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sync.mqttlink import Link, LinkSettings
from sync.wire.topics import HubTopics, broadcast_notice

from .broker import Broker
from .pki import Pki
from .support import DISTRICT, wait_for

A, B = "hub-aaaa", "hub-bbbb"


class Client:
    """A connected test client that records what it receives."""

    def __init__(self, broker: Broker, pki: Pki, cn: str, subscribe: list[str] = ()) -> None:
        cert, key = pki.issue(cn)
        self.got: list[tuple[str, bytes]] = []
        ready = threading.Event()

        def connected(client):
            for topic in subscribe:
                client.subscribe(topic, qos=1)
            ready.set()

        settings = LinkSettings("127.0.0.1", broker.port, f"t-{cn}-{time.monotonic_ns()}", ca_file=pki.ca_file, cert_file=cert,
                                key_file=key, min_delay=0.2, max_delay=1)
        self.link = Link(settings, connected, lambda c, m: self.got.append((m.topic, m.payload)))
        self.link.start()
        assert ready.wait(10), self.link.last_error
        time.sleep(0.3)

    def publish(self, topic: str, payload: bytes = b"x") -> None:
        self.link.publish(topic, payload, qos=1).wait_for_publish(5)

    def stop(self) -> None:
        self.link.stop()


@pytest.fixture
def clients(broker, pki):
    made = []

    def make(cn, subscribe=()):
        c = Client(broker, pki, cn, list(subscribe))
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


def test_hub_a_cannot_publish_as_hub_b(clients):
    a_topics, b_topics = HubTopics(DISTRICT, "s1", A), HubTopics(DISTRICT, "s1", B)
    district = clients("district-ingest", [f"edu/{DISTRICT}/+/+/up/#"])
    a = clients(A)
    a.publish(b_topics.batch, b"forged")
    a.publish(b_topics.status, b"forged")
    a.publish(a_topics.batch, b"own")  # the control: its own prefix works
    wait_for(lambda: (a_topics.batch, b"own") in district.got, 10, "A's own batch")
    time.sleep(0.3)
    assert [t for t, _ in district.got] == [a_topics.batch]


def test_hub_a_cannot_read_hub_b_downlink_nor_forge_its_own_acks(clients):
    a_topics, b_topics = HubTopics(DISTRICT, "s1", A), HubTopics(DISTRICT, "s1", B)
    a = clients(A, [f"{b_topics.prefix}/down/#", f"edu/{DISTRICT}/+/+/down/#", f"{a_topics.prefix}/down/#", "#"])
    b = clients(B, [f"{b_topics.prefix}/down/#"])
    ingest = clients("district-ingest")
    publisher = clients("district-publish")
    ingest.publish(b_topics.ack, b"ack-for-b")
    publisher.publish(b_topics.notice("model"), b"notice-for-b")
    publisher.publish(broadcast_notice(DISTRICT, "firmware"), b"for-everyone")
    a.publish(a_topics.ack, b"self-made-ack")  # a hub must not be able to ack its own batches
    wait_for(lambda: len(b.got) == 2, 10, "B to get its downlink")
    wait_for(lambda: any(t.endswith("/broadcast/notice/firmware") for t, _ in a.got), 10, "A to get the broadcast")
    time.sleep(0.3)
    assert sorted(p for _, p in b.got) == [b"ack-for-b", b"notice-for-b"]
    assert [p for _, p in a.got] == [b"for-everyone"]


def test_only_certificates_of_the_district_ca_get_in(broker, pki, tmp_path):
    stranger = Pki(tmp_path / "other-ca")
    cert, key = stranger.issue(A)  # right name, wrong CA

    def try_connect(cert_file=None, key_file=None):
        ctx = ssl.create_default_context(cafile=str(pki.ca_file))
        if cert_file:
            ctx.load_cert_chain(str(cert_file), str(key_file))
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.tls_set_context(ctx)
        try:
            c.connect("127.0.0.1", broker.port, keepalive=5)
            # Not c.loop(): its select() fails once the test process holds 1024+
            # descriptors (as the whole suite does by the time it gets here).
            if c.socket() is None:  # the TLS handshake already failed
                return False
            with selectors.DefaultSelector() as sel:
                sel.register(c.socket(), selectors.EVENT_READ)
                deadline = time.monotonic() + 2.0
                while time.monotonic() < deadline and not c.is_connected() and c.socket() is not None:
                    if c.want_write():
                        c.loop_write()
                    if sel.select(0.1) or c.socket().pending():
                        c.loop_read()
                    c.loop_misc()
            return c.is_connected()
        except (ssl.SSLError, OSError):
            return False
        finally:
            c.disconnect()

    assert try_connect() is False
    assert try_connect(cert, key) is False
    good_cert, good_key = pki.issue(A)
    assert try_connect(good_cert, good_key) is True


def test_password_listener_confines_a_hub_the_same_way(tmp_path, pki):
    broker = Broker(tmp_path / "pw-broker", pki, passwords={A: "secret-a", "district-ingest": "secret-i"}).start()
    try:
        got = []
        ready = threading.Event()

        def conn(user, password, on_connect, on_message):
            s = LinkSettings("127.0.0.1", broker.password_port, f"t-{user}", ca_file=pki.ca_file, username=user, password=password,
                             min_delay=0.2, max_delay=1)
            link = Link(s, on_connect, on_message)
            link.start()
            return link

        district = conn("district-ingest", "secret-i", lambda c: (c.subscribe(f"edu/{DISTRICT}/+/+/up/#", qos=1), ready.set()),
                        lambda c, m: got.append(m.topic))
        assert ready.wait(10), district.last_error
        time.sleep(0.3)
        a = conn(A, "secret-a", lambda c: None, lambda c, m: None)
        wait_for(a.connected.is_set, 10, "A to connect with its password")
        a.publish(HubTopics(DISTRICT, "s1", B).batch, b"forged").wait_for_publish(5)
        a.publish(HubTopics(DISTRICT, "s1", A).batch, b"own").wait_for_publish(5)
        wait_for(lambda: got, 10, "A's own batch")
        time.sleep(0.3)
        assert got == [HubTopics(DISTRICT, "s1", A).batch]
        wrong = conn(A, "wrong", lambda c: None, lambda c, m: None)
        time.sleep(1.5)
        assert not wrong.connected.is_set()
        for link in (a, wrong, district):
            link.stop()
    finally:
        broker.stop()
