"""The hub's mDNS announcement as a tablet sees it, on loopback."""

from __future__ import annotations

import threading
import time
import uuid

from zeroconf import IPVersion, Zeroconf

from edge.discovery import HTTP_SERVICE_TYPE, SERVICE_TYPE
from edge.discovery.records import HubTxt, TxtError, build_txt, instance_name, parse_txt
from edge.tablet_client.discover import HubWatcher, browse_hubs, resolve_hub

LOOPBACK = ["127.0.0.1"]
PUBLIC_TXT_KEYS = {"txtvers", "id", "school", "room", "api", "path"}


def test_hub_resolves_by_id_with_public_txt_only(start_hub, school):
    hub = start_hub(room="101", port=8123)
    endpoint = resolve_hub(hub.hub_id, 5, interfaces=LOOPBACK)
    assert (endpoint.id, endpoint.school, endpoint.room, endpoint.port) == (hub.hub_id, school, "101", 8123)
    assert endpoint.name == f"{school} 101"
    assert endpoint.addresses == ("127.0.0.1",)
    assert endpoint.host == f"classroom-hub-{hub.hub_id[:8]}.local."
    assert (endpoint.path, endpoint.api) == ("/", 1)

    zc = Zeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only, unicast=True)
    try:
        raw = zc.get_service_info(SERVICE_TYPE, f"{school} 101.{SERVICE_TYPE}", timeout=3000)
        http = zc.get_service_info(HTTP_SERVICE_TYPE, f"{school} 101.{HTTP_SERVICE_TYPE}", timeout=3000)
    finally:
        zc.close()
    assert raw is not None and http is not None
    # Exactly the public keys, as plain UTF-8 (not JSON), and nothing that looks secret.
    assert {k.decode() for k in raw.properties} == PUBLIC_TXT_KEYS
    assert raw.properties[b"school"] == school.encode("utf-8")
    assert not any(b"token" in k or b"key" in k or b"secret" in k for k in raw.properties)
    assert http.port == 8123 and http.server == endpoint.host
    assert http.decoded_properties["path"] == "/"


def test_host_name_is_stable_across_restarts(start_hub):
    hub_id = str(uuid.uuid4())
    first = start_hub(hub_id=hub_id)
    server = first.server
    first.stop()
    again = start_hub(hub_id=hub_id)
    assert again.server == server == f"classroom-hub-{hub_id[:8]}.local."
    assert resolve_hub(hub_id, 5, interfaces=LOOPBACK).host == server


def test_configured_hostname_is_used(start_hub):
    hub = start_hub(hostname="class-101")
    assert resolve_hub(hub.hub_id, 5, interfaces=LOOPBACK).host == "class-101.local."


def _distinct_names(a, b, timeout: float = 8.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if a.instance_name != b.instance_name:
            return True
        time.sleep(0.1)
    return False


def test_second_hub_with_same_room_is_renamed_and_both_resolve(start_hub, school):
    first = start_hub(room="101")
    second = start_hub(room="101")
    assert _distinct_names(first, second)
    assert {first.instance_name, second.instance_name} == {f"{school} 101", f"{school} 101 (2)"}
    hubs = {e.id: e for e in browse_hubs(1.5, interfaces=LOOPBACK) if e.school == school}
    assert set(hubs) == {first.hub_id, second.hub_id}
    assert hubs[first.hub_id].name != hubs[second.hub_id].name


def test_hubs_started_together_with_same_room_end_up_distinct(start_hub, school):
    # Both probe at once, so neither sees the other while probing; the post-registration
    # conflict check (RFC 6762 §9) must rename exactly one of them.
    hubs = []
    threads = [threading.Thread(target=lambda: hubs.append(start_hub(room="202"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a, b = hubs
    assert _distinct_names(a, b)
    for hub in hubs:
        found = resolve_hub(hub.hub_id, 5, interfaces=LOOPBACK)
        assert found.name == hub.instance_name


def test_goodbye_removes_the_hub_from_a_browsing_tablet_promptly(start_hub):
    hub = start_hub()
    watcher = HubWatcher(interfaces=LOOPBACK)
    try:
        assert watcher.wait_for(lambda e: e.id == hub.hub_id, 5) is not None
        name = hub.names[0]
        t0 = time.monotonic()
        hub.stop()
        assert watcher.wait_gone(name, 5)
        # The PTR TTL is 75 min; without goodbyes the tablet would keep the hub that long.
        assert time.monotonic() - t0 < 2.0
    finally:
        watcher.close()


def test_advertiser_reports_alive_until_stopped(start_hub):
    hub = start_hub()
    assert hub.is_alive()
    assert hub.current_addresses() == ["127.0.0.1"]
    hub.stop()
    assert not hub.is_alive()


def test_instance_names_advance_on_each_conflict_and_fit_a_dns_label():
    names = [instance_name("示范学校", "101", n) for n in range(1, 5)]
    assert names == ["示范学校 101", "示范学校 101 (2)", "示范学校 101 (3)", "示范学校 101 (4)"]
    long = [instance_name("很" * 40, "101", n) for n in range(1, 12)]
    assert len(set(long)) == 11
    assert all(len(n.encode()) <= 63 for n in long)


def test_txt_round_trips_and_rejects_what_a_tablet_cannot_use():
    hub_id = str(uuid.uuid4())
    txt = build_txt(hub_id=hub_id, school="示范学校", room="101")
    raw = {k.encode(): v.encode() for k, v in txt.items()}
    assert parse_txt(raw) == HubTxt(txtvers=1, id=hub_id, school="示范学校", room="101", api=1, path="/")
    for bad in ({**raw, b"txtvers": b"2"}, {**raw, b"id": b"not-a-uuid"}, {k: v for k, v in raw.items() if k != b"id"}):
        try:
            parse_txt(bad)
        except TxtError:
            continue
        raise AssertionError(f"accepted {bad}")
