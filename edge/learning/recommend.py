"""Choosing each student's next exercises.

For every student, in this order:
1. wrong items whose re-practice is due (spacing grows 1, 3, 7, 16 days with each
   right answer), at most a third of the list;
2. the weakest knowledge points whose prerequisites the student is ready for
   (every prerequisite's mastery at least ``policy.ready``), weakest first, one
   item per point in turn, choosing the item whose predicted success is closest
   to the middle of the teacher's band (default 0.6-0.85) and whose tier fits
   the student's level on that point (基础 below the band, 提高 inside, 拓展 above);
3. when every reachable point is mastered: 拓展 items on the least-mastered points.
An item answered within ``policy.min_gap_s`` is not offered again unless it is a
due re-practice.

Predicted success of an item: the weakest of its knowledge points decides
(answering needs all of them), shifted by the item's difficulty:
``sigmoid(min_k logit(p_k) + DIFFICULTY_SCALE * (0.5 - difficulty))``.

Everything a class needs is read in a handful of queries and scored with numpy,
so a class of 55 costs milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.learning import graph as graph_mod
from edge.learning.service import mastery_table
from edge.storage.db import Database

DIFFICULTY_SCALE = 3.0
TIER_ORDER = ("basic", "advanced", "extension")


@dataclass(frozen=True)
class Policy:
    band_low: float = 0.6
    band_high: float = 0.85
    mastered: float = 0.85  # a point counts as mastered from here
    ready: float = 0.7  # prerequisites must be at least this before a point is offered
    min_gap_s: float = 86_400.0  # an item answered more recently is not offered again (unless due)
    max_review_share: float = 1 / 3


@dataclass(frozen=True)
class Pick:
    item_id: str
    knowledge_points: tuple[str, ...]
    tier: str
    predicted: float
    reason: str  # "review", "practice" or "stretch"


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


class Catalogue:
    """Items and the graph, read once per request and shared by every student of it."""

    def __init__(self, db: Database) -> None:
        self.graph = graph_mod.load(db)
        self.kp_ids = sorted(self.graph.points)
        col = {k: j for j, k in enumerate(self.kp_ids)}
        rows = db.execute("SELECT id, difficulty, tier FROM learning_items WHERE active ORDER BY id").fetchall()
        kps: dict[str, list[int]] = {}
        for item_id, kp in db.execute("SELECT item_id, kp_id FROM learning_item_kps"):
            if kp in col:
                kps.setdefault(item_id, []).append(col[kp])
        rows = [r for r in rows if r[0] in kps]
        self.item_ids = [r[0] for r in rows]
        self.item_index = {k: i for i, k in enumerate(self.item_ids)}
        self.difficulty = np.array([r[1] for r in rows], dtype=np.float32)
        self.tier = [r[2] for r in rows]
        width = max((len(v) for v in kps.values()), default=1)
        self.kp_matrix = np.zeros((len(rows), width), dtype=np.int64)
        self.kp_mask = np.zeros((len(rows), width), dtype=bool)
        for i, r in enumerate(rows):
            ks = kps[r[0]]
            self.kp_matrix[i, : len(ks)] = ks
            self.kp_mask[i, : len(ks)] = True
        # Items per knowledge point (an item is listed under each of its points).
        self.items_of: list[list[int]] = [[] for _ in self.kp_ids]
        for i in range(len(rows)):
            for j in self.kp_matrix[i, self.kp_mask[i]]:
                self.items_of[int(j)].append(i)
        prereq_cols = [[col[r] for r in self.graph.points[k].prerequisites if r in col] for k in self.kp_ids]
        pw = max((len(x) for x in prereq_cols), default=1) or 1
        self.prereq_matrix = np.zeros((len(self.kp_ids), pw), dtype=np.int64)
        self.prereq_mask = np.zeros((len(self.kp_ids), pw), dtype=bool)
        for j, pre in enumerate(prereq_cols):
            self.prereq_matrix[j, : len(pre)] = pre
            self.prereq_mask[j, : len(pre)] = True
        self.items_of_arr = [np.asarray(v, dtype=np.int64) for v in self.items_of]
        self.item_kps = [tuple(self.kp_ids[j] for j in self.kp_matrix[i, self.kp_mask[i]]) for i in range(len(rows))]
        self.tier_rank = np.array([TIER_ORDER.index(t) for t in self.tier], dtype=np.float32)
        depth: dict[str, int] = {}
        for k in self.graph.order:
            depth[k] = 1 + max((depth[r] for r in self.graph.points[k].prerequisites), default=-1)
        self.depth = np.array([depth.get(k, 0) for k in self.kp_ids], dtype=np.int64)

    def predicted(self, p_kp: np.ndarray) -> np.ndarray:
        """Predicted success of every item: [items] for one mastery vector, [students, items] for many."""
        lg = _logit(p_kp)[..., self.kp_matrix]
        lg = np.where(self.kp_mask, lg, np.inf).min(axis=-1)
        return 1.0 / (1.0 + np.exp(-(lg + DIFFICULTY_SCALE * (0.5 - self.difficulty))))


def _progress(db: Database, student_ids: Sequence[int], recent_since: float) -> dict[int, dict[str, tuple[float, float | None]]]:
    """Per student, the items that matter now: answered recently or waiting for re-practice."""
    marks = ",".join("?" * len(student_ids))
    out: dict[int, dict[str, tuple[float, float | None]]] = {s: {} for s in student_ids}
    for sid, item, last_at, due in db.execute(
        f"""SELECT student_id, item_id, last_at, due_at FROM learning_item_progress
            WHERE student_id IN ({marks}) AND (due_at IS NOT NULL OR last_at > ?)""",
        (*student_ids, recent_since),
    ):
        out[sid][item] = (last_at, due)
    return out


def recommend(db: Database, student_ids: Sequence[int], n: int, policy: Policy | None = None, now: float | None = None) -> dict[int, list[Pick]]:
    """The next ``n`` exercises for each student."""
    policy = policy or Policy()
    now = time.time() if now is None else now
    cat = Catalogue(db)
    if not student_ids or not cat.item_ids:
        return {s: [] for s in student_ids}
    table = mastery_table(db, student_ids, cat.kp_ids)
    progress = _progress(db, student_ids, now - policy.min_gap_s)
    preds = cat.predicted(table.p)
    out: dict[int, list[Pick]] = {}
    for row, sid in enumerate(student_ids):
        out[sid] = _for_student(cat, table.p[row], preds[row], progress[sid], n, policy, now)
    return out


def _tier_for(p: float, policy: Policy) -> str:
    if p < policy.band_low:
        return "basic"
    if p < policy.mastered:
        return "advanced"
    return "extension"


def _for_student(
    cat: Catalogue, p_kp: np.ndarray, pred: np.ndarray, progress: dict[str, tuple[float, float | None]], n: int, policy: Policy, now: float
) -> list[Pick]:
    picks: list[Pick] = []
    blocked = np.zeros(len(cat.item_ids), dtype=bool)  # taken, or answered too recently

    def add(i: int, reason: str) -> None:
        blocked[i] = True
        picks.append(Pick(cat.item_ids[i], cat.item_kps[i], cat.tier[i], round(float(pred[i]), 4), reason))

    # 1. due re-practice of wrong items, the most overdue first.
    due = sorted((d, item) for item, (_last, d) in progress.items() if d is not None and d <= now and item in cat.item_index)
    for _, item in due[: max(1, int(n * policy.max_review_share)) if n > 1 else 1]:
        add(cat.item_index[item], "review")
    if len(picks) >= n:
        return picks[:n]
    for item, (last, _d) in progress.items():
        if now - last < policy.min_gap_s and item in cat.item_index:
            blocked[cat.item_index[item]] = True

    mastered = p_kp >= policy.mastered
    ready = np.where(cat.prereq_mask, p_kp[cat.prereq_matrix] >= policy.ready, True).all(axis=1)
    # 2. weakest reachable points first; shallower points break ties (prerequisites first).
    frontier = [int(j) for j in np.lexsort((cat.depth, p_kp)) if ready[j] and not mastered[j]]
    reason = "practice"
    if not frontier:
        # 3. nothing left to reach: stretch on the least-mastered points.
        frontier = [int(j) for j in np.argsort(p_kp) if ready[j]]
        reason = "stretch"
    blocked |= ~np.where(cat.kp_mask, ready[cat.kp_matrix], True).all(axis=1)  # an item needs all its points reachable
    center = (policy.band_low + policy.band_high) / 2
    # Distance from the band's middle; 1 more outside the band, so outside is chosen only when nothing inside is left.
    base = np.abs(pred - center) + np.where((pred >= policy.band_low) & (pred <= policy.band_high), 0.0, 1.0)
    while len(picks) < n:
        added = False
        for j in frontier:
            if len(picks) >= n:
                break
            cand = cat.items_of_arr[j]
            cand = cand[~blocked[cand]]
            if not len(cand):
                continue
            want = 2 if reason == "stretch" else TIER_ORDER.index(_tier_for(float(p_kp[j]), policy))
            score = base[cand] + 0.05 * np.abs(cat.tier_rank[cand] - want)
            add(int(cand[int(np.argmin(score))]), reason)
            added = True
        if not added:
            break
    return picks
