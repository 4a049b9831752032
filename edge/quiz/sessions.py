"""Live quiz sessions: start, close, answer, mark.

Everything a tablet may learn about an item before it closes comes from
:func:`edge.quiz.items.public_view`; keys and explanations leave the hub for a
student only through :func:`edge.quiz.views.student_results`, and only for
closed items.

Answer times: a tablet sends ``answered_at`` and ``sent_at`` on its own clock;
the hub estimates when the answer was made on *its* clock as
``received_at - (sent_at - answered_at)``, so a tablet whose clock is wrong is
judged fairly, and an answer kept offline is accepted after the close when it
was made before the close and arrives within the session's grace window.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from edge import outbox
from edge.jsonio import compact
from edge.quiz import bank, xapi
from edge.quiz.answer_store import AnswerBatch, Submission
from edge.quiz.items import Grade, ItemError, grade, n_blanks, validate_response
from edge.quiz.learning_hook import GradedAnswer, record_answer_for_learning
from edge.storage.db import Database, transaction

log = logging.getLogger(__name__)

# An answer may not claim to be older than its item by more than this (tablet clock noise).
_OPEN_SKEW_S = 5.0


class QuizError(Exception):
    def __init__(self, status: int, slug: str, message: str) -> None:
        super().__init__(message)
        self.status, self.slug = status, slug


@dataclass(frozen=True)
class HubFacts:
    """What grading needs from the running hub."""

    hub_id: str
    timezone: str


# -- channels and event types (spelled once) ----------------------------------------------

def class_channel(class_id: int) -> str:
    return f"class:{class_id}"


def staff_channel(class_id: int) -> str:
    return f"staff:{class_id}"


EV_STARTED, EV_CLOSED, EV_ANSWER, EV_MARKED = "quiz.started", "quiz.closed", "quiz.answer", "quiz.marked"


# -- sessions ---------------------------------------------------------------------------------


def start_session(db: Database, bus: Any, *, class_id: int, user_id: int | None, kind: str, item_ids: list[int],
                  quiz_id: int | None, title: str, allow_change: bool, grace_s: float, time_limit_s: float | None) -> int:
    """Open a session of ``item_ids`` for the class and push it to the tablets. Caller calls ``bus.wake()`` after."""
    if not item_ids:
        raise QuizError(422, "empty-quiz", "a session needs at least one question")
    if len(set(item_ids)) != len(item_ids):
        raise QuizError(422, "duplicate-question", "a question appears twice in the session")
    items = bank.get_items(db, item_ids)
    missing = [i for i in item_ids if i not in items]
    if missing:
        raise QuizError(404, "no-such-question", f"question {missing[0]} is not in the bank")
    now = time.time()
    closes_at = now + time_limit_s if time_limit_s else None
    with transaction(db):
        cur = db.conn.execute(
            "INSERT INTO quiz_sessions (uuid, class_id, quiz_id, title, kind, allow_change, grace_s, time_limit_s, started_by, started_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?)",
            (str(uuid.uuid4()), class_id, quiz_id, title[:200], kind, int(allow_change), grace_s, time_limit_s, user_id, now),
        )
        sid = int(cur.lastrowid or 0)
        db.conn.executemany(
            "INSERT INTO quiz_session_items (session_id, item_id, position, opened_at, closes_at) VALUES (?,?,?,?,?)",
            [(sid, iid, pos, now, closes_at) for pos, iid in enumerate(item_ids)],
        )
        bus.emit(db, class_channel(class_id), EV_STARTED, {"session_id": sid, "kind": kind, "title": title[:200], "closes_at": closes_at})
    log.info("quiz session started", extra={"session_id": sid, "class_id": class_id, "kind": kind, "items": len(item_ids)})
    return sid


def session_row(db: Database, session_id: int) -> dict[str, Any] | None:
    r = db.execute("SELECT id, uuid, class_id, quiz_id, title, kind, allow_change, grace_s, time_limit_s, started_at, closed_at"
                   " FROM quiz_sessions WHERE id = ?", (session_id,)).fetchone()
    if r is None:
        return None
    keys = ("id", "uuid", "class_id", "quiz_id", "title", "kind", "allow_change", "grace_s", "time_limit_s", "started_at", "closed_at")
    return dict(zip(keys, r, strict=True))


def close(db: Database, bus: Any, session_id: int, item_id: int | None = None) -> list[int]:
    """Close one item of a session, or the whole session. Returns the items closed now."""
    s = session_row(db, session_id)
    if s is None:
        raise QuizError(404, "no-such-session", "no such quiz session")
    now = time.time()
    with transaction(db):
        if item_id is None:
            rows = db.conn.execute("SELECT item_id FROM quiz_session_items WHERE session_id = ? AND closed_at IS NULL", (session_id,)).fetchall()
            db.conn.execute("UPDATE quiz_session_items SET closed_at = ? WHERE session_id = ? AND closed_at IS NULL", (now, session_id))
            db.conn.execute("UPDATE quiz_sessions SET closed_at = ? WHERE id = ? AND closed_at IS NULL", (now, session_id))
        else:
            rows = db.conn.execute("SELECT item_id FROM quiz_session_items WHERE session_id = ? AND item_id = ? AND closed_at IS NULL",
                                   (session_id, item_id)).fetchall()
            if not db.conn.execute("SELECT 1 FROM quiz_session_items WHERE session_id = ? AND item_id = ?", (session_id, item_id)).fetchone():
                raise QuizError(404, "no-such-question", "that question is not in this session")
            db.conn.execute("UPDATE quiz_session_items SET closed_at = ? WHERE session_id = ? AND item_id = ? AND closed_at IS NULL",
                            (now, session_id, item_id))
            if not db.conn.execute("SELECT 1 FROM quiz_session_items WHERE session_id = ? AND closed_at IS NULL", (session_id,)).fetchone():
                db.conn.execute("UPDATE quiz_sessions SET closed_at = ? WHERE id = ? AND closed_at IS NULL", (now, session_id))
        closed = [r[0] for r in rows]
        if closed:
            # No key in the event: a tablet fetches its own results, which records that it has seen them.
            bus.emit(db, class_channel(s["class_id"]), EV_CLOSED, {"session_id": session_id, "item_ids": closed})
    return closed


def effective_close(item_closed_at: float | None, session_closed_at: float | None, closes_at: float | None) -> float | None:
    times = [t for t in (item_closed_at, session_closed_at, closes_at) if t is not None]
    return min(times) if times else None


# -- answers ----------------------------------------------------------------------------------


@dataclass
class AnswerIn:
    client_id: str
    session_id: int
    item_id: int
    student_id: int
    response: dict[str, Any]
    final: bool
    answered_at: float
    sent_at: float | None


def _request_sha(a: AnswerIn) -> str:
    """A digest of what the answer *is* (sent_at changes with every resend; it is not part of it)."""
    content = [a.session_id, a.item_id, a.student_id, a.response, a.final, a.answered_at]
    try:
        return "2:" + hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
    except TypeError:  # what orjson cannot write (an integer beyond 64 bits) keeps the first form
        return _request_sha_v1(content)


def _request_sha_v1(content: list[Any]) -> str:
    # The first form, still stored for answers acknowledged before the "2:" form existed.
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _same_request(stored_sha: str, a: AnswerIn, sha: str) -> bool:
    if stored_sha.startswith("2:") or sha[:2] != "2:":
        return stored_sha == sha
    return stored_sha == _request_sha_v1([a.session_id, a.item_id, a.student_id, a.response, a.final, a.answered_at])


def _ack(client_id: str, session_id: int, item_id: int, outcome: str, received_at: float) -> dict[str, Any]:
    return {"client_id": client_id, "session_id": session_id, "item_id": item_id, "status": outcome, "received_at": received_at}


class Lookups:
    """Reads of the answer path that need not be repeated for every answer.

    Items, sessions' UUIDs and pseudonymous ids never change once written (the bank stores
    new content as new items; a student's pseudonym is fixed), so they are kept for the life
    of the process (dict reads and writes are atomic: request threads share them). A session's question row and its answered count are kept only for one group
    commit: the writer holds the database write lock for the whole batch, so nothing
    (a close, another worker's answers) can change them in between. :meth:`new_batch`
    starts the next batch.
    """

    def __init__(self) -> None:
        self.items: dict[int, bank.StoredItem] = {}
        self.pseudo: dict[int, str] = {}
        self.registrations: dict[int, str] = {}
        self.slots: dict[tuple[int, int], tuple[Any, ...] | None] = {}
        self.answered: dict[tuple[int, int], int] = {}

    def new_batch(self) -> None:
        self.slots.clear()
        self.answered.clear()

    def prefetch(self, db: Database, keys: list[tuple[int, int]]) -> None:
        """Read the question rows and answered counts of a batch's (session, item) keys with one
        query each. Fewer statements, not less work: every statement releases the GIL, and under
        the write lock the writer may wait behind busy request threads to get it back."""
        wanted = [k for k in dict.fromkeys(keys) if k not in self.slots]
        if not wanted:
            return
        flat = [x for key in wanted for x in key]
        marks = ",".join(["(?,?)"] * len(wanted))
        self.slots.update(dict.fromkeys(wanted))
        for row in db.conn.execute(f"WITH k(s, i) AS (VALUES {marks}) {_SESSION_ITEM_KEYED_SQL}", flat):
            self.slots[(row[0], row[1])] = row[2:]
        counts = dict.fromkeys(wanted, 0)
        sql = (f"WITH k(s, i) AS (VALUES {marks}) SELECT k.s, k.i, COUNT(a.id) FROM k"
               " JOIN quiz_answers a ON a.session_id = k.s AND a.item_id = k.i GROUP BY k.s, k.i")
        for s_id, i_id, n in db.conn.execute(sql, flat):
            counts[(s_id, i_id)] = n
        for key, n in counts.items():
            self.answered.setdefault(key, n)

    def item(self, db: Database, item_id: int) -> bank.StoredItem | None:
        it = self.items.get(item_id)
        if it is None:
            it = bank.get_item(db, item_id)
            if it is not None and len(self.items) < 10_000:
                self.items[item_id] = it
        return it

    def slot(self, db: Database, session_id: int, item_id: int) -> tuple[Any, ...] | None:
        key = (session_id, item_id)
        if key not in self.slots:
            self.slots[key] = db.conn.execute(_SESSION_ITEM_SQL, key).fetchone()
        return self.slots[key]

    def count_with(self, db: Database, session_id: int, item_id: int, inserted: bool) -> int:
        """How many students will have answered the question once this answer is in (it is inserted
        or, when ``inserted`` is False, replaces one); :meth:`note_count` keeps the figure for the batch."""
        n = self.answered.get((session_id, item_id))
        if n is None:
            # Read before any of the batch's own rows are written (they are written when it flushes).
            n = db.conn.execute("SELECT COUNT(*) FROM quiz_answers WHERE session_id = ? AND item_id = ?", (session_id, item_id)).fetchone()[0]
            self.answered[(session_id, item_id)] = n
        return n + (1 if inserted else 0)

    def note_count(self, session_id: int, item_id: int, n: int) -> None:
        self.answered[(session_id, item_id)] = n

    def registration(self, db: Database, session_id: int) -> str | None:
        """The session's UUID (the xAPI registration); None for no such session."""
        r = self.registrations.get(session_id)
        if r is None:
            row = db.execute("SELECT uuid FROM quiz_sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None:
                return None
            r = row[0]
            if len(self.registrations) < 10_000:
                self.registrations[session_id] = r
        return r

    def pseudo_id(self, db: Database, student_id: int) -> str:
        p = self.pseudo.get(student_id)
        if p is None:
            p = db.execute("SELECT pseudo_id FROM students WHERE id = ?", (student_id,)).fetchone()[0]
            if len(self.pseudo) < 100_000:
                self.pseudo[student_id] = p
        return p


_SESSION_ITEM_COLUMNS = "s.class_id, s.uuid, s.allow_change, s.grace_s, s.closed_at, si.opened_at, si.closes_at, si.closed_at"
_SESSION_ITEM_SQL = (
    f"SELECT {_SESSION_ITEM_COLUMNS} FROM quiz_sessions s JOIN quiz_session_items si ON si.session_id = s.id WHERE s.id = ? AND si.item_id = ?"
)
# The same rows for a VALUES list k(s, i) of keys (Lookups.prefetch).
_SESSION_ITEM_KEYED_SQL = (
    f"SELECT k.s, k.i, {_SESSION_ITEM_COLUMNS} FROM k JOIN quiz_sessions s ON s.id = k.s"
    " JOIN quiz_session_items si ON si.session_id = k.s AND si.item_id = k.i"
)


@dataclass
class Prepared:
    """What can be worked out about an answer without the write lock (see :func:`prepare_answer`)."""

    received_at: float
    sha: str
    item: bank.StoredItem | None
    response: dict[str, Any] | None
    invalid: QuizError | None
    grade: Grade | None
    made_at: float
    statement: tuple[str, str] | None  # (statement id, xAPI statement JSON) for made_at, if graded


def prepare_answer(db: Database, facts: HubFacts, a: AnswerIn, lookups: Lookups, principal_student_id: int,
                   received_at: float | None = None) -> Prepared:
    """Hash, validate and grade an answer and write its xAPI statement, before it joins a group commit.

    None of this depends on state a commit can change (items, sessions' ids and pseudonyms
    never change), so the request thread does it while another batch holds the write lock.
    Validation errors are kept, not raised: :func:`apply_answer` raises them in their turn,
    after the checks that come first (a resend of a recorded answer, a closed question).
    """
    received = time.time() if received_at is None else received_at
    # Another student's answer is refused (409) before any of this is used.
    item = lookups.item(db, a.item_id) if a.student_id == principal_student_id else None
    made_at = _hub_time(a, received)
    response = invalid = g = statement = None
    if item is not None:
        try:
            response = validate_response(item.type, len(item.options), n_blanks(item.type, item.key), a.response, item.allow_photo)
        except ItemError as exc:
            invalid = QuizError(422, "bad-answer", str(exc))
        else:
            g = grade(item.type, item.key, item.points, response)
            registration = lookups.registration(db, a.session_id)
            if g.correct is not None and registration is not None:
                statement = _statement(facts, item, lookups.pseudo_id(db, a.student_id), a.client_id, response, g.correct,
                                       float(g.score or 0.0), registration, made_at)
    return Prepared(received, _request_sha(a), item, response, invalid, g, made_at, statement)


def _statement(facts: HubFacts, item: bank.StoredItem, pseudo: str, seed: str, response: dict[str, Any], correct: bool, score: float,
               registration: str, at: float) -> tuple[str, str]:
    return xapi.answered_json(statement_uuid=xapi.statement_id(seed), hub_id=facts.hub_id, pseudo_id=pseudo, item=item, response=response,
                              correct=correct, score=score, registration=registration, at=at, tz=facts.timezone)


def apply_answer(db: Database, store: AnswerBatch, facts: HubFacts, a: AnswerIn, principal_student_id: int,
                 principal_class_id: int, lookups: Lookups, prepared: Prepared, learning: list[GradedAnswer]) -> tuple[dict[str, Any], bool]:
    """Decide one answer of a group commit (``edge/quiz/writer.py``): returns (ack, created); a retry
    returns the same ack with created False. The ack never says whether the answer is right.

    Runs inside the writer's transaction, under ``store.job()``; what it decides is written when
    the batch flushes (``store``). ``prepared`` is :func:`prepare_answer`'s result for ``a``, made
    before the write lock was taken. The graded answer is appended to ``learning``, for the writer
    to hand to personalised learning with the rest of its batch. Raises :class:`QuizError`.
    """
    if a.student_id != principal_student_id:
        raise QuizError(409, "wrong-student", "this answer belongs to another student; sign in as that student to send it")
    item = prepared.item
    prev = store.submission(a.client_id)
    if prev is not None:
        if not _same_request(prev.request_sha, a, prepared.sha):
            raise QuizError(409, "replayed-id", "this answer id was already used for a different answer")
        return _ack(a.client_id, prev.session_id, prev.item_id, prev.outcome, prev.received_at), False
    row = lookups.slot(db, a.session_id, a.item_id)
    if row is None or row[0] != principal_class_id or item is None:
        raise QuizError(404, "no-such-question", "this question is not open for your class")
    class_id, registration, allow_change, grace_s, s_closed, opened_at, closes_at, i_closed = row
    # Closed or not is decided now, under the lock (a close may have committed since the
    # answer arrived); when it was made and received are the hub's times of its arrival.
    now = time.time()
    received, made_at = prepared.received_at, prepared.made_at
    close_at = effective_close(i_closed, s_closed, closes_at)
    if close_at is not None and now > close_at:
        if made_at > close_at:
            raise QuizError(409, "question-closed", "this question has closed")
        if received > close_at + grace_s:
            raise QuizError(409, "question-closed", "this answer arrived after the grace period for offline answers")
        if db.conn.execute("SELECT 1 FROM quiz_reveals WHERE session_id = ? AND item_id = ? AND student_id = ?",
                           (a.session_id, a.item_id, a.student_id)).fetchone():
            raise QuizError(409, "question-closed", "the answer was already shown on this tablet")
    if made_at < opened_at - _OPEN_SKEW_S:
        made_at = opened_at  # a tablet clock far behind: never before the question existed
    if prepared.invalid is not None:
        raise prepared.invalid
    response, g = prepared.response, prepared.grade
    assert response is not None and g is not None
    if "photo_id" in response and not db.conn.execute("SELECT 1 FROM quiz_photos WHERE id = ? AND student_id = ?",
                                                      (response["photo_id"], a.student_id)).fetchone():
        raise QuizError(422, "bad-answer", "upload the photo before sending the answer")
    key = (a.session_id, a.item_id, a.student_id)
    cur_ans = store.current_answer(key)
    outcome = "accepted"
    if cur_ans is not None:
        if cur_ans.client_time > made_at:
            outcome = "superseded"  # an older change arriving after a newer one: kept as history only
        elif cur_ans.final:
            raise QuizError(409, "already-submitted", "this question was already submitted")
        elif not allow_change:
            raise QuizError(409, "no-changes", "answers to this quiz cannot be changed")
    store.add_submission(a.client_id, Submission(a.session_id, a.item_id, a.student_id, prepared.sha, outcome, received))
    if outcome == "superseded":
        return _ack(a.client_id, a.session_id, a.item_id, outcome, received), True
    store.put_answer(key, cur_ans, {"client_id": a.client_id, "response": compact(response), "final": int(a.final), "client_time": made_at,
                                    "received_at": received, "correct": None if g.correct is None else int(g.correct), "score": g.score})
    if g.correct is not None:
        statement = prepared.statement
        if statement is None or made_at != prepared.made_at:  # moved to the question's opening: the statement says so
            statement = _statement(facts, item, lookups.pseudo_id(db, a.student_id), a.client_id, response, g.correct,
                                   float(g.score or 0.0), registration, made_at)
        store.add_outbox(xapi.XAPI_EVENT, statement[1], statement[0])
    answered = lookups.count_with(db, a.session_id, a.item_id, inserted=cur_ans is None)
    store.keep(lookups.note_count, a.session_id, a.item_id, answered)
    store.emit(staff_channel(class_id), EV_ANSWER, {
        "session_id": a.session_id, "item_id": a.item_id, "student_id": a.student_id, "client_id": a.client_id,
        "response": response, "correct": g.correct, "answered": answered, "final": a.final,
    })
    if g.correct is not None:
        learning.append(GradedAnswer(a.student_id, item.uid, item.knowledge_points, g.correct, made_at, a.client_id))
    return _ack(a.client_id, a.session_id, a.item_id, outcome, received), True


def _hub_time(a: AnswerIn, now: float) -> float:
    if a.sent_at is not None:
        return now - max(0.0, a.sent_at - a.answered_at)
    return min(a.answered_at, now)


def _record_graded(db: Database, facts: HubFacts, item: bank.StoredItem, student_id: int, seed: str, response: dict[str, Any],
                   correct: bool, score: float, registration: str, at: float) -> None:
    """The xAPI statement and the learning record, in the caller's (grading) transaction."""
    pseudo = db.conn.execute("SELECT pseudo_id FROM students WHERE id = ?", (student_id,)).fetchone()[0]
    stmt = xapi.answered(statement_uuid=xapi.statement_id(seed), hub_id=facts.hub_id, pseudo_id=pseudo, item=item, response=response,
                         correct=correct, score=score, registration=registration, at=at, tz=facts.timezone)
    outbox.append(db, xapi.XAPI_EVENT, stmt, event_id=stmt["id"])
    record_answer_for_learning(db, student_id, item.uid, item.knowledge_points, correct, at, answer_id=seed)


def mark_answer(db: Database, bus: Any, facts: HubFacts, answer_id: int, score: float, user_id: int, allowed_classes: list[int] | None) -> dict[str, Any]:
    """The teacher marks an answer (short answers; or overrides a grade)."""
    with transaction(db):
        r = db.conn.execute(
            "SELECT a.session_id, a.item_id, a.student_id, a.client_id, a.response, a.client_time, s.class_id, s.uuid"
            " FROM quiz_answers a JOIN quiz_sessions s ON s.id = a.session_id WHERE a.id = ?", (answer_id,)).fetchone()
        if r is None or (allowed_classes is not None and r[6] not in allowed_classes):
            raise QuizError(404, "no-such-answer", "no such answer")
        item = bank.get_item(db, r[1])
        assert item is not None
        if not 0 <= score <= item.points:
            raise QuizError(422, "bad-score", f"the score is 0 to {item.points}")
        correct = score >= item.points
        db.conn.execute("UPDATE quiz_answers SET score = ?, correct = ?, marked_by = ? WHERE id = ?", (score, int(correct), user_id, answer_id))
        _record_graded(db, facts, item, r[2], f"{r[3]}:mark:{uuid.uuid4()}", json.loads(r[4]), correct, score, r[7], r[5])
        bus.emit(db, staff_channel(r[6]), EV_MARKED, {"session_id": r[0], "item_id": r[1], "student_id": r[2], "correct": correct})
    return {"answer_id": answer_id, "score": score, "correct": correct}
