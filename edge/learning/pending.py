"""Mastery updates just after the answers' commit instead of inside it.

The quiz's answer writer holds the database's write lock while it commits a batch of
answers, and every answer it holds the lock for is an answer some tablet is waiting
on. Stepping the network and writing five tables of learning state is about half of
that work, yet no tablet waits for it. So the answer's commit only appends the graded
answer to ``learning_pending`` (one row, same transaction: it cannot be lost or
counted twice), and :func:`apply_pending` turns the queue into mastery in a
transaction of its own, run by the writer as soon as no answer is waiting, and at the
latest ``max lag`` later under a continuous stream of answers.

Readers of mastery call :func:`catch_up` first, so what a teacher or student sees
includes every answer acknowledged before the read (read-your-writes), whatever the
writer is doing. The rows an apply deletes are exactly the rows it applied, in the
same transaction, so a crash between the answer's commit and its mastery update
only delays the update to the next apply (after a restart: the writer's first idle
moment, or the first read).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import Counter, Histogram

from edge.learning.service import Answer, AnswersPlan, plan_answers, record_answers
from edge.storage.db import Database, transaction
from edge.storage.write_lock import held

log = logging.getLogger(__name__)

APPLIED = Counter("hub_learning_pending_applied_total", "Graded answers turned into mastery after their commit")
REFUSED = Counter("hub_learning_pending_refused_total", "Pending answers learning refused (logged and dropped)")
STALE = Counter("hub_learning_pending_stale_plans_total", "Updates worked out off the write lock that another change overtook (done again under it)")
LAG = Histogram(
    "hub_learning_lag_seconds", "From an answer's commit to its mastery update",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0),
)

#: Answers per apply transaction: small enough that an answer arriving meanwhile waits a few ms.
CHUNK = 32


def enqueue(db: Database, answers: Sequence[Answer]) -> None:
    """Queue graded answers for their mastery update; the caller owns the transaction (the answers' own)."""
    if not answers:
        return
    now = time.time()
    db.conn.executemany(
        "INSERT INTO learning_pending (student_id, item_id, kps, correct, at, answer_id, queued_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(a.student_id, a.item_id, None if a.knowledge_points is None else orjson.dumps(list(a.knowledge_points)).decode(),
          int(a.correct), a.at, a.answer_id, now) for a in answers],
    )


def has_pending(db: Database) -> bool:
    return db.conn.execute("SELECT 1 FROM learning_pending LIMIT 1").fetchone() is not None


def backlog(db: Database) -> tuple[int, float | None]:
    """How many answers wait for their mastery update, and when the oldest was queued (wall clock)."""
    count, oldest = db.conn.execute("SELECT COUNT(*), MIN(queued_at) FROM learning_pending").fetchone()
    return int(count), oldest


def apply_pending(db: Database, limit: int | None = None) -> int:
    """Apply the oldest ``limit`` (default :data:`CHUNK`) queued answers, in order; the caller owns the (write) transaction.

    Returns how many rows left the queue. An answer learning refuses (an item it does not
    know, a student since removed) is logged and dropped, never retried forever.
    """
    rows = _oldest(db, limit)
    if not rows:
        return 0
    answers = _answers(rows)
    conn = db.conn
    conn.execute("SAVEPOINT learning_pending")
    try:
        record_answers(db, answers)
    except Exception:
        # Something unforeseen in one of them: undo, then one at a time, so only that one is dropped.
        conn.execute("ROLLBACK TO learning_pending")
        log.exception("pending answers could not be applied together; applying them one by one", extra={"answers": len(answers)})
        for a in answers:
            conn.execute("SAVEPOINT learning_one")
            try:
                record_answers(db, [a])
            except Exception as exc:
                conn.execute("ROLLBACK TO learning_one")
                REFUSED.inc()
                log.error("pending answer dropped", extra={"answer_id": a.answer_id, "student_id": a.student_id, "reason": str(exc)})
            conn.execute("RELEASE learning_one")
    conn.execute("RELEASE learning_pending")
    conn.execute("DELETE FROM learning_pending WHERE id <= ?", (rows[-1][0],))
    _applied([r[7] for r in rows])
    return len(rows)


@dataclass
class PendingPlan:
    """The mastery update of the oldest queued answers, worked out by reads (:func:`plan_pending`)."""

    generation: int  # learning_generation.n when it was read
    last_id: int  # the newest learning_pending row it covers
    queued_at: list[float]
    plan: AnswersPlan


def generation(db: Database) -> int:
    """Where the counter of changes to what a mastery update reads stands (migration 0003)."""
    return int(db.execute("SELECT n FROM learning_generation WHERE id = 1").fetchone()[0])


def plan_pending(db: Database, limit: int | None = None) -> PendingPlan | None:
    """Work out the oldest ``limit`` queued answers' update without writing; None when none wait.

    Call it inside one read transaction (``BEGIN`` … ``COMMIT``), so everything is read from
    one snapshot; no write lock is needed. :func:`write_planned` writes it later, under the
    write lock, if nothing it read has changed. The hub's answer writer does this so that
    the write lock is held for the writes alone: stepping the network, BKT and the
    re-practice schedule were most of an update's time under the lock, and every answer
    commit of every worker waits for that lock.
    """
    gen = generation(db)
    rows = _oldest(db, limit)
    if not rows:
        return None
    return PendingPlan(gen, rows[-1][0], [r[7] for r in rows], plan_answers(db, _answers(rows)))


def write_planned(db: Database, planned: PendingPlan) -> int | None:
    """Write a plan from an earlier transaction; the caller owns the write transaction.

    Returns how many queued answers it applied, or None, writing nothing, if a learning
    table changed since the plan read them (another worker's update, a teacher's mark, a
    new item or model): the caller then applies the queue as :func:`apply_pending` does.
    """
    if generation(db) != planned.generation:
        STALE.inc()
        return None
    planned.plan.write()
    db.conn.execute("DELETE FROM learning_pending WHERE id <= ?", (planned.last_id,))
    _applied(planned.queued_at)
    return len(planned.queued_at)


def _oldest(db: Database, limit: int | None) -> list[Any]:
    return db.conn.execute(
        "SELECT id, student_id, item_id, kps, correct, at, answer_id, queued_at FROM learning_pending ORDER BY id LIMIT ?", (limit or CHUNK,)
    ).fetchall()


def _answers(rows: list[Any]) -> list[Answer]:
    return [Answer(r[1], r[2], None if r[3] is None else orjson.loads(r[3]), bool(r[4]), r[5], r[6]) for r in rows]


def _applied(queued_at: list[float]) -> None:
    now = time.time()
    for q in queued_at:
        LAG.observe(max(0.0, now - q))
    APPLIED.inc(len(queued_at))


def catch_up(db: Database, lock: Path | None = None) -> int:
    """Apply everything queued, in transactions of :data:`CHUNK` answers; returns how many.

    For readers of mastery (a cheap check when nothing is queued). ``lock`` is the hub's
    write lock (``edge.storage.write_lock``), taken per transaction so answers interleave.
    """
    if not has_pending(db):  # the usual case: no write transaction at all
        return 0
    total = 0
    while True:
        with held(lock) if lock is not None else nullcontext(), transaction(db):
            n = apply_pending(db)
        total += n
        if n < CHUNK:  # a short chunk emptied the queue
            return total
