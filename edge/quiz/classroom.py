"""Classroom moments: 抢答 (first to buzz in), 随机点名 (random pick) and their fairness rules.

Buzz order is the hub's arrival time (a tablet's clock is never trusted for a race),
in nanoseconds; buzzes that arrive within the same tie window are ordered by a random
number drawn at arrival, so neither student id nor network position wins a tie.
The random pick never repeats a student within the class's no-repeat window
(``window`` most recent picks, at most the class size minus one).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from edge.quiz.sessions import QuizError, class_channel, staff_channel
from edge.storage.db import Database, transaction

TIE_WINDOW_NS = 5_000_000  # 5 ms: closer than Wi-Fi jitter; treated as simultaneous
EV_BUZZ_OPEN, EV_BUZZ, EV_BUZZ_CLOSED, EV_PICK = "quiz.buzz_open", "quiz.buzz", "quiz.buzz_closed", "quiz.pick"


def open_buzz(db: Database, bus: Any, class_id: int) -> int:
    with transaction(db):
        db.conn.execute("UPDATE quiz_buzz_rounds SET closed_at = ? WHERE class_id = ? AND closed_at IS NULL", (time.time(), class_id))
        rid = int(db.conn.execute("INSERT INTO quiz_buzz_rounds (class_id, opened_at) VALUES (?, ?)", (class_id, time.time())).lastrowid or 0)
        bus.emit(db, class_channel(class_id), EV_BUZZ_OPEN, {"round_id": rid})
    return rid


def buzz(db: Database, bus: Any, round_id: int, class_id: int, student_id: int) -> dict[str, Any]:
    arrived = time.time_ns()
    with transaction(db):
        r = db.conn.execute("SELECT class_id, closed_at FROM quiz_buzz_rounds WHERE id = ?", (round_id,)).fetchone()
        if r is None or r[0] != class_id:
            raise QuizError(404, "no-such-round", "no such buzz round for your class")
        if r[1] is not None:
            raise QuizError(409, "round-closed", "this buzz round has closed")
        db.conn.execute("INSERT OR IGNORE INTO quiz_buzzes (round_id, student_id, arrived_ns, tiebreak) VALUES (?,?,?,?)",
                        (round_id, student_id, arrived, secrets.randbits(62)))
        order = buzz_order(db, round_id)
        place = next(i for i, b in enumerate(order, 1) if b["student_id"] == student_id)
        bus.emit(db, staff_channel(class_id), EV_BUZZ, {"round_id": round_id, "student_id": student_id, "place": place})
    return {"round_id": round_id, "place": place}


def buzz_order(db: Database, round_id: int) -> list[dict[str, Any]]:
    rows = db.execute("SELECT b.student_id, b.arrived_ns, b.tiebreak, s.name FROM quiz_buzzes b JOIN students s ON s.id = b.student_id"
                      " WHERE b.round_id = ?", (round_id,)).fetchall()
    if not rows:
        return []
    first = min(r[1] for r in rows)
    # Bucket by tie window from the first arrival; random order within a bucket.
    rows.sort(key=lambda r: ((r[1] - first) // TIE_WINDOW_NS, r[2]))
    return [{"student_id": r[0], "name": r[3], "offset_ms": round((r[1] - first) / 1e6, 3)} for r in rows]


def close_buzz(db: Database, bus: Any, round_id: int, class_id: int) -> list[dict[str, Any]]:
    with transaction(db):
        db.conn.execute("UPDATE quiz_buzz_rounds SET closed_at = ? WHERE id = ? AND class_id = ? AND closed_at IS NULL", (time.time(), round_id, class_id))
        bus.emit(db, class_channel(class_id), EV_BUZZ_CLOSED, {"round_id": round_id})
    return buzz_order(db, round_id)


def random_pick(db: Database, bus: Any, class_id: int, window: int) -> dict[str, Any]:
    with transaction(db):
        roster = [r[0] for r in db.conn.execute("SELECT id FROM students WHERE class_id = ? AND active = 1", (class_id,))]
        if not roster:
            raise QuizError(409, "empty-class", "the class has no students")
        window = max(0, min(window, len(roster) - 1))
        recent = {r[0] for r in db.conn.execute("SELECT student_id FROM quiz_picks WHERE class_id = ? ORDER BY id DESC LIMIT ?", (class_id, window))}
        pool = [s for s in roster if s not in recent]
        chosen = pool[secrets.randbelow(len(pool))]
        db.conn.execute("INSERT INTO quiz_picks (class_id, student_id, picked_at) VALUES (?,?,?)", (class_id, chosen, time.time()))
        name = db.conn.execute("SELECT name FROM students WHERE id = ?", (chosen,)).fetchone()[0]
        bus.emit(db, staff_channel(class_id), EV_PICK, {"student_id": chosen})
    return {"student_id": chosen, "name": name, "window": window}
