"""The cart page in real Chromium on the demo hub, whose cart is the firmware
itself on simulated hardware: the slot grid fills from live telemetry."""

from __future__ import annotations

import json
import sqlite3
from typing import Any


def test_the_cart_page_shows_the_demo_carts_slots_from_live_telemetry(hub: Any, new_page: Any) -> None:
    watched = new_page()
    page = watched.page
    r = page.request.post(hub.url + "/api/v1/auth/login", data={"username": hub.creds["teacher_username"], "password": hub.creds["teacher_password"]})
    assert r.status == 201
    page.goto("/teacher")
    page.click("a[href='/carts']")  # the teacher page links the cart page
    page.wait_for_url("**/carts")
    # The simulated cart waits out its random start delay (<= 5 s), then reports every 3 s.
    # (Selectors, not wait_for_function: the page's CSP forbids eval.)
    page.wait_for_selector("#carts-root .cart-grid .cart-slot:nth-child(60)", timeout=30000)
    assert page.locator("#carts-root .cart-grid .cart-slot").count() == 60
    states = page.eval_on_selector_all("#carts-root .cart-grid .cart-slot", "els => els.map(e => e.className.replace('cart-slot ', ''))")
    assert set(states) <= {"slot-on", "slot-full", "slot-empty", "slot-fault", "slot-idle"}
    page.wait_for_selector("#carts-root .cart-grid .slot-on", timeout=30000)
    text = page.inner_text("#carts-root")
    assert "充电车" in text and "1.0.0" in text
    # Buttons outside a form are plain buttons, and status lines are announced (screen readers).
    types = page.eval_on_selector_all("#carts-root button", "els => els.map(e => e.getAttribute('type'))")
    assert types and all(t == "button" for t in types), types
    assert page.locator("#carts-root p.msg[role=status]").count() >= 1
    assert not watched.page_errors and not watched.unexpected_console_errors(), (watched.page_errors, watched.console_errors)


def test_the_cart_page_asks_for_a_login_without_polling_the_hub(hub: Any, new_page: Any) -> None:
    watched = new_page()
    page = watched.page
    page.goto("/carts")
    page.wait_for_selector("#login-needed:not([hidden])")
    assert not any("/api/v1/carts" in url for url in watched.requests)
    assert not watched.unexpected_console_errors(), watched.console_errors


def test_the_teacher_unlocks_then_locks_the_demo_cart_and_the_page_shows_what_the_cart_did(hub: Any, new_page: Any, shots: Any) -> None:
    watched = new_page()
    page = watched.page
    r = page.request.post(hub.url + "/api/v1/auth/login", data={"username": hub.creds["teacher_username"], "password": hub.creds["teacher_password"]})
    assert r.status == 201
    page.goto("/carts")
    card = "#carts-root .cart-card[data-cart='demo-cart']"
    # The simulated cart (the firmware itself) reports every 3 s; it starts locked.
    page.wait_for_selector(f"{card} dd[data-fact='lock'][data-value='1']", timeout=30000)
    page.click(f"{card} .cart-unlock-btn")
    # Sent in the reply to the cart's next report, acknowledged in the one after.
    page.wait_for_selector(f"{card} .cart-lock-status[data-status='done']:has-text('开锁')", timeout=30000)
    page.wait_for_selector(f"{card} dd[data-fact='lock'][data-value='0']", timeout=15000)
    assert page.inner_text(f"{card} dd[data-fact='lock']") == "未上锁"
    page.screenshot(path=shots / "carts-unlocked.png", full_page=True)
    page.click(f"{card} .cart-lock-btn")
    page.wait_for_selector(f"{card} .cart-lock-status[data-status='done']:has-text('上锁')", timeout=30000)
    page.wait_for_selector(f"{card} dd[data-fact='lock'][data-value='1']", timeout=15000)
    events = [json.loads(row[0]) for row in sqlite3.connect(hub.data_dir / "hub.sqlite3").execute(
        "SELECT payload FROM outbox WHERE type = 'cart.lock' ORDER BY seq")]
    assert [(e["op"], e["result"], e["by_role"]) for e in events if e.get("command")] == [("unlock", "done", "teacher"), ("lock", "done", "teacher")]
    assert not watched.page_errors and not watched.unexpected_console_errors(), (watched.page_errors, watched.console_errors)
