"""Inventory and check-out/in: carts, tablets, who has which, end-of-day alerts."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from edge import outbox
from edge.storage.db import Database, transaction
from firmware.cart import protocol


class FleetError(Exception):
    def __init__(self, status: int, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug


def add_cart(db: Database, cart_id: str, name: str, slots: int, budget_w: float, class_id: int | None = None, volts: float = 220.0) -> str:
    """Enrol a cart; returns its link key (hex), which is shown once."""
    if not protocol.valid_cart_id(cart_id):
        raise FleetError(422, "bad-cart-id", "a cart id is 1-32 of a-z, 0-9 and -")
    key = secrets.token_hex(32)
    with transaction(db):
        if class_id is not None and db.execute("SELECT 1 FROM classes WHERE id = ?", (class_id,)).fetchone() is None:
            raise FleetError(404, "no-such-class", f"no class with id {class_id}")
        if db.execute("SELECT 1 FROM carts WHERE id = ?", (cart_id,)).fetchone():
            raise FleetError(409, "cart-exists", f"cart {cart_id} is already enrolled")
        db.conn.execute(
            "INSERT INTO carts (id, name, slots, key_hex, budget_w, class_id, created_at, volts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (cart_id, name, slots, key, budget_w, class_id, time.time(), volts),
        )
    return key


def carts(db: Database) -> list[dict[str, Any]]:
    out = []
    for row in db.execute("SELECT id, name, slots, budget_w, class_id, fw, last_seen, telemetry FROM carts WHERE disabled = 0 ORDER BY id"):
        tele = json.loads(row[7]) if row[7] else None
        out.append({
            "id": row[0], "name": row[1], "slots": row[2], "budget_w": row[3], "class_id": row[4], "fw": row[5], "last_seen": row[6],
            "telemetry": tele,
            "alerts": [{"id": a[0], "kind": a[1], "detail": a[2], "at": a[3]} for a in db.execute(
                "SELECT id, kind, detail, created_at FROM cart_alerts WHERE cart_id = ? AND cleared_at IS NULL ORDER BY id DESC LIMIT 50", (row[0],))],
        })
    return out


def add_tablet(db: Database, serial: str, model: str, cart_id: str | None, slot: int | None,
               device_uuid: str | None, student_id: int | None) -> int:
    with transaction(db):
        device_id = None
        if device_uuid:
            r = db.execute("SELECT id FROM devices WHERE uuid = ? AND revoked_at IS NULL", (device_uuid,)).fetchone()
            if r is None:
                raise FleetError(404, "no-such-device", "no enrolled tablet with that device id")
            device_id = r[0]
        if cart_id is not None:
            r = db.execute("SELECT slots FROM carts WHERE id = ?", (cart_id,)).fetchone()
            if r is None:
                raise FleetError(404, "no-such-cart", f"no cart {cart_id}")
            if slot is None or not 1 <= slot <= r[0]:
                raise FleetError(422, "bad-slot", f"slot must be 1..{r[0]} for cart {cart_id}")
        if student_id is not None and db.execute("SELECT 1 FROM students WHERE id = ?", (student_id,)).fetchone() is None:
            raise FleetError(404, "no-such-student", "no such student")
        if db.execute("SELECT 1 FROM tablets WHERE serial = ?", (serial,)).fetchone():
            raise FleetError(409, "tablet-exists", f"tablet {serial} is already in the fleet")
        if cart_id and db.execute("SELECT 1 FROM tablets WHERE cart_id = ? AND slot = ?", (cart_id, slot)).fetchone():
            raise FleetError(409, "slot-taken", f"slot {slot} of {cart_id} already has a tablet")
        cur = db.conn.execute(
            "INSERT INTO tablets (serial, model, device_id, student_id, cart_id, slot, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (serial, model, device_id, student_id, cart_id, slot, time.time()),
        )
        return int(cur.lastrowid or 0)


def tablets(db: Database, class_ids: list[int] | None) -> list[dict[str, Any]]:
    """The fleet; a teacher (class_ids given) sees tablets of their students or their classes' carts."""
    rows = db.execute(
        """SELECT t.id, t.serial, t.model, d.uuid, t.student_id, s.name, t.cart_id, t.slot, t.battery, t.battery_src,
                  c.id, c.out_at, c.student_id, s.class_id, k.class_id
           FROM tablets t
           LEFT JOIN devices d ON d.id = t.device_id
           LEFT JOIN students s ON s.id = t.student_id
           LEFT JOIN carts k ON k.id = t.cart_id
           LEFT JOIN checkouts c ON c.tablet_id = t.id AND c.in_at IS NULL
           ORDER BY t.cart_id, t.slot, t.serial"""
    ).fetchall()
    out = []
    for r in rows:
        if class_ids is not None and r[13] not in class_ids and r[14] not in class_ids:
            continue
        out.append({"id": r[0], "serial": r[1], "model": r[2], "device_id": r[3], "student_id": r[4], "student_name": r[5],
                    "cart_id": r[6], "slot": r[7], "battery": r[8], "battery_source": r[9],
                    "out": r[10] is not None, "out_since": r[11], "out_with": r[12]})
    return out


def _tablet_class(db: Database, tablet_id: int) -> tuple[int | None, int | None]:
    r = db.execute("SELECT s.class_id, k.class_id FROM tablets t LEFT JOIN students s ON s.id = t.student_id "
                   "LEFT JOIN carts k ON k.id = t.cart_id WHERE t.id = ?", (tablet_id,)).fetchone()
    if r is None:
        raise FleetError(404, "no-such-tablet", "no such tablet")
    return r[0], r[1]


def check_out(db: Database, tablet_id: int, student_id: int | None, class_ids: list[int] | None) -> None:
    with transaction(db):
        classes = _tablet_class(db, tablet_id)
        if class_ids is not None and not set(classes) & set(class_ids):
            raise FleetError(404, "no-such-tablet", "no such tablet among your classes' carts and students")
        if student_id is not None:
            r = db.execute("SELECT class_id FROM students WHERE id = ? AND active = 1", (student_id,)).fetchone()
            if r is None or (class_ids is not None and r[0] not in class_ids):
                raise FleetError(404, "no-such-student", "no such student in your classes")
        if db.execute("SELECT 1 FROM checkouts WHERE tablet_id = ? AND in_at IS NULL", (tablet_id,)).fetchone():
            raise FleetError(409, "already-out", "this tablet is already checked out")
        db.conn.execute("INSERT INTO checkouts (tablet_id, student_id, out_at) VALUES (?, ?, ?)", (tablet_id, student_id, time.time()))


def check_in(db: Database, tablet_id: int, class_ids: list[int] | None) -> bool:
    with transaction(db):
        classes = _tablet_class(db, tablet_id)
        if class_ids is not None and not set(classes) & set(class_ids):
            raise FleetError(404, "no-such-tablet", "no such tablet among your classes' carts and students")
        cur = db.conn.execute("UPDATE checkouts SET in_at = ?, in_source = 'staff' WHERE tablet_id = ? AND in_at IS NULL", (time.time(), tablet_id))
        return cur.rowcount > 0


def end_of_day(db: Database, now: float | None = None, day_start: float | None = None) -> list[dict[str, Any]]:
    """Tablets still out: an alert each (teacher and admin views) and an outbox
    event for the district, once per tablet per day. Returns what was raised, for
    live events after commit."""
    with transaction(db):
        return raise_not_returned(db, now, day_start)


def raise_not_returned(db: Database, now: float | None = None, day_start: float | None = None) -> list[dict[str, Any]]:
    """As end_of_day, inside the caller's transaction."""
    now = time.time() if now is None else now
    day_start = now - 86400 if day_start is None else day_start
    raised = []
    rows = db.execute(
        """SELECT t.id, t.serial, t.cart_id, s.pseudo_id, s.class_id, k.class_id, c.out_at
           FROM checkouts c JOIN tablets t ON t.id = c.tablet_id
           LEFT JOIN students s ON s.id = c.student_id LEFT JOIN carts k ON k.id = t.cart_id
           WHERE c.in_at IS NULL"""
    ).fetchall()
    for tablet_id, serial, cart_id, pseudo, s_class, k_class, out_at in rows:
        detail = f"tablet {serial} not back in the cart"
        if db.execute("SELECT 1 FROM cart_alerts WHERE kind = 'not-returned' AND detail = ? AND created_at >= ?", (detail, day_start)).fetchone():
            continue
        db.conn.execute("INSERT INTO cart_alerts (cart_id, kind, detail, created_at) VALUES (?, 'not-returned', ?, ?)", (cart_id, detail, now))
        outbox.append(db, "tablet.not_returned", {"tablet": serial, "cart": cart_id, "student": pseudo, "out_at": out_at, "at": now})
        raised.append({"tablet_id": tablet_id, "serial": serial, "cart_id": cart_id, "class_id": s_class or k_class, "detail": detail})
    return raised


def report_battery(db: Database, device_id: int, level: float, slot: int | None) -> None:
    with transaction(db):
        r = db.execute("SELECT id FROM tablets WHERE device_id = ?", (device_id,)).fetchone()
        if r is None:
            raise FleetError(404, "not-in-fleet", "this tablet is not in the fleet inventory; ask the admin to add it")
        db.conn.execute("UPDATE tablets SET battery = ?, battery_at = ?, battery_src = 'tablet' WHERE id = ?", (level, time.time(), r[0]))
