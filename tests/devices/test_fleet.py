"""Inventory, check-out/in, end-of-day alerts, battery levels (reported and
inferred) and the charge planner, on the demo classroom's cart."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from edge.devices.link import infer_battery
from edge.devices.planner import Need, SlotView, plan_order
from tests.hub.support import HubEnv, assert_problem, bearer, build_hub, device

from .cartsim import post, telemetry


def demo_cart(h: HubEnv) -> bytes:
    return bytes.fromhex(h.sql("SELECT key_hex FROM carts WHERE id = 'demo-cart'")[0][0])


def tablet_id(h: HubEnv, slot: int) -> int:
    return int(h.sql("SELECT id FROM tablets WHERE cart_id = 'demo-cart' AND slot = ?", (slot,))[0][0])


def fleet(h: HubEnv, who: str = "teacher") -> dict[int, dict]:
    r = h.client().get("/api/v1/tablets", headers=bearer(h.staff_token(who)))
    assert r.status_code == 200
    return {t["slot"]: t for t in r.get_json()["tablets"] if t["cart_id"] == "demo-cart"}


def test_the_demo_cart_is_in_the_inventory_with_its_tablets(hub: HubEnv) -> None:
    tablets = fleet(hub)
    assert len(tablets) == 60
    assert sum(1 for t in tablets.values() if t["student_id"]) == 45
    assert fleet(hub, "other_teacher") == {}, "another class's teacher does not see this cart's tablets"


def test_check_out_to_a_student_then_the_cart_checks_it_back_in(hub: HubEnv) -> None:
    t3 = tablet_id(hub, 3)
    student = hub.student("03")[0]
    teacher = bearer(hub.staff_token("teacher"))
    r = hub.client().post(f"/api/v1/tablets/{t3}/checkout", json={"student_id": student}, headers=teacher)
    assert r.status_code == 204, r.get_data(as_text=True)
    assert fleet(hub)[3]["out"] and fleet(hub)[3]["out_with"] == student
    assert_problem(hub.client().post(f"/api/v1/tablets/{t3}/checkout", json={"student_id": student}, headers=teacher), 409)
    other = bearer(hub.staff_token("other_teacher"))
    assert_problem(hub.client().post(f"/api/v1/tablets/{t3}/checkin", headers=other), 404)
    key = demo_cart(hub)
    present = [1] * 60
    present[2] = 0
    assert post(hub, key, telemetry("demo-cart", 100, present=present)).status_code == 200
    assert fleet(hub)[3]["out"], "an empty home slot does not check the tablet in"
    assert post(hub, key, telemetry("demo-cart", 101)).status_code == 200
    assert not fleet(hub)[3]["out"]
    assert hub.sql("SELECT in_source FROM checkouts WHERE tablet_id = ?", (t3,)) == [("cart",)]


def test_tablets_not_back_at_the_end_of_the_day_alert_teacher_admin_and_district(hub: HubEnv) -> None:
    teacher = bearer(hub.staff_token("teacher"))
    for slot, number in ((5, "05"), (6, "06")):
        r = hub.client().post(f"/api/v1/tablets/{tablet_id(hub, slot)}/checkout", json={"student_id": hub.student(number)[0]}, headers=teacher)
        assert r.status_code == 204
    hub.client().post(f"/api/v1/tablets/{tablet_id(hub, 6)}/checkin", headers=teacher)
    r = hub.client().post("/api/v1/carts/end-of-day", headers=teacher)
    assert r.status_code == 200 and [x["serial"] for x in r.get_json()["carts"]] == ["DEMO-TAB-05"]
    for who in ("teacher", "admin"):
        carts = hub.client().get("/api/v1/carts", headers=bearer(hub.staff_token(who))).get_json()["carts"]
        alerts = next(c for c in carts if c["id"] == "demo-cart")["alerts"]
        assert [a["kind"] for a in alerts] == ["not-returned"] and "DEMO-TAB-05" in alerts[0]["detail"]
    payload = hub.sql("SELECT payload FROM outbox WHERE type = 'tablet.not_returned'")
    assert len(payload) == 1
    pseudo = hub.sql("SELECT pseudo_id, name FROM students WHERE id = ?", (hub.student("05")[0],))[0]
    assert pseudo[0] in payload[0][0] and pseudo[1] not in payload[0][0], "the district gets the pseudonym, not the name"


def test_a_tablet_reports_its_battery_and_only_for_itself(hub: HubEnv) -> None:
    tab = hub.enrol(class_id=hub.class_id, name="slot 7")
    admin = bearer(hub.staff_token("admin"))
    # not in the inventory yet: accepted, nothing recorded (a tablet has nothing to fix)
    assert hub.client().post("/api/v1/tablets/battery", json={"level": 0.4}, headers=device(tab.token)).status_code == 202
    assert hub.sql("SELECT COUNT(*) FROM tablets WHERE battery = 0.4") == [(0,)]
    r = hub.client().post("/api/v1/tablets", json={"serial": "SN-NEW-1", "model": "MatePad", "device_id": tab.device_id}, headers=admin)
    assert r.status_code == 201, r.get_json()
    assert hub.client().post("/api/v1/tablets/battery", json={"level": 0.42, "charging": True}, headers=device(tab.token)).status_code == 204
    assert hub.sql("SELECT battery, battery_src FROM tablets WHERE serial = 'SN-NEW-1'") == [(0.42, "tablet")]
    for bad in ({"level": 1.5}, {"level": "0.4"}, {"level": 0.4, "slot": 3}):
        assert_problem(hub.client().post("/api/v1/tablets/battery", json=bad, headers=device(tab.token)), 422)


def test_without_a_browser_report_the_battery_is_inferred_from_the_slots_current(hub: HubEnv) -> None:
    t8 = tablet_id(hub, 8)
    with_db = hub.sql  # a separate connection, like another process
    conn = sqlite3.connect(hub.config.db_path)
    conn.execute("UPDATE tablets SET battery = 0.5, battery_at = ?, battery_src = 'cart' WHERE id = ?", (time.time() - 30, t8))
    conn.commit()
    conn.close()
    on = [0] * 60
    ma = [0] * 60
    on[7], ma[7] = 1, 140
    assert post(hub, demo_cart(hub), telemetry("demo-cart", 200, on=on, ma=ma)).status_code == 200
    level, src = with_db("SELECT battery, battery_src FROM tablets WHERE id = ?", (t8,))[0]
    assert src == "cart" and 0.5 < level < 0.52
    full = [0] * 60
    full[7] = 1
    assert post(hub, demo_cart(hub), telemetry("demo-cart", 201, full=full)).status_code == 200
    assert with_db("SELECT battery FROM tablets WHERE id = ?", (t8,))[0][0] == 1.0
    # arithmetic: 1 A at 220 V for 60 s into 30 Wh at 85 % is about +10.4 %
    assert abs(infer_battery(0.2, 0.0, 60.0, False, 1, 1000, 220.0) - (0.2 + 220 * 60 / 3600 * 0.85 / 30)) < 1e-4
    assert infer_battery(0.2, 0.0, 3600.0, False, 1, 1000, 220.0) < 0.32, "a long silence is not integrated"


def test_the_plan_charges_the_next_lessons_tablets_that_can_be_ready_first() -> None:
    socs = {1: 0.78, 2: 0.2, 3: 0.6, 4: 0.95, 5: 0.79, 6: 0.1, 7: 0.5}
    views = [SlotView(s, True, socs.get(s, 0.3), full=s == 9, fault=s == 10) for s in range(1, 13)]
    views[10] = SlotView(11, False, None)
    needs = [Need(1800, frozenset({1, 2, 3, 4})), Need(5400, frozenset({5, 6}))]
    order = plan_order(views, needs, charging_slots=2)
    assert sorted(order) == list(range(1, 13))
    # slot 1 is 2 % from ready: first; slot 3 (20 %, 34 min at 30 W) cannot make 30 min, slot 2 neither
    assert order[0] == 1
    assert order.index(3) < order.index(2), "then the next lesson's others, fullest first"
    assert order.index(2) < order.index(5), "then the lesson after"
    assert order.index(5) < order.index(6)
    assert set(order[-3:]) == {9, 10, 11}, "full, faulty and empty slots last"
    assert order.index(4) > order.index(7), "a tablet already ready waits behind those that are not"


def test_after_the_end_of_the_day_the_carts_next_report_raises_the_alerts_once(template: Any, tmp_path: Path) -> None:
    h = build_hub(template, tmp_path / "data", devices={"end_of_day": "00:00"})
    teacher = bearer(h.staff_token("teacher"))
    assert h.client().post(f"/api/v1/tablets/{tablet_id(h, 9)}/checkout", json={"student_id": h.student("09")[0]}, headers=teacher).status_code == 204
    present = [1] * 60
    present[8] = 0
    key = demo_cart(h)
    assert post(h, key, telemetry("demo-cart", 300, present=present)).status_code == 200
    assert post(h, key, telemetry("demo-cart", 301, present=present)).status_code == 200
    assert h.client().post("/api/v1/carts/end-of-day", headers=teacher).get_json()["carts"] == [], "not twice a day"
    assert h.sql("SELECT kind, detail FROM cart_alerts") == [("not-returned", "tablet DEMO-TAB-09 not back in the cart")]
    assert h.count("outbox", "type = 'tablet.not_returned'") == 1


def test_a_tablet_reported_at_exactly_80_percent_is_charged_a_little_more_for_the_next_lesson() -> None:
    # Reports are rounded to 1 %: "0.80" may be 79.5 %, not ready. The plan aims at 82 %.
    views = [SlotView(1, True, 0.80), SlotView(2, True, 0.5), SlotView(3, True, 0.83)]
    needs = [Need(1800, frozenset({1, 3}))]
    assert plan_order(views, needs, charging_slots=1)[0] == 1
    assert plan_order(views, needs, charging_slots=1, margin=0.0)[0] == 2, "without the margin it counts as ready"
    assert plan_order(views, needs, charging_slots=1).index(3) > plan_order(views, needs, charging_slots=1).index(2)
