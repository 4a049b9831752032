"""The seam to personalised learning (issue 8, ``edge.learning.service``).

Grading and item import call these inside their own transaction. The answer writer
hands over a whole group commit's graded answers in one call, which only queues them
(``edge.learning.pending``): their mastery update runs right after, in a transaction
of its own that the writer starts when no answer is waiting (``apply_pending_learning``),
so the answers' acknowledgement does not wait for it. A teacher's mark is applied at
once. Learning's opinion never decides a grade or an import: its call runs under a
SAVEPOINT, and if it refuses (an item it cannot use, say) that part is rolled back and
logged while the grade or the imported question stands. Capabilities do not read each
other's tables: these calls are the whole interface.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.storage.db import Database

log = logging.getLogger(__name__)


_fns: dict[str, Callable[..., Any] | None] = {}


def _fn(name: str, module: str = "edge.learning.service") -> Callable[..., Any] | None:
    # Looked up once per process: this runs for every graded answer.
    key = f"{module}:{name}"
    if key not in _fns:
        try:
            _fns[key] = getattr(importlib.import_module(module), name, None)
        except ModuleNotFoundError:
            _fns[key] = None
    return _fns[key]


def warm_up(db: Database | None = None) -> None:
    """Import personalised learning, and with ``db`` load its model, ahead of the first graded answer."""
    _fn("enqueue", "edge.learning.pending")
    fn = _fn("warm_up")
    if db is not None and fn is not None:
        try:
            fn(db)
        except Exception as exc:  # learning not ready must not stop the quiz's writer
            log.warning("learning warm-up failed", extra={"reason": str(exc)})


def _guarded(db: Database, what: str, call: Callable[[], Any]) -> None:
    db.conn.execute("SAVEPOINT quiz_learning")
    try:
        call()
    except Exception as exc:  # learning refusing must not undo a grade or an import
        db.conn.execute("ROLLBACK TO quiz_learning")
        log.warning("learning did not take this", extra={"what": what, "reason": str(exc)})
    finally:
        db.conn.execute("RELEASE quiz_learning")


def record_answer_for_learning(db: Database, student_id: int, item_uid: str, knowledge_points: list[str], correct: bool, at: float,
                               answer_id: str) -> None:
    """Tell personalised learning a graded answer (same transaction as the grade, applied at once).

    What the answer writer has queued is applied first, so learning hears this answer after
    every answer acknowledged before it.
    """
    if knowledge_points:
        _guarded(db, "apply_pending", lambda: _drain(db))
    _record(db, [GradedAnswer(student_id, item_uid, knowledge_points, correct, at, answer_id)], "record_answers")


def _drain(db: Database) -> None:
    fn = _fn("apply_pending", "edge.learning.pending")
    while fn is not None and fn(db, 256) == 256:
        pass


@dataclass(frozen=True)
class GradedAnswer:
    """What learning hears of a graded answer."""

    student_id: int
    item_uid: str
    knowledge_points: list[str]
    correct: bool
    at: float
    answer_id: str


def record_answers_for_learning(db: Database, answers: list[GradedAnswer]) -> bool:
    """Queue the graded answers of one group commit for learning (same transaction); True if any was queued.

    The writer then owes learning an :func:`apply_pending_learning`.
    """
    return _record(db, answers, "enqueue", "edge.learning.pending")


def _record(db: Database, answers: list[GradedAnswer], name: str, module: str = "edge.learning.service") -> bool:
    fn = _fn(name, module)
    tagged = [a for a in answers if a.knowledge_points]
    if fn is None or not tagged:
        return False
    make = _fn("Answer")
    assert make is not None
    batch = [make(a.student_id, a.item_uid, a.knowledge_points, a.correct, a.at, a.answer_id) for a in tagged]
    _guarded(db, name, lambda: fn(db, batch))
    return True


def learning_pending(db: Database) -> bool:
    """Whether any answer waits for its mastery update (a read, no write lock)."""
    fn = _fn("has_pending", "edge.learning.pending")
    return fn is not None and bool(fn(db))


def apply_pending_learning(db: Database, limit: int) -> int:
    """Turn the oldest ``limit`` queued answers into mastery; the caller owns the write transaction. Returns how many left the queue."""
    fn = _fn("apply_pending", "edge.learning.pending")
    return 0 if fn is None else int(fn(db, limit))


def plan_pending_learning(db: Database, limit: int) -> Any | None:
    """The oldest ``limit`` queued answers' mastery update worked out by reads alone (inside the
    caller's read transaction), for :func:`write_planned_learning`; None when none wait."""
    fn = _fn("plan_pending", "edge.learning.pending")
    return None if fn is None else fn(db, limit)


def write_planned_learning(db: Database, planned: Any) -> int | None:
    """Write a plan of :func:`plan_pending_learning` in the caller's write transaction; None (nothing
    written) if learning's tables changed since it was made: then :func:`apply_pending_learning`."""
    fn = _fn("write_planned", "edge.learning.pending")
    return None if fn is None else fn(db, planned)


def register_items_for_learning(db: Database, items: list[dict[str, Any]]) -> None:
    """Tell personalised learning about bank items ({uid, knowledge_points, difficulty 1-5, type}); untagged items are skipped."""
    fn = _fn("register_items")
    tagged = [i for i in items if i.get("knowledge_points")]
    if fn is not None and tagged:
        _guarded(db, "register_items", lambda: fn(db, tagged))
