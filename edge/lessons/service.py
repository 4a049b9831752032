"""Lesson queries and changes used by the API, the CLI and other capabilities."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.lessons.manifest import Manifest, media_kind, parse_manifest
from edge.lessons.store import blob_path
from edge.storage.db import Database, transaction

ONLINE_WINDOW_S = 45.0
PAGE_EVENT = "lesson.page"


def content_url(sha256: str) -> str:
    return f"/api/v1/content/sha256/{sha256}"


def list_lessons(db: Database) -> list[dict[str, Any]]:
    """Newest version of every lesson, plus older versions a schedule still names."""
    rows = db.execute(
        """
        SELECT id, lesson_id, version, title, subject, grade, chapter, total_bytes, installed_at FROM lessons l
        WHERE version = (SELECT MAX(version) FROM lessons m WHERE m.lesson_id = l.lesson_id)
           OR id IN (SELECT lesson FROM lesson_schedule)
        ORDER BY subject, grade, title, version DESC
        """
    ).fetchall()
    out = []
    for r in rows:
        pages = db.execute("SELECT json_array_length(json_extract(CAST(manifest AS TEXT), '$.pages')) FROM lessons WHERE id = ?", (r[0],)).fetchone()[0]
        out.append({"id": r[0], "lesson_id": r[1], "version": r[2], "title": r[3], "subject": r[4], "grade": r[5], "chapter": r[6],
                    "total_bytes": r[7], "installed_at": r[8], "pages": pages})
    return out


def load_manifest(db: Database, lesson: int) -> Manifest | None:
    row = db.execute("SELECT manifest FROM lessons WHERE id = ?", (lesson,)).fetchone()
    return parse_manifest(bytes(row[0])) if row else None


def lesson_detail(db: Database, lesson: int) -> dict[str, Any] | None:
    row = db.execute("SELECT id, lesson_id, version, installed_at FROM lessons WHERE id = ?", (lesson,)).fetchone()
    manifest = load_manifest(db, lesson)
    if row is None or manifest is None:
        return None
    files = {f.path: f for f in manifest.files}
    pages = []
    for i, page in enumerate(manifest.pages, start=1):
        f = files[page.file]
        pages.append({"number": i, "title": page.title, "file": f.path, "media_type": f.media_type, "kind": media_kind(f.media_type),
                      "url": content_url(f.sha256), "sha256": f.sha256, "size": f.size})
    return {
        "id": row[0], "lesson_id": row[1], "version": row[2], "installed_at": row[3],
        "title": manifest.title, "subject": manifest.subject, "grade": manifest.grade, "chapter": manifest.chapter,
        "knowledge_points": manifest.knowledge_points, "pages": pages,
        "files": [{"path": f.path, "sha256": f.sha256, "size": f.size, "media_type": f.media_type, "url": content_url(f.sha256)} for f in manifest.files],
        "quizzes": [q.model_dump() for q in manifest.quizzes],
    }


def blob_media_type(db: Database, sha256: str) -> str | None:
    row = db.execute("SELECT media_type FROM lesson_files WHERE sha256 = ? LIMIT 1", (sha256,)).fetchone()
    return row[0] if row else None


def lesson_file(db: Database, lesson: int, path: str) -> tuple[str, str] | None:
    row = db.execute("SELECT sha256, media_type FROM lesson_files WHERE lesson = ? AND path = ?", (lesson, path)).fetchone()
    return (row[0], row[1]) if row else None


@dataclass(frozen=True)
class QuizFile:
    quiz_id: str
    path: str | None
    file: Path | None


def lesson_quiz_files(data_dir: Path, db: Database, lesson: int) -> list[QuizFile]:
    """For the quiz capability: the quizzes a lesson lists, with the stored file of
    each (read-only, verified at import). Lessons treat them as opaque."""
    manifest = load_manifest(db, lesson)
    if manifest is None:
        return []
    out = []
    for q in manifest.quizzes:
        path = blob_path(data_dir, manifest.file(q.file).sha256) if q.file else None
        out.append(QuizFile(q.id, q.file, path))
    return out


# -- schedule and prefetch ---------------------------------------------------------------


def set_period(db: Database, class_id: int, day: str, period: int, lesson: int | None, user_id: int | None) -> None:
    with transaction(db):
        if lesson is None:
            db.conn.execute("DELETE FROM lesson_schedule WHERE class_id = ? AND day = ? AND period = ?", (class_id, day, period))
        else:
            db.conn.execute(
                "INSERT INTO lesson_schedule (class_id, day, period, lesson, set_by, set_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (class_id, day, period) DO UPDATE SET lesson = excluded.lesson, set_by = excluded.set_by, set_at = excluded.set_at",
                (class_id, day, period, lesson, user_id, time.time()),
            )


def schedule(db: Database, class_id: int, day: str) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT s.period, l.id, l.lesson_id, l.version, l.title, l.subject FROM lesson_schedule s JOIN lessons l ON l.id = s.lesson "
        "WHERE s.class_id = ? AND s.day = ? ORDER BY s.period",
        (class_id, day),
    ).fetchall()
    return [{"period": r[0], "lesson": r[1], "lesson_id": r[2], "version": r[3], "title": r[4], "subject": r[5]} for r in rows]


def prefetch(db: Database, class_id: int, day: str) -> dict[str, Any]:
    """Every file of the day's lessons (and of the lesson on screen now), each once."""
    lessons = [s["lesson"] for s in schedule(db, class_id, day)]
    current = db.execute("SELECT lesson FROM lesson_current_page WHERE class_id = ?", (class_id,)).fetchone()
    if current and current[0] not in lessons:
        lessons.append(current[0])
    seen: dict[str, dict[str, Any]] = {}
    for lesson in lessons:
        for sha, size, mt in db.execute("SELECT sha256, size, media_type FROM lesson_files WHERE lesson = ?", (lesson,)):
            seen.setdefault(sha, {"url": content_url(sha), "sha256": sha, "size": size, "media_type": mt})
    files = list(seen.values())
    return {"day": day, "lessons": lessons, "files": files, "total_bytes": sum(f["size"] for f in files)}


# -- the page the class follows ------------------------------------------------------------


def push_page(db: Database, bus: Any, class_id: int, lesson: int, page: int, user_id: int | None) -> dict[str, Any]:
    """Store the class's current page and emit ``lesson.page`` on ``class:<id>`` in one transaction."""
    row = db.execute("SELECT lesson_id, version FROM lessons WHERE id = ?", (lesson,)).fetchone()
    now = time.time()
    data = {"lesson_id": row[0], "lesson": lesson, "version": row[1], "page": page, "at": now}
    with transaction(db):
        db.conn.execute(
            "INSERT INTO lesson_current_page (class_id, lesson, page, at, set_by) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (class_id) DO UPDATE SET lesson = excluded.lesson, page = excluded.page, at = excluded.at, set_by = excluded.set_by",
            (class_id, lesson, page, now, user_id),
        )
        bus.emit(db, f"class:{class_id}", PAGE_EVENT, data)
    bus.wake()
    return data


def current_page(db: Database, class_id: int) -> dict[str, Any] | None:
    row = db.execute(
        "SELECT c.lesson, l.lesson_id, l.version, c.page, c.at FROM lesson_current_page c JOIN lessons l ON l.id = c.lesson WHERE c.class_id = ?",
        (class_id,),
    ).fetchone()
    return {"lesson": row[0], "lesson_id": row[1], "version": row[2], "page": row[3], "at": row[4]} if row else None


def mark_present(db: Database, student_id: int, class_id: int) -> None:
    db.conn.execute(
        "INSERT INTO lesson_presence (student_id, class_id, seen_at) VALUES (?, ?, ?) "
        "ON CONFLICT (student_id) DO UPDATE SET class_id = excluded.class_id, seen_at = excluded.seen_at",
        (student_id, class_id, time.time()),
    )


def online(db: Database, class_id: int) -> list[dict[str, Any]]:
    cutoff = time.time() - ONLINE_WINDOW_S
    rows = db.execute(
        "SELECT s.id, s.number, s.name, p.seen_at FROM students s LEFT JOIN lesson_presence p ON p.student_id = s.id "
        "WHERE s.class_id = ? AND s.active ORDER BY s.number",
        (class_id,),
    ).fetchall()
    return [{"student_id": r[0], "number": r[1], "name": r[2], "online": bool(r[3] and r[3] >= cutoff), "seen_at": r[3]} for r in rows]


def manifest_json(db: Database, lesson: int) -> dict[str, Any] | None:
    row = db.execute("SELECT manifest FROM lessons WHERE id = ?", (lesson,)).fetchone()
    return json.loads(bytes(row[0])) if row else None
