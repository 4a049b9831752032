"""The hub's end of the cart link: authenticate a cart's request, accept its
telemetry, answer with its charge plan and commands.

Message shapes and the MAC live once in ``firmware/cart/protocol.py``, loaded
here as it is on the cart.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from edge import outbox
from edge.devices import lock, planner, rollout, service
from edge.storage.db import Database, transaction
from firmware.cart import protocol

log = logging.getLogger(__name__)

OUTBOX_EVERY_S = 300  # cart telemetry summaries for the district, not every 3-second report
FAULT_NAMES = {protocol.FAULT_OVERCURRENT: "over-current", protocol.FAULT_STUCK_ON: "relay stuck on", protocol.FAULT_SENSOR: "current sensor"}


class CartAuthError(Exception):
    """The request is not from the cart it claims to be (or is a replay)."""

    def __init__(self, reason: str, cart_id: str | None = None) -> None:
        super().__init__(reason)
        self.cart_id = cart_id


class TelemetryError(Exception):
    """Authenticated, but the content is not acceptable."""


@dataclass
class Authenticated:
    cart_id: str
    counter: int
    key: bytes
    slots: int


def authenticate(db: Database, method: str, path: str, headers: Any, body: bytes) -> Authenticated:
    """Check the MAC; the counter is checked (and consumed) by the caller's
    transaction with :func:`consume_counter`."""
    cart_id = headers.get(protocol.HDR_ID, "")
    counter = protocol.parse_counter(headers.get(protocol.HDR_COUNTER, ""))
    mac = headers.get(protocol.HDR_MAC, "")
    if not protocol.valid_cart_id(cart_id) or counter is None or len(mac) != 64:
        raise CartAuthError("missing or malformed cart headers")
    row = db.execute("SELECT key_hex, slots FROM carts WHERE id = ? AND disabled = 0", (cart_id,)).fetchone()
    if row is None:
        raise CartAuthError("unknown cart", cart_id)
    key = bytes.fromhex(row[0])
    if not protocol.equal(mac, protocol.request_mac(key, method, path, cart_id, counter, body)):
        raise CartAuthError("bad MAC (wrong key, another cart's id, or altered in transit)", cart_id)
    return Authenticated(cart_id, counter, key, int(row[1]))


def consume_counter(db: Database, auth: Authenticated) -> None:
    """Inside the write transaction: refuse a counter not above the last accepted."""
    last = db.execute("SELECT last_ctr FROM carts WHERE id = ?", (auth.cart_id,)).fetchone()[0]
    if auth.counter <= last:
        raise CartAuthError(f"replayed or stale counter {auth.counter} (last accepted {last})", auth.cart_id)
    db.conn.execute("UPDATE carts SET last_ctr = ? WHERE id = ?", (auth.counter, auth.cart_id))


def sign_reply(auth: Authenticated, body: bytes) -> str:
    return protocol.reply_mac(auth.key, auth.cart_id, auth.counter, body)


@dataclass(frozen=True)
class Clock:
    """The school's local time: the timetable and the end of the day are local."""

    tz: str = "Asia/Shanghai"
    end_of_day: str = "17:00"

    def local(self, now: float) -> datetime:
        return datetime.fromtimestamp(now, ZoneInfo(self.tz))

    def midnight(self, now: float) -> float:
        return self.local(now).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()

    def at(self, now: float, hhmm: str) -> float:
        h, m = (int(x) for x in hhmm.split(":"))
        return self.local(now).replace(hour=h, minute=m, second=0, microsecond=0).timestamp()


def accept_telemetry(db: Database, auth: Authenticated, body: bytes, now: float | None = None,
                     clock: Clock | None = None) -> tuple[dict[str, Any], list[tuple[str, str, dict[str, Any]]]]:
    """Validate and store one telemetry message; return the reply and live events
    to publish after commit. Raises CartAuthError/TelemetryError with nothing changed."""
    now = time.time() if now is None else now
    clock = clock or Clock()
    try:
        msg = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise TelemetryError("telemetry is not JSON") from None
    errors = protocol.check_telemetry(msg, auth.slots)
    if errors:
        raise TelemetryError("; ".join(errors[:5]))
    if msg["cart"] != auth.cart_id or msg["ctr"] != auth.counter:
        raise CartAuthError("body names another cart or counter than its headers", auth.cart_id)
    events: list[tuple[str, str, dict[str, Any]]] = []
    with transaction(db):
        consume_counter(db, auth)
        prev_row = db.execute("SELECT telemetry, outbox_at, class_id, target_fw FROM carts WHERE id = ?", (auth.cart_id,)).fetchone()
        prev = json.loads(prev_row[0]) if prev_row[0] else None
        db.conn.execute("UPDATE carts SET fw = ?, last_seen = ?, telemetry = ? WHERE id = ?", (msg["fw"], now, json.dumps(msg), auth.cart_id))
        _docked_tablets(db, auth.cart_id, msg, now)
        lock.acknowledge(db, auth.cart_id, prev, msg, now)
        for kind, detail in _new_alerts(prev, msg):
            db.conn.execute("INSERT INTO cart_alerts (cart_id, kind, detail, created_at) VALUES (?, ?, ?, ?)", (auth.cart_id, kind, detail, now))
            outbox.append(db, "cart.alert", {"cart": auth.cart_id, "kind": kind, "detail": detail, "at": now})
            if prev_row[2]:
                events.append((f"staff:{prev_row[2]}", "cart.alert", {"cart": auth.cart_id, "kind": kind, "detail": detail}))
        if prev_row[1] is None or now - prev_row[1] >= OUTBOX_EVERY_S:
            outbox.append(db, "cart.telemetry", _summary(msg, now))
            db.conn.execute("UPDATE carts SET outbox_at = ? WHERE id = ?", (now, auth.cart_id))
        events.extend(_end_of_day_once(db, clock, now))
        cmds = lock.deliver(db, auth.cart_id, auth.counter, now) + rollout.commands_for(db, auth.cart_id, msg, now)
        reply = {"v": protocol.VERSION, "cart": auth.cart_id, "ctr": auth.counter, "now": int(now),
                 "plan": {"order": plan_for(db, auth.cart_id, auth.slots, msg, now, clock), "ttl": 120}, "cmds": cmds}
    return reply, events


TABLET_REPORT_TRUSTED_S = 600  # a browser's battery report beats our inference for this long
ASSUMED_CAPACITY_WH = 30.0  # a classroom tablet (the inventory does not record capacities)
MAX_GAP_S = 60.0  # never integrate current across a longer silence


def _end_of_day_once(db: Database, clock: Clock, now: float) -> list[tuple[str, str, dict[str, Any]]]:
    # Carts report every few seconds all day, so the first report after the end of
    # the day runs the not-returned check; hub_meta remembers the day it ran.
    if now < clock.at(now, clock.end_of_day):
        return []
    today = clock.local(now).date().isoformat()
    row = db.execute("SELECT value FROM hub_meta WHERE key = 'devices.end_of_day'").fetchone()
    if row and row[0] == today:
        return []
    db.conn.execute("INSERT OR REPLACE INTO hub_meta (key, value) VALUES ('devices.end_of_day', ?)", (today,))
    raised = service.raise_not_returned(db, now, clock.midnight(now))
    return [(f"staff:{r['class_id']}", "tablet.not_returned", r) for r in raised if r["class_id"]]


def _docked_tablets(db: Database, cart_id: str, msg: dict[str, Any], now: float) -> None:
    volts = db.execute("SELECT volts FROM carts WHERE id = ?", (cart_id,)).fetchone()[0]
    rows = db.execute("SELECT id, slot, battery, battery_at, battery_src FROM tablets WHERE cart_id = ? AND slot IS NOT NULL", (cart_id,)).fetchall()
    for tablet_id, slot, battery, battery_at, src in rows:
        if not (1 <= slot <= len(msg["present"]) and msg["present"][slot - 1]):
            continue
        # A tablet seen back in its home slot is checked in by the cart itself.
        db.conn.execute("UPDATE checkouts SET in_at = ?, in_source = 'cart' WHERE tablet_id = ? AND in_at IS NULL", (now, tablet_id))
        if src == "tablet" and battery_at is not None and now - battery_at < TABLET_REPORT_TRUSTED_S:
            continue
        level = infer_battery(battery, battery_at, now, bool(msg["full"][slot - 1]), msg["on"][slot - 1], msg["ma"][slot - 1], volts)
        if level is not None:
            db.conn.execute("UPDATE tablets SET battery = ?, battery_at = ?, battery_src = 'cart' WHERE id = ?", (level, now, tablet_id))


def infer_battery(level: float | None, at: float | None, now: float, full: bool, on: int, ma: int, volts: float) -> float | None:
    """The battery level from the slot's current over time: a full slot is 1.0;
    a charging one gains the energy its current carried (85 % reaching the cell)."""
    if full:
        return 1.0
    if level is None or at is None or not on:
        return level
    dt = min(max(0.0, now - at), MAX_GAP_S)
    gained = ma / 1000.0 * volts * dt / 3600.0 * 0.85 / ASSUMED_CAPACITY_WH
    return round(min(1.0, level + gained), 4)


def _new_alerts(prev: dict[str, Any] | None, msg: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    before = prev["fault"] if prev and len(prev.get("fault", [])) == len(msg["fault"]) else [0] * len(msg["fault"])
    for i, (a, b) in enumerate(zip(before, msg["fault"], strict=True)):
        if b and b != a:
            out.append(("fault", f"slot {i + 1}: {FAULT_NAMES.get(b, 'fault')}"))
    if msg["thermal"] in ("cutoff", "sensor") and (prev is None or prev.get("thermal") != msg["thermal"]):
        out.append(("thermal", "charging cut off: " + ("over-temperature" if msg["thermal"] == "cutoff" else "temperature sensor lost")))
    ota = msg["ota"]
    if ota["state"] in ("rolled_back", "refused") and (prev is None or prev.get("ota") != ota):
        out.append(("firmware", f"firmware {ota.get('version')} {ota['state'].replace('_', ' ')}: {ota.get('detail', '')}"))
    return out


def _summary(msg: dict[str, Any], now: float) -> dict[str, Any]:
    return {"cart": msg["cart"], "at": now, "fw": msg["fw"], "temp": msg["temp"], "mode": msg["mode"], "thermal": msg["thermal"],
            "docked": sum(msg["present"]), "charging": sum(msg["on"]), "full": sum(msg["full"]),
            "faults": sum(1 for f in msg["fault"] if f), "total_ma": msg["total"], "cap_ma": msg["cap"]}


def plan_for(db: Database, cart_id: str, slots: int, msg: dict[str, Any], now: float, clock: Clock | None = None) -> list[int]:
    """The charge order for this cart now, from tablets' battery levels and the timetable."""
    batteries = {row[0]: row[1] for row in db.execute("SELECT slot, battery FROM tablets WHERE cart_id = ? AND slot IS NOT NULL", (cart_id,))}
    views = [planner.SlotView(s + 1, bool(msg["present"][s]), batteries.get(s + 1), bool(msg["full"][s]), bool(msg["fault"][s])) for s in range(slots)]
    needs = _needs(db, cart_id, slots, now, clock or Clock())
    budget_w = db.execute("SELECT budget_w FROM carts WHERE id = ?", (cart_id,)).fetchone()[0]
    k = max(1, int(budget_w // 31.5))  # a 30 W charger budgeted with 5 % margin, as the cart does
    return planner.plan_order(views, needs, k)


def _needs(db: Database, cart_id: str, slots: int, now: float, clock: Clock) -> list[planner.Need]:
    weekday = clock.local(now).weekday()
    out = []
    for starts, class_id, count in db.execute(
        "SELECT starts, class_id, tablets FROM cart_timetable WHERE cart_id = ? AND weekday = ?", (cart_id, weekday)
    ):
        at = clock.at(now, starts)
        if at <= now:
            continue
        assigned = [r[0] for r in db.execute(
            "SELECT t.slot FROM tablets t JOIN students s ON s.id = t.student_id WHERE t.cart_id = ? AND s.class_id = ? AND t.slot IS NOT NULL",
            (cart_id, class_id),
        )]
        chosen = assigned[:count] if len(assigned) >= count else list(range(1, min(count, slots) + 1))
        out.append(planner.Need(at - now, frozenset(chosen)))
    return out
