"""What each kind of reader sees of a session.

Students: :func:`student_current` (open questions, public parts only, plus their own
answers) and :func:`student_results` (keys and explanations of *closed* questions
only; reading them is recorded so that no late answer follows). Staff:
:func:`live_view` (counts, distribution, correctness grid, most-missed question),
with names left out entirely in projector mode.
"""

from __future__ import annotations

import json
import time
from typing import Any

from edge.quiz import bank
from edge.quiz.items import public_view
from edge.quiz.sessions import effective_close
from edge.storage.db import Database, transaction


def _items_of(db: Database, session_id: int) -> list[tuple[int, int, float, float | None, float | None]]:
    return db.execute("SELECT item_id, position, opened_at, closes_at, closed_at FROM quiz_session_items WHERE session_id = ? ORDER BY position",
                      (session_id,)).fetchall()


def student_current(db: Database, class_id: int, student_id: int) -> list[dict[str, Any]]:
    """Open sessions of the class with their questions (no keys) and this student's answers (no grades)."""
    now = time.time()
    out = []
    for s in db.execute("SELECT id, title, kind, allow_change, grace_s, started_at, closed_at FROM quiz_sessions"
                        " WHERE class_id = ? AND closed_at IS NULL ORDER BY id", (class_id,)).fetchall():
        sid = s[0]
        rows = _items_of(db, sid)
        items = bank.get_items(db, [r[0] for r in rows])
        mine = {r[0]: (json.loads(r[1]), bool(r[2])) for r in db.execute(
            "SELECT item_id, response, final FROM quiz_answers WHERE session_id = ? AND student_id = ?", (sid, student_id))}
        qs = []
        for item_id, pos, _opened, closes_at, closed_at in rows:
            it = items[item_id]
            close_at = effective_close(closed_at, None, closes_at)
            view = public_view(it.type, it.stem, it.options, it.key, it.allow_photo)
            view.update(id=item_id, position=pos, closes_at=closes_at, closed=close_at is not None and now > close_at)
            if item_id in mine:
                view["my_response"], view["submitted"] = mine[item_id]
            qs.append(view)
        out.append({"id": sid, "title": s[1], "kind": s[2], "allow_change": bool(s[3]), "started_at": s[5], "items": qs})
    return out


def student_results(db: Database, session_id: int, class_id: int, student_id: int) -> dict[str, Any] | None:
    """This student's results; keys/explanations/grades only for closed questions (recorded as revealed)."""
    s = db.execute("SELECT id, title, class_id, closed_at FROM quiz_sessions WHERE id = ?", (session_id,)).fetchone()
    if s is None or s[2] != class_id:
        return None
    now = time.time()
    rows = _items_of(db, session_id)
    items = bank.get_items(db, [r[0] for r in rows])
    mine = {r[0]: r[1:] for r in db.execute(
        "SELECT item_id, response, final, correct, score FROM quiz_answers WHERE session_id = ? AND student_id = ?", (session_id, student_id))}
    out_items, revealed = [], []
    for item_id, pos, _opened, closes_at, closed_at in rows:
        it = items[item_id]
        close_at = effective_close(closed_at, s[3], closes_at)
        closed = close_at is not None and now > close_at
        view = public_view(it.type, it.stem, it.options, it.key, it.allow_photo)
        view.update(id=item_id, position=pos, closed=closed)
        if item_id in mine:
            view["my_response"], view["submitted"] = json.loads(mine[item_id][0]), bool(mine[item_id][1])
        if closed:
            view.update(key=it.key, explanation=it.explanation, points=it.points)
            if item_id in mine:
                c = mine[item_id][2]
                view.update(correct=None if c is None else bool(c), score=mine[item_id][3])
            revealed.append(item_id)
        out_items.append(view)
    if revealed:
        with transaction(db):
            db.conn.executemany("INSERT OR IGNORE INTO quiz_reveals (session_id, item_id, student_id, at) VALUES (?,?,?,?)",
                                [(session_id, i, student_id, now) for i in revealed])
    return {"id": session_id, "title": s[1], "items": out_items}


def live_view(db: Database, session_id: int, projector: bool) -> dict[str, Any] | None:
    """The teacher's live picture of a session. ``projector`` leaves every name and number out."""
    s = db.execute("SELECT id, title, kind, class_id, started_at, closed_at, allow_change, grace_s, time_limit_s FROM quiz_sessions WHERE id = ?",
                   (session_id,)).fetchone()
    if s is None:
        return None
    rows = _items_of(db, session_id)
    items = bank.get_items(db, [r[0] for r in rows])
    roster = db.execute("SELECT id, number, name FROM students WHERE class_id = ? AND active = 1 ORDER BY number", (s[3],)).fetchall()
    answers = db.execute("SELECT id, item_id, student_id, response, correct, score, final FROM quiz_answers WHERE session_id = ?",
                         (session_id,)).fetchall()
    by_item: dict[int, list[tuple[Any, ...]]] = {}
    grid: dict[int, dict[int, Any]] = {}
    for a in answers:
        by_item.setdefault(a[1], []).append(a)
        grid.setdefault(a[2], {})[a[1]] = None if a[4] is None else bool(a[4])
    out_items, most_missed = [], None
    for item_id, pos, _opened, closes_at, closed_at in rows:
        it = items[item_id]
        ans = by_item.get(item_id, [])
        dist: list[int] = []
        if it.type in ("single", "multiple"):
            dist = [0] * len(it.options)
            for a in ans:
                for c in json.loads(a[3]).get("choices", []):
                    dist[c] += 1
        elif it.type == "truefalse":
            dist = [sum(1 for a in ans if json.loads(a[3]).get("value") is True), sum(1 for a in ans if json.loads(a[3]).get("value") is False)]
        right = sum(1 for a in ans if a[4] == 1)
        wrong = sum(1 for a in ans if a[4] == 0)
        view = {"id": item_id, "position": pos, "type": it.type, "stem": it.stem, "options": it.options, "key": it.key,
                "answered": len(ans), "correct": right, "wrong": wrong, "pending": sum(1 for a in ans if a[4] is None),
                "distribution": dist, "closes_at": closes_at, "closed_at": closed_at}
        if not projector:
            view["explanation"] = it.explanation
        out_items.append(view)
        if wrong and (most_missed is None or wrong > most_missed[1]):
            most_missed = (item_id, wrong)
    result: dict[str, Any] = {
        "id": s[0], "title": s[1], "kind": s[2], "class_id": s[3], "started_at": s[4], "closed_at": s[5],
        "allow_change": bool(s[6]), "grace_s": s[7], "time_limit_s": s[8], "class_size": len(roster), "items": out_items,
        "most_missed": most_missed[0] if most_missed else None, "projector": projector,
    }
    if projector:
        # Anonymous grid: seat order only, no id, name or number (the projector is seen by everyone).
        result["grid"] = [[grid.get(st[0], {}).get(r[0], "none") for r in rows] for st in roster]
    else:
        answer_ids = {(a[2], a[1]): a[0] for a in answers}
        result["students"] = [{"id": st[0], "number": st[1], "name": st[2],
                               "answers": [{"item_id": r[0], "correct": grid.get(st[0], {}).get(r[0], "none"),
                                            "answer_id": answer_ids.get((st[0], r[0]))} for r in rows]} for st in roster]
    return result
