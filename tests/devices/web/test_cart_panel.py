"""The cart panel in real Chromium on the demo hub, whose cart is the firmware
itself on simulated hardware: the slot grid fills from live telemetry."""

from __future__ import annotations

import re
from typing import Any


def test_the_cart_panel_shows_the_demo_carts_slots_from_live_telemetry(hub: Any, new_page: Any) -> None:
    watched = new_page()
    page = watched.page
    r = page.request.post(hub.url + "/api/v1/auth/login", data={"username": hub.creds["teacher_username"], "password": hub.creds["teacher_password"]})
    assert r.status == 201
    page.goto("/teacher")
    prefix = re.search(r'href="(/static/[0-9a-f]+)/css/hub.css"', page.content()).group(1)  # type: ignore[union-attr]
    page.evaluate("""() => { const s = document.createElement('section'); s.id = 'carts-panel'; document.body.append(s); }""")
    page.add_style_tag(url=prefix + "/css/carts.css")
    page.add_script_tag(url=prefix + "/js/carts.js", type="module")
    # The simulated cart waits out its random start delay (<= 5 s), then reports every 3 s.
    page.wait_for_function("document.querySelectorAll('#carts-panel .cart-grid .cart-slot').length === 60", timeout=30000)
    states = page.eval_on_selector_all("#carts-panel .cart-grid .cart-slot", "els => els.map(e => e.className.replace('cart-slot ', ''))")
    assert set(states) <= {"slot-on", "slot-full", "slot-empty", "slot-fault", "slot-idle"}
    page.wait_for_function("document.querySelectorAll('#carts-panel .cart-grid .slot-on').length > 0", timeout=30000)
    text = page.inner_text("#carts-panel")
    assert "充电车" in text and "1.0.0" in text
    assert not watched.page_errors and not watched.unexpected_console_errors(), (watched.page_errors, watched.console_errors)
