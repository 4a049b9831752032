"""The question bank: items and quizzes in SQLite."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from edge.quiz.items import ItemSpec, validate_item
from edge.quiz.learning_hook import register_items_for_learning
from edge.storage.db import Database

_COLS = "id, uid, type, stem, options, answer_key, explanation, difficulty, knowledge_points, points, allow_photo, source"


@dataclass
class StoredItem:
    id: int
    uid: str
    type: str
    stem: str
    options: list[str]
    key: dict[str, Any]
    explanation: str
    difficulty: int | None
    knowledge_points: list[str]
    points: float
    allow_photo: bool
    source: str

    def staff_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "uid": self.uid, "type": self.type, "stem": self.stem, "options": self.options,
            "key": self.key, "explanation": self.explanation, "difficulty": self.difficulty,
            "knowledge_points": self.knowledge_points, "points": self.points, "allow_photo": self.allow_photo,
            "source": self.source,
        }


def _row(r: tuple[Any, ...]) -> StoredItem:
    return StoredItem(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), r[6], r[7], json.loads(r[8]), r[9], bool(r[10]), r[11])


def add_item(db: Database, spec: ItemSpec, source: str = "manual", user_id: int | None = None) -> tuple[int, bool]:
    """Store a validated item; the caller owns the transaction. Returns (id, created).

    The same content imported twice is stored once (``content_sha``), so importing a
    file again changes nothing.
    """
    spec = validate_item(spec)
    sha = spec.content_sha()
    row = db.conn.execute("SELECT id FROM quiz_items WHERE content_sha = ?", (sha,)).fetchone()
    if row:
        return int(row[0]), False
    item_uid = str(uuid.uuid4())
    cur = db.conn.execute(
        "INSERT INTO quiz_items (uid, type, stem, options, answer_key, explanation, difficulty, knowledge_points, points,"
        " allow_photo, source, content_sha, created_by, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (item_uid, spec.type, spec.stem, _j(spec.options), _j(spec.key), spec.explanation, spec.difficulty,
         _j(spec.knowledge_points), spec.points, int(spec.allow_photo), source[:200], sha, user_id, time.time()),
    )
    item_id = int(cur.lastrowid or 0)
    register_items_for_learning(db, [{"uid": item_uid, "knowledge_points": spec.knowledge_points,
                                      "difficulty": spec.difficulty, "type": spec.type}])
    return item_id, True


def get_item(db: Database, item_id: int) -> StoredItem | None:
    r = db.execute(f"SELECT {_COLS} FROM quiz_items WHERE id = ?", (item_id,)).fetchone()
    return _row(r) if r else None


def get_items(db: Database, ids: list[int]) -> dict[int, StoredItem]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    return {r[0]: _row(r) for r in db.execute(f"SELECT {_COLS} FROM quiz_items WHERE id IN ({marks})", ids)}


def list_items(db: Database, knowledge_point: str | None = None, limit: int = 500, offset: int = 0) -> list[StoredItem]:
    rows = db.execute(f"SELECT {_COLS} FROM quiz_items ORDER BY id LIMIT ? OFFSET ?", (limit, offset)).fetchall()
    items = [_row(r) for r in rows]
    if knowledge_point:
        items = [i for i in items if knowledge_point in i.knowledge_points]
    return items


def create_quiz(db: Database, title: str, item_ids: list[int], source: str = "manual", user_id: int | None = None) -> int:
    """A quiz is an ordered list of bank items; the caller owns the transaction."""
    cur = db.conn.execute("INSERT INTO quizzes (title, source, created_by, created_at) VALUES (?,?,?,?)",
                          (title.strip()[:200] or "练习", source[:200], user_id, time.time()))
    quiz_id = int(cur.lastrowid or 0)
    db.conn.executemany("INSERT INTO quiz_quiz_items (quiz_id, position, item_id) VALUES (?,?,?)",
                        [(quiz_id, pos, iid) for pos, iid in enumerate(item_ids)])
    return quiz_id


def quiz_item_ids(db: Database, quiz_id: int) -> list[int]:
    return [r[0] for r in db.execute("SELECT item_id FROM quiz_quiz_items WHERE quiz_id = ? ORDER BY position", (quiz_id,))]


def list_quizzes(db: Database) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT q.id, q.title, q.source, q.created_at, COUNT(qi.item_id) FROM quizzes q"
        " LEFT JOIN quiz_quiz_items qi ON qi.quiz_id = q.id GROUP BY q.id ORDER BY q.id DESC"
    ).fetchall()
    return [{"id": r[0], "title": r[1], "source": r[2], "created_at": r[3], "items": r[4]} for r in rows]


def _j(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))
