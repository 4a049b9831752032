"""Door lock commands: a teacher or admin asks, the hub queues the command for
the cart, sends it in the reply to the cart's next telemetry (so it is
authenticated like the plan: the reply's MAC is bound to that request's
counter), and the cart reports the outcome in a later telemetry message.

The cart decides last (``firmware/cart/doorlock.py``): it refuses to unlock
during a thermal cut-off and locks only once the door is closed. The newest
command of a cart wins; one not picked up within ``COMMAND_TTL_S`` is dropped,
so an unlock asked for in the morning never opens a cart that comes back
online at night. Every command ends in exactly one ``cart.lock`` outbox event;
a lock change the cart made by itself (its offline policy) is one too.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from edge import outbox
from edge.devices.service import FleetError
from edge.storage.db import Database, transaction

log = logging.getLogger(__name__)

COMMAND_TTL_S = 300
OPEN = ("queued", "sent", "waiting")
FINAL_FROM_CART = ("done", "refused")


def request(db: Database, cart_id: str, op: str, user_id: int | None, role: str, class_ids: list[int] | None) -> dict[str, Any]:
    """Queue a lock/unlock command. ``class_ids`` None: an admin, any cart; else a
    teacher, only the carts of their classes (others are 404, as if absent).
    ``role``: who asked, as the district sees it (teacher, admin, cli)."""
    if op not in ("lock", "unlock"):
        raise FleetError(422, "bad-lock-op", "op must be lock or unlock")
    now = time.time()
    with transaction(db):
        row = db.execute("SELECT class_id FROM carts WHERE id = ? AND disabled = 0", (cart_id,)).fetchone()
        if row is None or (class_ids is not None and row[0] not in class_ids):
            raise FleetError(404, "no-such-cart", f"no cart {cart_id} among your classes' carts")
        for old in db.execute("SELECT id FROM cart_commands WHERE cart_id = ? AND status IN ('queued', 'sent', 'waiting')", (cart_id,)).fetchall():
            _finish(db, old[0], "superseded", "a newer command replaced it", now)
        cur = db.conn.execute(
            "INSERT INTO cart_commands (cart_id, op, status, requested_by, requested_as, requested_at) VALUES (?, ?, 'queued', ?, ?, ?)",
            (cart_id, op, user_id, role, now),
        )
        cid = int(cur.lastrowid or 0)
    log.info("cart lock command queued", extra={"cart": cart_id, "op": op, "command": cid, "role": role})
    return latest(db, cart_id) or {}


def latest(db: Database, cart_id: str) -> dict[str, Any] | None:
    """The cart's newest command and where it stands, for the cart page."""
    row = db.execute(
        "SELECT id, op, status, detail, requested_at, acked_at FROM cart_commands WHERE cart_id = ? ORDER BY id DESC LIMIT 1", (cart_id,)
    ).fetchone()
    if row is None:
        return None
    return {"id": row[0], "op": row[1], "status": row[2], "detail": row[3], "requested_at": row[4], "acked_at": row[5]}


def deliver(db: Database, cart_id: str, counter: int, now: float) -> list[dict[str, Any]]:
    """Inside the telemetry transaction: the command for this reply, if any. It is
    sent again with every reply until the cart acknowledges it (the cart runs an
    id once), or until it expires."""
    for cid, in db.execute(
        "SELECT id FROM cart_commands WHERE cart_id = ? AND status IN ('queued', 'sent') AND requested_at < ?", (cart_id, now - COMMAND_TTL_S)
    ).fetchall():
        _finish(db, cid, "expired", f"the cart did not confirm it within {COMMAND_TTL_S // 60} minutes", now)
    row = db.execute("SELECT id, op FROM cart_commands WHERE cart_id = ? AND status IN ('queued', 'sent') ORDER BY id DESC LIMIT 1",
                     (cart_id,)).fetchone()
    if row is None:
        return []
    db.conn.execute("UPDATE cart_commands SET status = 'sent', sent_at = ?, sent_ctr = ? WHERE id = ?", (now, counter, row[0]))
    return [{"op": row[1], "id": row[0]}]


def acknowledge(db: Database, cart_id: str, prev: dict[str, Any] | None, msg: dict[str, Any], now: float) -> None:
    """Inside the telemetry transaction: record the cart's report of its last
    command, and a lock change no command explains."""
    ack = msg.get("ack")
    explained = False
    if ack is not None:
        row = db.execute("SELECT op, status FROM cart_commands WHERE id = ? AND cart_id = ?", (ack["id"], cart_id)).fetchone()
        if row is None or row[0] != ack["op"]:
            log.warning("cart reports a lock command the hub did not send it", extra={"cart": cart_id, "command": ack["id"]})
        elif row[1] in ("sent", "waiting", "expired") and row[1] != ack["result"]:
            if ack["result"] == "waiting":
                db.conn.execute("UPDATE cart_commands SET status = 'waiting', detail = ?, acked_at = ? WHERE id = ?",
                                (ack.get("detail"), now, ack["id"]))
            else:
                _finish(db, ack["id"], ack["result"], ack.get("detail"), now)
            explained = True
    if prev is not None and prev.get("lock") != msg["lock"] and not explained:
        outbox.append(db, "cart.lock", {"cart": cart_id, "op": "lock" if msg["lock"] else "unlock", "result": "local",
                                        "detail": "changed by the cart itself (offline policy or restart)", "at": now})


def _finish(db: Database, cid: int, status: str, detail: str | None, now: float) -> None:
    db.conn.execute("UPDATE cart_commands SET status = ?, detail = ?, acked_at = ? WHERE id = ?", (status, detail, now, cid))
    cart_id, op, by, role, at = db.execute(
        "SELECT cart_id, op, requested_by, requested_as, requested_at FROM cart_commands WHERE id = ?", (cid,)
    ).fetchone()
    outbox.append(db, "cart.lock", {"cart": cart_id, "command": cid, "op": op, "result": status, "detail": detail,
                                    "by_user": by, "by_role": role, "requested_at": at, "at": now})
