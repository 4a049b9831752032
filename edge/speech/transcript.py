"""Transcripts: utterances stored as segments, chapters from page changes,
knowledge-point tags, and the event for the district."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from edge import outbox
from edge.speech.recognizer import Word
from edge.speech.text import bigram_form, display_text, search_form
from edge.storage.db import Database, transaction

MAX_SEGMENT_S = 15.0     # long utterances are cut at word gaps: a hit should land near its words
MAX_SEGMENT_WORDS = 40
PAGE_EVENT = "lesson.page"  # the lesson page push's live event type (issue 3), data {"page", "title"}


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    text: str
    search_text: str
    words: list[Word]


def split_utterance(words: list[Word]) -> list[Segment]:
    """One utterance as one or more segments of at most MAX_SEGMENT_S / MAX_SEGMENT_WORDS."""
    out: list[Segment] = []
    current: list[Word] = []
    for w in words:
        if current and (w.end - current[0].start > MAX_SEGMENT_S or len(current) >= MAX_SEGMENT_WORDS):
            out.append(_segment(current))
            current = []
        current.append(w)
    if current:
        out.append(_segment(current))
    return out


def _segment(words: list[Word]) -> Segment:
    text = display_text([w.word for w in words])
    return Segment(words[0].start, words[-1].end, text, search_form(text), words)


def add_segments(db: Database, recording_id: int, segments: list[Segment]) -> int:
    """Append segments (own transaction); returns the next index."""
    with transaction(db):
        row = db.execute("SELECT COALESCE(MAX(idx), -1) + 1 FROM speech_segments WHERE recording_id = ?", (recording_id,)).fetchone()
        idx = int(row[0])
        for seg in segments:
            db.conn.execute(
                "INSERT INTO speech_segments (recording_id, idx, start_s, end_s, text, search_text, bigrams, words) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    recording_id, idx, seg.start_s, seg.end_s, seg.text, seg.search_text, bigram_form(seg.search_text),
                    json.dumps([[w.word, w.start, w.end, w.conf] for w in seg.words], ensure_ascii=False, separators=(",", ":")),
                ),
            )
            idx += 1
    return idx


def clear(db: Database, recording_id: int) -> None:
    """Forget a previous attempt's transcript (a redone job starts from nothing)."""
    with transaction(db):
        db.conn.execute("DELETE FROM speech_segments WHERE recording_id = ?", (recording_id,))
        db.conn.execute("DELETE FROM speech_chapters WHERE recording_id = ?", (recording_id,))


# -- chapters ----------------------------------------------------------------------------


def record_page_change(db: Database, class_id: int, page: str, title: str = "", at: float | None = None) -> None:
    """The lesson page push calls this when the teacher shows a page (caller owns the transaction).

    Recordings of that class that cover ``at`` get a chapter starting there.
    Emitting a live event of type ``lesson.page`` with data ``{"page", "title"}`` on
    channel ``class:<id>`` has the same effect (read when the transcript is built).
    """
    db.conn.execute(
        "INSERT INTO speech_page_changes (class_id, at, page, title) VALUES (?, ?, ?, ?)",
        (class_id, time.time() if at is None else at, page[:200], title[:200]),
    )


def page_changes(db: Database, class_id: int, start: float, end: float) -> list[tuple[float, str, str]]:
    """Page changes of the class in [start, end], plus the page already showing at ``start``."""
    rows: list[tuple[float, str, str]] = []
    for at, page, title in db.execute(
        "SELECT at, page, title FROM speech_page_changes WHERE class_id = ? AND at <= ? ORDER BY at", (class_id, end)
    ).fetchall():
        rows.append((float(at), str(page), str(title)))
    for created_at, data in db.execute(
        "SELECT created_at, data FROM live_events WHERE channel = ? AND type = ? AND created_at <= ? ORDER BY id",
        (f"class:{class_id}", PAGE_EVENT, end),
    ).fetchall():
        # The lessons capability's page push: {"lesson_id", "lesson", "page": n, "at", ...}.
        try:
            payload = json.loads(data)
            page = str(payload["page"])[:200]
            at = float(payload.get("at", created_at))
            title = str(payload.get("title") or f"第 {page} 页")[:200]
        except (ValueError, KeyError, TypeError):
            continue
        if at <= end:
            rows.append((at, f"{payload.get('lesson_id', '')}#{page}" if payload.get("lesson_id") else page, title))
    rows.sort()
    before = [r for r in rows if r[0] < start]
    inside = [r for r in rows if r[0] >= start]
    return ([(start, *before[-1][1:])] if before else []) + inside


def build_chapters(changes: list[tuple[float, str, str]], started_at: float) -> list[tuple[float, str, str]]:
    """(start_s, page, title) chapters; consecutive changes to the same page are one chapter."""
    out: list[tuple[float, str, str]] = []
    for at, page, title in changes:
        if out and out[-1][1] == page:
            continue
        out.append((round(max(0.0, at - started_at), 3), page, title or page))
    return out


def tag_knowledge_points(search_text: str, points: list[dict[str, Any]]) -> list[str]:
    """Ids of the knowledge points one of whose keywords (or its name) occurs in the segment."""
    hits = []
    for kp in points:
        keys = [kp.get("name", ""), *kp.get("keywords", [])]
        if any(k and search_form(k) in search_text for k in keys):
            hits.append(str(kp["id"]))
    return hits


def finalize(db: Database, recording_id: int, duration_s: float, rtf: float, *, include_audio: bool = False) -> dict[str, Any]:
    """Chapters, tags, state 'done' and the district event, in one transaction."""
    now = time.time()
    with transaction(db):
        rec = db.execute(
            "SELECT uuid, class_id, title, started_at, knowledge_points, media_file, media_bytes FROM speech_recordings WHERE id = ?",
            (recording_id,),
        ).fetchone()
        uuid, class_id, title, started_at, kp_json, media_file, media_bytes = rec
        points = json.loads(kp_json or "[]")
        chapters = build_chapters(page_changes(db, class_id, started_at, started_at + duration_s), started_at)
        db.conn.execute("DELETE FROM speech_chapters WHERE recording_id = ?", (recording_id,))
        for i, (start_s, page, ch_title) in enumerate(chapters):
            db.conn.execute(
                "INSERT INTO speech_chapters (recording_id, idx, start_s, page, title) VALUES (?, ?, ?, ?, ?)",
                (recording_id, i, start_s, page, ch_title),
            )
        segments = db.execute(
            "SELECT id, idx, start_s, end_s, text, search_text, words FROM speech_segments WHERE recording_id = ? ORDER BY idx", (recording_id,)
        ).fetchall()
        starts = [c[0] for c in chapters]
        event_segments = []
        for seg_id, _idx, start_s, end_s, text, search_text, words in segments:
            chapter_idx = None
            for i, c_start in enumerate(starts):
                if c_start <= start_s + 1e-6:
                    chapter_idx = i
            tags = tag_knowledge_points(search_text, points)
            db.conn.execute(
                "UPDATE speech_segments SET chapter_idx = ?, knowledge_points = ? WHERE id = ?",
                (chapter_idx, json.dumps(tags, ensure_ascii=False), seg_id),
            )
            event_segments.append({"start": start_s, "end": end_s, "text": text, "words": json.loads(words), "chapter": chapter_idx, "knowledge_points": tags})
        db.conn.execute(
            "UPDATE speech_recordings SET state = 'done', duration_s = ? WHERE id = ?", (round(duration_s, 3), recording_id)
        )
        db.conn.execute(
            "UPDATE speech_jobs SET state = 'done', finished_at = ?, rtf = ?, error = NULL WHERE recording_id = ?", (now, rtf, recording_id)
        )
        payload: dict[str, Any] = {
            "recording": uuid,
            "class_id": class_id,
            "title": title,
            "started_at": started_at,
            "duration_s": round(duration_s, 3),
            "chapters": [{"start": s, "page": p, "title": t} for s, p, t in chapters],
            "segments": event_segments,
        }
        if include_audio and media_file:
            payload["audio"] = {"file": f"speech/{uuid}/{media_file}", "bytes": media_bytes}
        # One event per finished transcription; the district keeps the newest per recording uuid.
        outbox.append(db, "speech.transcript", payload, event_id=None)
    return payload
