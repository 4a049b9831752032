"""The hub's end of the cart link: authenticated telemetry in, signed plan out;
forged, replayed and out-of-range messages refused with nothing changed."""

from __future__ import annotations

import hmac
import json
import subprocess
from hashlib import sha256
from pathlib import Path

import pytest

from firmware.cart import protocol
from tests.hub.support import HubEnv, assert_problem, bearer

from .cartsim import enrol_cart, post, telemetry

REPO = Path(__file__).resolve().parents[2]
VECTOR_KEY = bytes(range(40))
VECTOR_MSG = "购物车 cart-1\n42\n{}".encode()


def test_the_shared_hmac_matches_cpython_and_runs_the_same_under_micropython(micropython: str) -> None:
    expected = hmac.new(VECTOR_KEY, VECTOR_MSG, sha256).hexdigest()
    assert protocol.to_hex(protocol.hmac_sha256(VECTOR_KEY, VECTOR_MSG)) == expected
    long_key = bytes(range(100))  # longer than a block: hashed first
    assert protocol.to_hex(protocol.hmac_sha256(long_key, b"x")) == hmac.new(long_key, b"x", sha256).hexdigest()
    code = (f"from cart import protocol\nprint(protocol.to_hex(protocol.hmac_sha256(bytes(range(40)), {VECTOR_MSG!r})))")
    out = subprocess.run([micropython, "-c", code], env={"MICROPYPATH": f".frozen:{REPO / 'firmware'}"}, capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == expected


def test_telemetry_is_stored_and_the_reply_carries_a_plan_signed_for_that_request(hub: HubEnv) -> None:
    key = enrol_cart(hub)
    msg = telemetry("cart-1", 5, fault=[1] + [0] * 59)
    r = post(hub, key, msg)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert protocol.equal(r.headers[protocol.HDR_MAC], protocol.reply_mac(key, "cart-1", 5, r.data))
    assert not protocol.equal(r.headers[protocol.HDR_MAC], protocol.reply_mac(key, "cart-1", 6, r.data))
    reply = r.get_json()
    assert protocol.check_reply(reply, 60) == []
    assert sorted(reply["plan"]["order"]) == list(range(1, 61))
    assert hub.sql("SELECT last_ctr, fw FROM carts WHERE id = 'cart-1'") == [(5, "1.0.0")]
    assert hub.count("cart_alerts", "kind = 'fault'") == 1
    assert hub.count("outbox", "type = 'cart.alert'") == 1
    assert hub.count("outbox", "type = 'cart.telemetry'") == 1
    carts = hub.client().get("/api/v1/carts", headers=bearer(hub.staff_token("teacher"))).get_json()["carts"]
    assert carts[0]["telemetry"]["present"] == [1] * 60 and carts[0]["alerts"][0]["detail"].startswith("slot 1")


def _bad_cases(key: bytes, other_key: bytes) -> list[tuple[str, object]]:
    return [
        ("bad MAC", lambda h: post(h, b"\x01" * 32, telemetry("cart-1", 10))),
        ("replayed counter", lambda h: post(h, key, telemetry("cart-1", 5))),
        ("equal counter", lambda h: post(h, key, telemetry("cart-1", 7))),
        ("another cart's id with my key", lambda h: post(h, key, telemetry("cart-2", 11))),
        ("another cart's id in the body", lambda h: post(h, key, telemetry("cart-2", 11), cart_id="cart-1")),
        ("temperature out of range", lambda h: post(h, key, telemetry("cart-1", 12, temp=900.0))),
        ("current out of range", lambda h: post(h, key, telemetry("cart-1", 13, ma=[0] * 59 + [99999]))),
        ("unknown slot numbers", lambda h: post(h, key, telemetry("cart-1", 14, slots=64))),
        ("unknown cart", lambda h: post(h, other_key, telemetry("cart-9", 15))),
        ("not JSON", lambda h: post(h, key, b"\xff\xfe", cart_id="cart-1", ctr=16)),
        ("body counter differs", lambda h: post(h, key, telemetry("cart-1", 17), ctr=18)),
    ]


@pytest.mark.parametrize("case", range(11))
def test_bad_telemetry_is_refused_logged_and_changes_nothing(hub: HubEnv, case: int, caplog: pytest.LogCaptureFixture) -> None:
    key = enrol_cart(hub)
    other = enrol_cart(hub, "cart-2")
    assert post(hub, key, telemetry("cart-1", 7)).status_code == 200
    name, call = _bad_cases(key, other)[case]
    before = hub.snapshot()
    r = call(hub)  # type: ignore[operator]
    assert r.status_code in (401, 422), (name, r.status_code)
    assert_problem(r, r.status_code)
    assert hub.snapshot() == before, name
    assert any(rec.getMessage() == "cart request refused" for rec in caplog.records), name


def test_a_cart_key_is_not_a_tablet_or_staff_credential(hub: HubEnv) -> None:
    key = enrol_cart(hub)
    r = hub.client().get("/api/v1/carts", headers={protocol.HDR_ID: "cart-1", protocol.HDR_COUNTER: "1",
                                                   protocol.HDR_MAC: protocol.request_mac(key, "GET", "/api/v1/carts", "cart-1", 1, b"")})
    assert r.status_code == 401
    body = json.dumps(telemetry("cart-1", 1)).encode()
    r = hub.client().post(protocol.LINK_PATH, data=body, content_type="application/json", headers=bearer(hub.staff_token("admin")))
    assert_problem(r, 401)
