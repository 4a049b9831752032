"""The tablet client's HTTP behaviour: identity check, backoff, Retry-After, state file."""

from __future__ import annotations

import json
import stat
import uuid

import pytest

from edge.tablet_client.client import (
    HubError,
    HubIdentityMismatch,
    HubUnreachable,
    RetryPolicy,
    TabletClient,
    retry_after_seconds,
)
from edge.tablet_client.state import TabletState, load_state, save_state

LOOPBACK = ["127.0.0.1"]
FAST = RetryPolicy(attempts=4, base_s=0.2, cap_s=2.0)


def remembered(tmp_path, hub_id: str, port: int):
    path = tmp_path / "tablet.json"
    save_state(path, TabletState(hub_id=hub_id, addresses=["127.0.0.1"], port=port))
    return path


def test_refuses_a_different_hub_at_the_remembered_address(stub_hub, tmp_path):
    path = remembered(tmp_path, str(uuid.uuid4()), stub_hub.port)
    client = TabletClient(state_path=path, interfaces=LOOPBACK, discovery_timeout=0.5, retry=FAST)
    with pytest.raises(HubIdentityMismatch) as err:
        client.connect()
    assert stub_hub.hub_id in str(err.value)
    assert client.base_url is None
    # The remembered hub is kept: it may come back; the impostor is not adopted.
    assert load_state(path).hub_id != stub_hub.hub_id


def test_refuses_a_server_whose_id_differs_from_the_advertised_one(stub_hub, start_hub):
    # A real advertisement pointing at a server that says it is another hub.
    hub = start_hub(port=stub_hub.port)
    client = TabletClient(expected_hub_id=hub.hub_id, interfaces=LOOPBACK, retry=FAST)
    with pytest.raises(HubIdentityMismatch) as err:
        client.connect()
    assert (err.value.expected, err.value.actual) == (hub.hub_id, stub_hub.hub_id)


def test_connects_to_the_advertised_hub_and_remembers_it(stub_hub, start_hub, tmp_path):
    hub = start_hub(hub_id=stub_hub.hub_id, port=stub_hub.port)
    path = tmp_path / "state" / "tablet.json"
    # By id: other hubs may be advertising on this machine's loopback too.
    client = TabletClient(state_path=path, expected_hub_id=hub.hub_id, interfaces=LOOPBACK, retry=FAST)
    assert client.connect()["id"] == hub.hub_id
    state = load_state(path)
    assert (state.hub_id, state.addresses, state.port) == (hub.hub_id, ["127.0.0.1"], stub_hub.port)


def test_retries_503_with_growing_backoff(stub_hub):
    stub_hub.script["/api/v1/signin/students"] = [(503, {}, {"title": "busy"})] * 2
    client = TabletClient(base_url=stub_hub.url, retry=FAST)
    client.state.device_token = "dev-token"
    client.get("/signin/students")
    hits = stub_hub.hits_for("/api/v1/signin/students")
    assert len(hits) == 3
    gaps = [b[0] - a[0] for a, b in zip(hits, hits[1:], strict=False)]
    # Equal jitter: retry n waits between d/2 and d with d = 0.2 * 2**n.
    assert 0.1 * 0.9 <= gaps[0] <= 0.2 + 0.15
    assert 0.2 * 0.9 <= gaps[1] <= 0.4 + 0.15
    assert all(h[3].get("X-Device-Token") == "dev-token" for h in hits)


def test_honours_retry_after_on_429(stub_hub):
    stub_hub.script["/api/v1/devices/enrol"] = [(429, {"Retry-After": "1"}, {"title": "slow down"})]
    stub_hub.script["/api/v1/devices/enrol"].append(
        (201, {}, {"device_id": str(uuid.uuid4()), "device_token": "t", "hub_id": stub_hub.hub_id, "kind": "student"})
    )
    client = TabletClient(base_url=stub_hub.url, retry=FAST)
    client.enrol("123456", "平板-07")
    hits = stub_hub.hits_for("/api/v1/devices/enrol")
    assert len(hits) == 2
    assert hits[1][0] - hits[0][0] >= 0.95
    # Both tries are the same logical write.
    assert hits[0][3]["Idempotency-Key"] == hits[1][3]["Idempotency-Key"]


def test_does_not_retry_other_client_errors(stub_hub):
    problem = {"type": "/problems/bad-code", "title": "Pairing code not valid", "status": 400, "detail": "no such code"}
    stub_hub.script["/api/v1/devices/enrol"] = [(400, {}, problem)]
    client = TabletClient(base_url=stub_hub.url, retry=FAST)
    with pytest.raises(HubError) as err:
        client.enrol("000000", "平板-01")
    assert (err.value.status, err.value.type, err.value.detail) == (400, "/problems/bad-code", "no such code")
    assert len(stub_hub.hits_for("/api/v1/devices/enrol")) == 1


def test_a_lockout_longer_than_the_budget_is_reported_not_waited_out(stub_hub):
    stub_hub.script["/api/v1/signin"] = [(429, {"Retry-After": "300"}, {"title": "locked"})]
    client = TabletClient(base_url=stub_hub.url, retry=FAST)
    with pytest.raises(HubError) as err:
        client.sign_in(1, "1234")
    assert err.value.status == 429
    assert len(stub_hub.hits_for("/api/v1/signin")) == 1


def test_gives_up_after_the_retry_budget(stub_hub):
    stub_hub.script["/api/v1/me"] = [(502, {}, {})] * 10
    client = TabletClient(base_url=stub_hub.url, retry=RetryPolicy(attempts=3, base_s=0.05))
    with pytest.raises(HubUnreachable):
        client.me()
    assert len(stub_hub.hits_for("/api/v1/me")) == 3


def test_student_requests_carry_both_tokens(stub_hub):
    stub_hub.script["/api/v1/signin"] = [(201, {}, {"token": "sess", "expires_at": 0, "student": {"id": 1, "name": "王小明"}})]
    client = TabletClient(base_url=stub_hub.url, retry=FAST)
    client.state.device_token = "dev"
    client.sign_in(1, "1234")
    client.me()
    headers = stub_hub.hits_for("/api/v1/me")[0][3]
    assert headers["Authorization"] == "Bearer sess" and headers["X-Device-Token"] == "dev"


def test_state_file_is_private_and_holds_the_token(stub_hub, tmp_path):
    stub_hub.script["/api/v1/devices/enrol"] = [
        (201, {}, {"device_id": str(uuid.uuid4()), "device_token": "secret-t", "hub_id": stub_hub.hub_id, "kind": "student"})
    ]
    path = tmp_path / "tablet.json"
    client = TabletClient(state_path=path, base_url=stub_hub.url, retry=FAST)
    client.connect()
    client.enrol("123456", "平板-07")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["device_token"] == "secret-t" and saved["hub_id"] == stub_hub.hub_id


def test_retry_after_accepts_seconds_and_http_dates():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert retry_after_seconds("soon") is None
