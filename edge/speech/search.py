"""Full-text search over every transcript (Chinese, Korean, English alike).

The index is FTS5 with the trigram tokenizer over the normalised text (see
``text.search_form``): any substring of 3 or more characters matches, which is
what CJK needs (no spaces between words, or agglutinated Korean words). Hits are
ranked by bm25. Terms of 1-2 characters (a two-character Chinese word such as
分数) cannot use the trigram index; they are matched with LIKE over the same
normalised text, newest recordings first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from edge.speech.text import search_form
from edge.storage.db import Database

MAX_QUERY_CHARS = 100
MAX_TERMS = 8
_HIT_OPEN, _HIT_CLOSE = "\ue000", "\ue001"  # private-use marks, never in transcripts


class QueryError(ValueError):
    pass


@dataclass
class Hit:
    recording_id: int
    recording_title: str
    class_id: int
    segment_id: int
    start_s: float
    end_s: float
    chapter: str | None
    knowledge_points: list[str]
    snippet: list[dict[str, object]] = field(default_factory=list)  # [{"text": ..., "hit": bool}]


def parse(query: str) -> list[str]:
    q = search_form(query)
    if not q:
        raise QueryError("the search is empty")
    if len(q) > MAX_QUERY_CHARS:
        raise QueryError(f"a search may have at most {MAX_QUERY_CHARS} characters")
    terms = [t for t in q.split(" ") if t]
    if len(terms) > MAX_TERMS:
        raise QueryError(f"a search may have at most {MAX_TERMS} words")
    return terms


def search(db: Database, query: str, class_ids: list[int] | None, limit: int = 20) -> list[Hit]:
    """Hits for every term of ``query`` in the given classes (None: all), best first."""
    terms = parse(query)
    where_class, class_args = "", []
    if class_ids is not None:
        if not class_ids:
            return []
        where_class = f" AND r.class_id IN ({','.join('?' for _ in class_ids)})"
        class_args = list(class_ids)
    cols = (
        "s.recording_id, r.title, r.class_id, s.id, s.start_s, s.end_s, c.title, s.knowledge_points"
    )
    joins = (
        " JOIN speech_recordings r ON r.id = s.recording_id"
        " LEFT JOIN speech_chapters c ON c.recording_id = s.recording_id AND c.idx = s.chapter_idx"
    )
    if all(len(t) >= 3 for t in terms):
        match = " ".join('"' + t.replace('"', '""') + '"' for t in terms)
        rows = db.execute(
            f"SELECT {cols}, snippet(speech_fts, 0, '{_HIT_OPEN}', '{_HIT_CLOSE}', '…', 24) "
            f"FROM speech_fts JOIN speech_segments s ON s.id = speech_fts.rowid {joins} "
            f"WHERE speech_fts MATCH ?{where_class} ORDER BY speech_fts.rank LIMIT ?",
            [match, *class_args, limit],
        ).fetchall()
        return [_hit(r, r[8]) for r in rows]
    likes = " AND ".join("s.search_text LIKE ? ESCAPE '\\'" for _ in terms)
    args = ["%" + t.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for t in terms]
    rows = db.execute(
        f"SELECT {cols}, s.search_text FROM speech_segments s {joins} WHERE {likes}{where_class} "
        # Newest recordings first, walking the (recording_id, idx) index backwards, so a
        # common short term stops after `limit` rows instead of scanning every transcript.
        f"ORDER BY s.recording_id DESC, s.idx LIMIT ?",
        [*args, *class_args, limit],
    ).fetchall()
    return [_hit(r, _mark(r[8], terms)) for r in rows]


def _mark(text: str, terms: list[str], width: int = 24) -> str:
    first = min((i for i in (text.find(t) for t in terms) if i >= 0), default=0)
    start = max(0, first - width // 2)
    piece = text[start:start + width * 2]
    for t in terms:
        piece = piece.replace(t, _HIT_OPEN + t + _HIT_CLOSE)
    return ("…" if start else "") + piece + ("…" if start + width * 2 < len(text) else "")


def _hit(row: tuple, marked: str) -> Hit:
    parts: list[dict[str, object]] = []
    for i, chunk in enumerate(marked.replace(_HIT_CLOSE, _HIT_OPEN).split(_HIT_OPEN)):
        if chunk:
            parts.append({"text": chunk, "hit": i % 2 == 1})
    return Hit(row[0], row[1], row[2], row[3], row[4], row[5], row[6], json.loads(row[7] or "[]"), parts)
