"""What one group commit of answers reads once and writes at once.

The writer (``edge/quiz/writer.py``) applies many answers in one transaction. Read one
by one and written one by one, each answer costs eight statements under the write lock
(its submission, the student's current answer, four inserts and a savepoint around
them). :class:`AnswerBatch` instead reads the submissions and current answers of every
answer in the batch with one query each, lets :func:`edge.quiz.sessions.apply_answer`
decide against those, and writes what it decided with one ``executemany`` per table when
the batch is done.

An answer's writes are staged until it has been decided completely (:meth:`AnswerBatch.job`):
an answer refused half-way leaves nothing behind, as a savepoint rollback would. Later
answers of the batch see earlier ones (a retry of an answer sent moments before in the
same batch is a retry; a change of an answer inserted in the batch updates it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from edge import outbox
from edge.storage.db import Database, select_keys


@dataclass(frozen=True)
class Submission:
    session_id: int
    item_id: int
    student_id: int
    request_sha: str
    outcome: str
    received_at: float


@dataclass
class CurrentAnswer:
    """A student's current answer to a question: a row of ``quiz_answers``, stored or still to be inserted."""

    id: int | None  # None: inserted by this batch
    final: bool
    client_time: float
    changes: int


AnswerKey = tuple[int, int, int]  # session, item, student

# Column order of the staged rows, as the statements in flush() write them.
_ANSWER_COLUMNS = ("client_id", "response", "final", "client_time", "received_at", "correct", "score")


class AnswerBatch:
    def __init__(self, db: Database, bus: Any) -> None:
        self.db, self.bus = db, bus
        self._submissions: dict[str, Submission] = {}
        self._answers: dict[AnswerKey, CurrentAnswer | None] = {}  # None: looked up, the student has none
        self._looked_up: set[str] = set()
        self._new_submissions: list[tuple[Any, ...]] = []
        self._inserts: dict[AnswerKey, list[Any]] = {}
        self._updates: dict[AnswerKey, list[Any]] = {}
        self._outbox: list[tuple[str, str, int, str]] = []
        self._events: list[tuple[str, str, dict[str, Any]]] = []
        self._staged: list[tuple[str, Any]] | None = None

    # -- reading ---------------------------------------------------------------------------

    def prefetch(self, client_ids: Sequence[str], keys: Sequence[AnswerKey]) -> None:
        """Read the submissions and current answers these answers will ask about, one query each."""
        ids = [c for c in dict.fromkeys(client_ids) if c not in self._looked_up]
        if ids:
            marks = ",".join("?" * len(ids))
            sql = f"SELECT client_id, session_id, item_id, student_id, request_sha, outcome, received_at FROM quiz_submissions WHERE client_id IN ({marks})"
            for row in self.db.conn.execute(sql, ids):
                self._submissions.setdefault(row[0], Submission(*row[1:]))
            self._looked_up.update(ids)
        wanted = [k for k in dict.fromkeys(keys) if k not in self._answers]
        if wanted:
            sql = select_keys("quiz_answers", "session_id, item_id, student_id, id, final, client_time, changes",
                              ("session_id", "item_id", "student_id"), len(wanted))
            self._answers.update(dict.fromkeys(wanted))
            for s, i, st, row_id, final, client_time, changes in self.db.conn.execute(sql, [x for key in wanted for x in key]):
                self._answers[(s, i, st)] = CurrentAnswer(row_id, bool(final), client_time, changes)

    def submission(self, client_id: str) -> Submission | None:
        if client_id not in self._looked_up:
            self.prefetch([client_id], [])
        return self._submissions.get(client_id)

    def current_answer(self, key: AnswerKey) -> CurrentAnswer | None:
        if key not in self._answers:
            self.prefetch([], [key])
        return self._answers.get(key)

    # -- writing (staged per answer) ---------------------------------------------------------

    @contextmanager
    def job(self) -> Iterator[None]:
        """One answer's decisions: kept if the block finishes, dropped if it raises."""
        self._staged = []
        try:
            yield
            staged, self._staged = self._staged, None
            for op, args in staged:
                getattr(self, op)(*args)
        finally:
            self._staged = None

    def _stage(self, op: str, *args: Any) -> None:
        if self._staged is None:
            getattr(self, op)(*args)
        else:
            self._staged.append((op, args))

    def add_submission(self, client_id: str, sub: Submission) -> None:
        self._stage("_add_submission", client_id, sub)

    def put_answer(self, key: AnswerKey, current: CurrentAnswer | None, values: dict[str, Any]) -> None:
        """Insert the student's answer, or replace ``current`` with it (one more change)."""
        self._stage("_put_answer", key, current, values)

    def add_outbox(self, type_: str, payload_json: str, event_id: str, schema: int = 1) -> None:
        self._stage("_add_outbox", type_, payload_json, schema, event_id)

    def emit(self, channel: str, type_: str, data: dict[str, Any]) -> None:
        self._stage("_emit", channel, type_, data)

    def keep(self, fn: Any, *args: Any) -> None:
        """Call ``fn(*args)`` once this answer is kept (for what the caller remembers about the batch)."""
        self._stage("_call", fn, *args)

    def _call(self, fn: Any, *args: Any) -> None:
        fn(*args)

    def _add_submission(self, client_id: str, sub: Submission) -> None:
        self._submissions[client_id] = sub
        self._looked_up.add(client_id)
        self._new_submissions.append((client_id, sub.session_id, sub.item_id, sub.student_id, sub.request_sha, sub.outcome, sub.received_at))

    def _put_answer(self, key: AnswerKey, current: CurrentAnswer | None, values: dict[str, Any]) -> None:
        row = [values[c] for c in _ANSWER_COLUMNS]
        if current is None:
            self._inserts[key] = row
            self._answers[key] = CurrentAnswer(None, bool(values["final"]), values["client_time"], 0)
            return
        current = self._answers[key]  # the batch's own view of it
        assert current is not None
        if current.id is None:  # inserted earlier in this batch: the insert takes the new values
            self._inserts[key] = row
        else:
            self._updates[key] = row
        self._answers[key] = CurrentAnswer(current.id, bool(values["final"]), values["client_time"], current.changes + 1)

    def _add_outbox(self, type_: str, payload_json: str, schema: int, event_id: str) -> None:
        self._outbox.append((type_, payload_json, schema, event_id))

    def _emit(self, channel: str, type_: str, data: dict[str, Any]) -> None:
        self._events.append((channel, type_, data))

    # -- the end of the batch ------------------------------------------------------------------

    def flush(self) -> bool:
        """Write everything decided, a statement per table, in the caller's transaction. True if a
        live event was written (the caller wakes the listeners once it has committed)."""
        conn = self.db.conn
        if self._new_submissions:
            conn.executemany("INSERT INTO quiz_submissions (client_id, session_id, item_id, student_id, request_sha, outcome, received_at)"
                             " VALUES (?,?,?,?,?,?,?)", self._new_submissions)
        if self._inserts:
            conn.executemany(
                "INSERT INTO quiz_answers (session_id, item_id, student_id, client_id, response, final, client_time, received_at, correct,"
                " score, changes) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [(*key, *row, self._kept(key).changes) for key, row in self._inserts.items()])
        if self._updates:
            conn.executemany(
                "UPDATE quiz_answers SET client_id = ?, response = ?, final = ?, client_time = ?, received_at = ?, correct = ?, score = ?,"
                " marked_by = NULL, changes = ? WHERE id = ?",
                [(*row, self._kept(key).changes, self._kept(key).id) for key, row in self._updates.items()])
        outbox.append_many_json(self.db, self._outbox)
        wrote_events = bool(self._events)
        if wrote_events:
            self.bus.emit_many(self.db, self._events)
        self._new_submissions, self._inserts, self._updates, self._outbox, self._events = [], {}, {}, [], []
        return wrote_events

    def _kept(self, key: AnswerKey) -> CurrentAnswer:
        current = self._answers[key]
        assert current is not None
        return current
