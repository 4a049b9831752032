"""What the teacher and the student see: the class mastery map and one student's progress."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.learning import graph as graph_mod
from edge.learning.recommend import Policy
from edge.learning.service import mastery_table
from edge.storage.db import Database

AT_RISK_MIN_ANSWERS = 3  # fewer answers on a point say too little to worry anyone
HARDEST_MIN_ANSWERS = 3


def class_policy(db: Database, class_id: int) -> Policy:
    row = db.execute("SELECT band_low, band_high FROM learning_class_settings WHERE class_id = ?", (class_id,)).fetchone()
    if row is None:
        return Policy()
    return Policy(band_low=row[0], band_high=row[1], mastered=row[1])


def heatmap(db: Database, class_id: int) -> dict[str, Any]:
    """Mastery per (student, knowledge point); None where the student has not answered on it yet."""
    policy = class_policy(db, class_id)
    g = graph_mod.load(db)
    students = db.execute("SELECT id, name, number FROM students WHERE class_id = ? AND active ORDER BY number, id", (class_id,)).fetchall()
    order = [k for k in g.order if k in g.points]
    t = mastery_table(db, [s[0] for s in students], order)
    col = {k: j for j, k in enumerate(t.kp_ids)}
    idx = [col[k] for k in order]
    p = t.p[:, idx] if len(students) else np.zeros((0, len(idx)))
    ev = t.evidence[:, idx] if len(students) else np.zeros((0, len(idx)), dtype=np.int32)
    mastery = [[round(float(p[i, j]), 3) if ev[i, j] > 0 else None for j in range(len(idx))] for i in range(len(students))]
    at_risk = []
    for i, (sid, name, number) in enumerate(students):
        seen = ev[i] >= AT_RISK_MIN_ANSWERS
        weak = [order[j] for j in np.nonzero(seen & (p[i] < policy.band_low))[0]]
        if weak:
            at_risk.append({"student_id": sid, "name": name, "number": number, "weak": weak, "mean": round(float(p[i][seen].mean()), 3)})
    at_risk.sort(key=lambda r: (-len(r["weak"]), r["mean"]))
    hardest = db.execute(
        """SELECT item_id, SUM(attempts) AS n, SUM(wrong) AS w FROM learning_item_progress
           WHERE student_id IN (SELECT id FROM students WHERE class_id = ? AND active)
           GROUP BY item_id HAVING n >= ? ORDER BY CAST(w AS REAL) / n DESC, n DESC LIMIT 10""",
        (class_id, HARDEST_MIN_ANSWERS),
    ).fetchall()
    return {
        "knowledge_points": [{"id": k, "name": g.points[k].name, "prerequisites": list(g.points[k].prerequisites)} for k in order],
        "students": [{"id": s[0], "name": s[1], "number": s[2]} for s in students],
        "mastery": mastery,
        "at_risk": at_risk,
        "hardest_items": [{"item_id": r[0], "answers": r[1], "wrong_rate": round(r[2] / r[1], 3)} for r in hardest],
        "band": {"low": policy.band_low, "high": policy.band_high},
    }


def student_progress(db: Database, student_id: int, policy: Policy) -> dict[str, Any]:
    g = graph_mod.load(db)
    order = [k for k in g.order if k in g.points]
    t = mastery_table(db, [student_id], order)
    col = {k: j for j, k in enumerate(t.kp_ids)}
    points = []
    for k in order:
        j = col[k]
        n = int(t.evidence[0, j])
        p = float(t.p[0, j])
        points.append({"id": k, "name": g.points[k].name, "p": round(p, 3), "answers": n, "mastered": n > 0 and p >= policy.mastered})
    return {"knowledge_points": points, "mastered": sum(1 for x in points if x["mastered"]), "total": len(points)}
