"""The seam to personalised learning (issue 8, ``edge/learning``).

Grading and item import call these two functions inside their own transaction.
When ``edge.learning.service`` provides ``record_answer`` / ``register_items`` they
are called; until then they do nothing. Capabilities do not read each other's
tables: this is the whole interface.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from edge.storage.db import Database

log = logging.getLogger(__name__)


def _learning() -> Any | None:
    try:
        return importlib.import_module("edge.learning.service")
    except ModuleNotFoundError:
        return None


def record_answer_for_learning(db: Database, student_id: int, item_uid: str, knowledge_points: list[str], correct: bool, at: float) -> None:
    """Tell personalised learning a graded answer (same transaction as the grade)."""
    svc = _learning()
    fn = getattr(svc, "record_answer", None) if svc else None
    if fn is not None and knowledge_points:
        fn(db, student_id, item_uid, knowledge_points, correct, at)


def register_items_for_learning(db: Database, items: list[dict[str, Any]]) -> None:
    """Tell personalised learning about imported items ({uid, knowledge_points, difficulty, type})."""
    svc = _learning()
    fn = getattr(svc, "register_items", None) if svc else None
    if fn is not None and items:
        fn(db, items)
