"""After-class reports: per question (difficulty, discrimination), per student,
CSV/XLSX export, and each student's wrong-answer notebook (错题本).

Difficulty is the classical facility index P (mean score / full marks: 1 = everyone
right). Discrimination is the upper-lower index D = P(top 27 %) - P(bottom 27 %),
students ranked by their total in the session (Kelley's 27 %); it needs at least 4
students who answered and is null otherwise.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from typing import Any

from edge.quiz import bank
from edge.quiz.sessions import effective_close
from edge.storage.db import Database


def _closed_items(db: Database, session_id: int) -> set[int]:
    now = time.time()
    s_closed = db.execute("SELECT closed_at FROM quiz_sessions WHERE id = ?", (session_id,)).fetchone()[0]
    return {r[0] for r in db.execute("SELECT item_id, closes_at, closed_at FROM quiz_session_items WHERE session_id = ?", (session_id,))
            if (c := effective_close(r[2], s_closed, r[1])) is not None and now > c}


def session_report(db: Database, session_id: int) -> dict[str, Any]:
    s = db.execute("SELECT id, title, kind, class_id, started_at, closed_at FROM quiz_sessions WHERE id = ?", (session_id,)).fetchone()
    item_rows = db.execute("SELECT item_id, position FROM quiz_session_items WHERE session_id = ? ORDER BY position", (session_id,)).fetchall()
    items = bank.get_items(db, [r[0] for r in item_rows])
    roster = db.execute("SELECT id, number, name FROM students WHERE class_id = ? AND active = 1 ORDER BY number", (s[3],)).fetchall()
    answers = db.execute("SELECT student_id, item_id, correct, score, response FROM quiz_answers WHERE session_id = ?", (session_id,)).fetchall()
    scores: dict[int, dict[int, float | None]] = {}
    correct: dict[int, dict[int, int | None]] = {}
    for st, it, c, sc, _ in answers:
        scores.setdefault(st, {})[it] = sc
        correct.setdefault(st, {})[it] = c
    totals = {st: sum(v or 0.0 for v in d.values()) for st, d in scores.items()}
    ranked = sorted(totals, key=lambda st: totals[st])
    k = math.floor(len(ranked) * 0.27) if len(ranked) >= 4 else 0
    lower, upper = set(ranked[:k]), set(ranked[-k:]) if k else set()
    q_out = []
    for item_id, pos in item_rows:
        it = items[item_id]
        got = [(st, d[item_id]) for st, d in scores.items() if item_id in d and d[item_id] is not None]
        p = sum(v for _, v in got) / (len(got) * it.points) if got else None

        def facility(group: set[int], got: list[tuple[int, Any]] = got, pts: float = it.points) -> float | None:
            vals = [v for st, v in got if st in group]
            return sum(vals) / (len(vals) * pts) if vals else None

        pu, pl = facility(upper), facility(lower)
        q_out.append({
            "item_id": item_id, "position": pos, "type": it.type, "stem": it.stem, "knowledge_points": it.knowledge_points,
            "answered": sum(1 for d in scores.values() if item_id in d), "graded": len(got),
            "correct": sum(1 for d in correct.values() if d.get(item_id) == 1),
            "difficulty_p": None if p is None else round(p, 3),
            "discrimination_d": None if pu is None or pl is None else round(pu - pl, 3),
        })
    max_total = sum(items[r[0]].points for r in item_rows)
    s_out = [{"student_id": st, "number": num, "name": name, "answered": len(scores.get(st, {})),
              "correct": sum(1 for c in correct.get(st, {}).values() if c == 1), "score": round(totals.get(st, 0.0), 2), "max": max_total}
             for st, num, name in roster]
    return {"id": s[0], "title": s[1], "kind": s[2], "class_id": s[3], "started_at": s[4], "closed_at": s[5],
            "questions": q_out, "students": s_out}


def export(db: Database, session_id: int, fmt: str) -> tuple[bytes, str]:
    rep = session_report(db, session_id)
    qs = rep["questions"]
    per_student = {(r[0], r[1]): r[2:] for r in db.execute(
        "SELECT student_id, item_id, correct, score FROM quiz_answers WHERE session_id = ?", (session_id,))}
    header = ["学号", "姓名", "得分", "满分", "答对"] + [f"第{q['position'] + 1}题" for q in qs]
    rows: list[list[Any]] = [header]
    for st in rep["students"]:
        marks = []
        for q in qs:
            a = per_student.get((st["student_id"], q["item_id"]))
            marks.append("" if a is None else ("待批" if a[0] is None else ("✓" if a[0] else "✗")) + ("" if a is None or a[1] is None else f" {a[1]:g}"))
        rows.append([st["number"], st["name"], st["score"], st["max"], st["correct"], *marks])
    rows.append([])
    rows.append(["题号", "题型", "题目", "作答", "答对", "难度P", "区分度D", "知识点"])
    for q in qs:
        rows.append([q["position"] + 1, q["type"], q["stem"], q["answered"], q["correct"], q["difficulty_p"], q["discrimination_d"],
                     "、".join(q["knowledge_points"])])
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        for r in rows:
            # A cell starting with = + - @ would be a formula in a spreadsheet: neutralise it.
            w.writerow([f"'{v}" if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v for v in r])
        return ("\ufeff" + buf.getvalue()).encode("utf-8"), "text/csv; charset=utf-8"
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(rep["title"][:31].replace("/", "-") or "report")
    for r in rows:
        ws.append([f"'{v}" if isinstance(v, str) and v[:1] == "=" else v for v in r])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def student_sessions(db: Database, student_id: int) -> list[dict[str, Any]]:
    """A student's own results: closed questions only (nothing about open ones leaks here)."""
    out = []
    for sid, title, started in db.execute(
            "SELECT DISTINCT s.id, s.title, s.started_at FROM quiz_sessions s JOIN quiz_answers a ON a.session_id = s.id"
            " WHERE a.student_id = ? ORDER BY s.id DESC LIMIT 100", (student_id,)).fetchall():
        closed = _closed_items(db, sid)
        rows = db.execute("SELECT item_id, correct, score FROM quiz_answers WHERE session_id = ? AND student_id = ?", (sid, student_id)).fetchall()
        done = [r for r in rows if r[0] in closed]
        out.append({"session_id": sid, "title": title, "started_at": started, "closed_questions": len(done),
                    "right": sum(1 for r in done if r[1] == 1), "score": sum(r[2] or 0 for r in done)})
    return out


def notebook(db: Database, student_id: int) -> list[dict[str, Any]]:
    """错题本: every closed question the student got wrong, newest first, with key and explanation,
    and whether a later attempt at the same question was right."""
    rows = db.execute("SELECT a.session_id, a.item_id, a.correct, a.response, a.received_at FROM quiz_answers a WHERE a.student_id = ?"
                      " AND a.correct IS NOT NULL ORDER BY a.received_at", (student_id,)).fetchall()
    closed_by_session: dict[int, set[int]] = {}
    latest_right: dict[int, float] = {}
    wrong: dict[int, dict[str, Any]] = {}
    for sid, item_id, correct, response, at in rows:
        if sid not in closed_by_session:
            closed_by_session[sid] = _closed_items(db, sid)
        if item_id not in closed_by_session[sid]:
            continue
        if correct:
            latest_right[item_id] = at
        else:
            entry = wrong.setdefault(item_id, {"item_id": item_id, "times_wrong": 0})
            entry["times_wrong"] += 1
            entry.update(session_id=sid, my_response=json.loads(response), at=at)
    items = bank.get_items(db, list(wrong))
    out = []
    for item_id, e in wrong.items():
        it = items[item_id]
        e.update(type=it.type, stem=it.stem, options=it.options, key=it.key, explanation=it.explanation,
                 knowledge_points=it.knowledge_points, mastered=latest_right.get(item_id, 0) > e["at"])
        out.append(e)
    out.sort(key=lambda e: -e["at"])
    return out
