"""Helpers for the cart tests: enrol a cart, sign requests like the firmware does."""

from __future__ import annotations

import json
from typing import Any

from firmware.cart import protocol
from tests.hub.support import HubEnv, bearer


def enrol_cart(h: HubEnv, cart_id: str = "cart-1", slots: int = 60, budget_w: float = 1440.0) -> bytes:
    r = h.client().post("/api/v1/carts", json={"id": cart_id, "name": "三年级二班充电车", "slots": slots, "budget_w": budget_w,
                                              "class_id": h.class_id}, headers=bearer(h.staff_token("admin")))
    assert r.status_code == 201, r.get_json()
    return bytes.fromhex(r.get_json()["key"])


def telemetry(cart_id: str, ctr: int, slots: int = 60, **over: Any) -> dict[str, Any]:
    msg = {"v": 1, "cart": cart_id, "ctr": ctr, "fw": "1.0.0", "boot": 1, "up": 10, "temp": 31.5, "door": 0, "lock": 1,
           "mode": "plan", "thermal": "ok", "cap": 12000, "total": 900, "present": [1] * slots, "on": [0] * slots,
           "ma": [0] * slots, "fault": [0] * slots, "full": [0] * slots, "ota": {"state": "idle"}}
    msg.update(over)
    return msg


def post(h: HubEnv, key: bytes, msg: dict[str, Any] | bytes, cart_id: str | None = None, ctr: int | None = None) -> Any:
    body = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
    cart_id = cart_id or msg["cart"]  # type: ignore[index]
    ctr = ctr if ctr is not None else msg["ctr"]  # type: ignore[index]
    mac = protocol.request_mac(key, "POST", protocol.LINK_PATH, cart_id, ctr, body)
    return h.client().post(protocol.LINK_PATH, data=body, content_type="application/json",
                           headers={protocol.HDR_ID: cart_id, protocol.HDR_COUNTER: str(ctr), protocol.HDR_MAC: mac})
