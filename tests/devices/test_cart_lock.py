"""Door lock commands on the hub: who may ask, the command riding in the signed
reply to the cart's next telemetry, the cart's acknowledgement, supersession,
expiry, and the district's outbox events."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from firmware.cart import protocol
from tests.hub.support import HubEnv, assert_problem, bearer, device, student_headers

from .cartsim import enrol_cart, post, telemetry


def ask(h: HubEnv, op: str, who: str = "teacher", cart: str = "cart-1") -> Any:
    return h.client().post(f"/api/v1/carts/{cart}/lock-commands", json={"op": op}, headers=bearer(h.staff_token(who)))


def lock_events(h: HubEnv) -> list[dict[str, Any]]:
    return [json.loads(r[0]) for r in h.sql("SELECT payload FROM outbox WHERE type = 'cart.lock' ORDER BY seq")]


def cart_view(h: HubEnv, who: str = "teacher", cart: str = "cart-1") -> dict[str, Any]:
    carts = h.client().get("/api/v1/carts", headers=bearer(h.staff_token(who))).get_json()["carts"]
    return next(c for c in carts if c["id"] == cart)


def test_only_staff_of_the_carts_class_or_an_admin_may_lock_or_unlock(hub: HubEnv) -> None:
    enrol_cart(hub)
    tablet = hub.enrol(class_id=hub.class_id)
    student = hub.sign_in(tablet)
    path = "/api/v1/carts/cart-1/lock-commands"
    for who in ("teacher", "other_teacher", "admin"):
        hub.staff_token(who)  # sign-ins are rows too: before the snapshot
    before = hub.snapshot()
    assert_problem(hub.client().post(path, json={"op": "unlock"}), 401)
    assert_problem(hub.client().post(path, json={"op": "unlock"}, headers=device(tablet.token)), 401)
    assert_problem(hub.client().post(path, json={"op": "unlock"}, headers=student_headers(student, tablet.token)), 403)
    assert_problem(ask(hub, "unlock", "other_teacher"), 404, "no-such-cart")
    assert_problem(ask(hub, "unlock", cart="cart-9"), 404, "no-such-cart")
    assert_problem(ask(hub, "open"), 422)
    assert hub.count("cart_commands") == 0 and hub.snapshot() == before
    assert cart_view(hub, "other_teacher")["can_lock"] is False
    assert cart_view(hub, "teacher")["can_lock"] is True and cart_view(hub, "admin")["can_lock"] is True
    r = ask(hub, "unlock")
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["status"] == "queued" and r.get_json()["op"] == "unlock"
    assert ask(hub, "lock", "admin").status_code == 202


def test_the_command_rides_in_the_signed_reply_until_the_cart_acknowledges_it(hub: HubEnv) -> None:
    key = enrol_cart(hub)
    assert post(hub, key, telemetry("cart-1", 1)).status_code == 200
    cid = ask(hub, "unlock").get_json()["id"]
    r = post(hub, key, telemetry("cart-1", 2))
    assert r.status_code == 200
    assert protocol.equal(r.headers[protocol.HDR_MAC], protocol.reply_mac(key, "cart-1", 2, r.data)), "authenticated like the plan"
    reply = r.get_json()
    assert protocol.check_reply(reply, 60) == []
    assert reply["cmds"] == [{"op": "unlock", "id": cid}]
    assert cart_view(hub)["lock_command"]["status"] == "sent"
    # the ack was lost: the next reply carries it again (the cart runs an id once)
    assert post(hub, key, telemetry("cart-1", 3)).get_json()["cmds"] == [{"op": "unlock", "id": cid}]
    ack = {"id": cid, "op": "unlock", "result": "done"}
    assert post(hub, key, telemetry("cart-1", 4, lock=0, ack=ack)).get_json()["cmds"] == []
    view = cart_view(hub)
    assert view["lock_command"]["status"] == "done" and view["telemetry"]["lock"] == 0
    # the cart repeats its last ack in every report: recorded once
    assert post(hub, key, telemetry("cart-1", 5, lock=0, ack=ack)).status_code == 200
    events = lock_events(hub)
    assert len(events) == 1
    teacher_id = hub.sql("SELECT id FROM users WHERE username = ?", (hub.creds.teacher[0],))[0][0]
    assert events[0]["command"] == cid and events[0]["result"] == "done" and events[0]["by_role"] == "teacher"
    assert events[0]["by_user"] == teacher_id


def test_a_refusal_and_a_lock_waiting_for_the_door_are_shown_as_the_cart_reports_them(hub: HubEnv) -> None:
    key = enrol_cart(hub)
    cid = ask(hub, "unlock").get_json()["id"]
    post(hub, key, telemetry("cart-1", 1))
    detail = "over-temperature cut-off: the door stays locked"
    post(hub, key, telemetry("cart-1", 2, thermal="cutoff", ack={"id": cid, "op": "unlock", "result": "refused", "detail": detail}))
    assert cart_view(hub)["lock_command"] | {"acked_at": None, "requested_at": None} == {
        "id": cid, "op": "unlock", "status": "refused", "detail": detail, "acked_at": None, "requested_at": None}
    lid = ask(hub, "lock").get_json()["id"]
    post(hub, key, telemetry("cart-1", 3, lock=0, door=1))
    post(hub, key, telemetry("cart-1", 4, lock=0, door=1, ack={"id": lid, "op": "lock", "result": "waiting", "detail": "door open"}))
    assert cart_view(hub)["lock_command"]["status"] == "waiting"
    assert post(hub, key, telemetry("cart-1", 5, lock=0, door=1)).get_json()["cmds"] == [], "not resent once the cart has it"
    post(hub, key, telemetry("cart-1", 6, lock=1, door=0, ack={"id": lid, "op": "lock", "result": "done"}))
    assert cart_view(hub)["lock_command"]["status"] == "done"
    assert [(e["op"], e["result"]) for e in lock_events(hub)] == [("unlock", "refused"), ("unlock", "local"), ("lock", "done")]


def test_a_newer_command_supersedes_and_an_old_one_expires_unsent(hub: HubEnv) -> None:
    key = enrol_cart(hub)
    first = ask(hub, "unlock").get_json()["id"]
    second = ask(hub, "lock").get_json()["id"]
    assert post(hub, key, telemetry("cart-1", 1)).get_json()["cmds"] == [{"op": "lock", "id": second}]
    assert hub.sql("SELECT status FROM cart_commands WHERE id = ?", (first,)) == [("superseded",)]
    third = ask(hub, "unlock").get_json()["id"]
    conn = sqlite3.connect(hub.config.db_path)
    conn.execute("UPDATE cart_commands SET requested_at = requested_at - 301 WHERE id = ?", (third,))
    conn.commit()
    conn.close()
    assert post(hub, key, telemetry("cart-1", 2)).get_json()["cmds"] == [], "an unlock asked for long ago never opens the cart"
    assert cart_view(hub)["lock_command"]["status"] == "expired"
    assert [(e["command"], e["result"]) for e in lock_events(hub)] == [(first, "superseded"), (second, "superseded"), (third, "expired")]


def test_a_lock_change_the_cart_made_itself_goes_to_the_district(hub: HubEnv) -> None:
    key = enrol_cart(hub)
    post(hub, key, telemetry("cart-1", 1, lock=0))
    post(hub, key, telemetry("cart-1", 2, lock=1))
    events = lock_events(hub)
    assert [(e["op"], e["result"]) for e in events] == [("lock", "local")]


@pytest.mark.parametrize("ack", [
    {"id": 1, "op": "open", "result": "done"},
    {"id": 0, "op": "lock", "result": "done"},
    {"id": 1, "op": "lock", "result": "maybe"},
    {"id": 1, "op": "lock", "result": "done", "by": "me"},
    {"id": 1, "op": "lock", "result": "done", "detail": "x" * 121},
    "done",
])
def test_a_malformed_ack_is_refused_and_changes_nothing(hub: HubEnv, ack: Any) -> None:
    key = enrol_cart(hub)
    ask(hub, "unlock")
    assert post(hub, key, telemetry("cart-1", 1)).status_code == 200
    before = hub.snapshot()
    assert_problem(post(hub, key, telemetry("cart-1", 2, ack=ack)), 422)
    assert hub.snapshot() == before


def test_an_ack_for_another_carts_command_is_ignored(hub: HubEnv) -> None:
    key = enrol_cart(hub)
    key2 = enrol_cart(hub, "cart-2")
    cid = ask(hub, "unlock", cart="cart-2").get_json()["id"]
    post(hub, key2, telemetry("cart-2", 1))
    post(hub, key, telemetry("cart-1", 1, ack={"id": cid, "op": "unlock", "result": "done"}))
    assert hub.sql("SELECT status FROM cart_commands WHERE id = ?", (cid,)) == [("sent",)]


def run_cli(h: HubEnv, *args: str) -> Any:
    from click.testing import CliRunner

    from edge.cli import main as cli

    return CliRunner().invoke(cli, ["--data-dir", str(h.config.hub.data_dir), *args], env={"HUB_CONFIG": ""})


def test_the_hub_admin_locks_and_unlocks_from_the_command_line(hub: HubEnv) -> None:
    key = enrol_cart(hub)
    r = run_cli(hub, "carts", "lock", "cart-1", "--unlock")
    assert r.exit_code == 0, r.output
    cid = hub.sql("SELECT id FROM cart_commands")[0][0]
    assert post(hub, key, telemetry("cart-1", 1)).get_json()["cmds"] == [{"op": "unlock", "id": cid}]
    post(hub, key, telemetry("cart-1", 2, lock=0, ack={"id": cid, "op": "unlock", "result": "done"}))
    listing = run_cli(hub, "carts", "list").output
    assert "unlocked" in listing and "last lock command unlock done" in listing
    assert [(e["result"], e["by_role"], e["by_user"]) for e in lock_events(hub)] == [("done", "cli", None)]
    r = run_cli(hub, "carts", "lock", "no-such-cart")
    assert r.exit_code != 0 and "no cart no-such-cart" in r.output
