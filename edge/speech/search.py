"""Full-text search over every transcript (Chinese, Korean, English alike).

Two FTS5 indexes over the normalised text (see ``text.search_form``):

- trigram (``speech_fts``): any substring of 3+ characters matches, which is what
  CJK needs (no spaces between words, or agglutinated Korean words);
- bigram (``speech_fts_bigram``, unicode61 over ``text.bigram_form``): terms of 1-2
  characters, such as the two-character Chinese word 分数, which trigrams cannot find.

A query's terms must all occur. Hits are ranked by bm25 among the newest matches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from edge.speech.text import is_cjk, search_form
from edge.storage.db import Database

MAX_QUERY_CHARS = 100
MAX_TERMS = 8
CANDIDATES = 200
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


def _phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _short_match(term: str) -> str:
    """The bigram-index query for a 1-2 character term."""
    if len(term) == 2 and is_cjk(term):
        return _phrase(term)      # exactly one bigram token
    return _phrase(term) + "*"    # a first character (or a short Latin prefix)


def search(db: Database, query: str, class_ids: list[int] | None, limit: int = 20) -> list[Hit]:
    """Hits for every term of ``query`` in the given classes (None: all), best first.

    Ranking is bm25 among the newest ``CANDIDATES`` matching segments: both indexes are
    read newest-first and stop there, so a term said in every lesson costs the same as
    a rare one (a hub's search is about recent lessons; older ones need more words).
    """
    terms = parse(query)
    if class_ids is not None and not class_ids:
        return []
    long_terms = [t for t in terms if len(t) >= 3]
    short_terms = [t for t in terms if len(t) < 3]
    if long_terms:
        table, match = "speech_fts", " ".join(_phrase(t) for t in long_terms)
        extra = ""
        args: list[object] = [match]
        if short_terms:
            extra = " AND rowid IN (SELECT rowid FROM speech_fts_bigram WHERE speech_fts_bigram MATCH ?)"
            args.append(" ".join(_short_match(t) for t in short_terms))
    else:
        table, extra = "speech_fts_bigram", ""
        args = [" ".join(_short_match(t) for t in short_terms)]
    candidates = db.execute(
        f"SELECT rowid, bm25({table}) FROM {table} WHERE {table} MATCH ?{extra} ORDER BY rowid DESC LIMIT {CANDIDATES}", args
    ).fetchall()
    if not candidates:
        return []
    rank = {int(r[0]): float(r[1]) for r in candidates}
    marks = ",".join("?" for _ in rank)
    where_class = ""
    class_args: list[int] = []
    if class_ids is not None:
        where_class = f" AND r.class_id IN ({','.join('?' for _ in class_ids)})"
        class_args = list(class_ids)
    rows = db.execute(
        "SELECT s.recording_id, r.title, r.class_id, s.id, s.start_s, s.end_s, c.title, s.knowledge_points, s.search_text "
        "FROM speech_segments s JOIN speech_recordings r ON r.id = s.recording_id "
        "LEFT JOIN speech_chapters c ON c.recording_id = s.recording_id AND c.idx = s.chapter_idx "
        f"WHERE s.id IN ({marks}){where_class}",
        [*rank, *class_args],
    ).fetchall()
    # The bigram index's tokenizer drops punctuation ("^分" would match 分): keep only
    # segments that really contain every term as typed.
    rows = [r for r in rows if all(t in r[8] for t in terms)]
    rows.sort(key=lambda r: (rank[r[3]], -r[3]))  # bm25: lower is better; ties newest first
    return [_hit(r, _mark(r[8], terms)) for r in rows[:limit]]


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
