"""Mastery per student and knowledge point, kept up to date answer by answer.

``record_answer`` / ``record_answers`` are the interface for the quiz capability
(a teacher's mark calls it in its transaction; the answer writer's batches reach it
through ``edge.learning.pending`` just after their commit). An answer costs one step
of the network per knowledge point it touches (the student's recurrent state is
stored, never recomputed), plus a BKT update for points the network does not cover.

Mastery is reported as the predicted probability that the student's next
answer on that knowledge point is right, for both kinds of model, so a band
such as 0.6-0.85 means the same thing everywhere.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from edge import outbox
from edge.learning import bkt as bkt_model
from edge.learning.errors import LearningError, UnknownItem, UnknownKnowledgePoint, UnknownStudent
from edge.learning.kt_model import KTModel
from edge.learning.registry import active_model
from edge.storage.db import Database, execute_rows, select_keys

log = logging.getLogger(__name__)

TIERS = {"basic": "basic", "advanced": "advanced", "extension": "extension", "基础": "basic", "提高": "advanced", "拓展": "extension"}
MAX_KPS_PER_ITEM = 16


@dataclass(frozen=True)
class Item:
    """An exercise the recommender may choose. ``difficulty`` 0 (easy) .. 1 (hard), 0.5 typical."""

    id: str
    knowledge_points: tuple[str, ...]
    difficulty: float = 0.5
    tier: str = "basic"


# -- the item catalogue -----------------------------------------------------------------


def _item_from(obj: Item | Mapping[str, Any]) -> Item:
    """Items come as ``Item`` or as the quiz bank's dicts ({uid, knowledge_points, difficulty 1-5, type})."""
    if isinstance(obj, Item):
        return obj
    raw_difficulty = obj.get("difficulty")
    if raw_difficulty is None:
        difficulty = 0.5
    elif isinstance(raw_difficulty, int) and not isinstance(raw_difficulty, bool):
        if not 1 <= raw_difficulty <= 5:
            raise LearningError(f"item {obj.get('uid')!r}: difficulty must be 1-5")
        difficulty = (raw_difficulty - 1) / 4  # the quiz bank's 1 (easy) .. 5 (hard)
    elif isinstance(raw_difficulty, float):
        difficulty = raw_difficulty
    else:
        raise LearningError(f"item {obj.get('uid')!r}: difficulty must be a number")
    tier = obj.get("tier") or ("basic" if difficulty < 0.4 else "advanced" if difficulty < 0.8 else "extension")
    item_id = obj.get("uid", obj.get("id"))
    kps = obj.get("knowledge_points") or ()
    if not isinstance(item_id, str) or not isinstance(kps, list | tuple) or not all(isinstance(k, str) for k in kps):
        raise LearningError("an item needs a string uid and a list of knowledge point ids")
    return Item(item_id, tuple(kps), difficulty, str(tier))


def register_items(db: Database, items: Iterable[Item | Mapping[str, Any]], source: str = "quiz", create_missing: bool = True) -> int:
    """Add or update exercises; the caller owns the transaction (the quiz calls it inside its import).

    A knowledge point an item is tagged with but the graph lacks is added as a
    point without prerequisites (tracked by BKT until mapped) when
    ``create_missing``; otherwise the call raises ``UnknownKnowledgePoint``.
    Nothing is written when any item is refused.
    """
    parsed = [_item_from(i) for i in items]
    known = {r[0] for r in db.execute("SELECT id FROM learning_knowledge_points")}
    missing: dict[str, None] = {}
    for it in parsed:
        if not it.id or len(it.id) > 128:
            raise LearningError("an item id must be 1-128 characters")
        if not it.knowledge_points or len(it.knowledge_points) > MAX_KPS_PER_ITEM:
            raise LearningError(f"item {it.id!r} needs 1-{MAX_KPS_PER_ITEM} knowledge points")
        for k in it.knowledge_points:
            if not k or len(k) > 128:
                raise LearningError(f"item {it.id!r}: a knowledge point id must be 1-128 characters")
            if k not in known:
                if not create_missing:
                    raise UnknownKnowledgePoint(f"item {it.id!r} is tagged with unknown knowledge point {k!r}")
                missing[k] = None
        if not 0.0 <= it.difficulty <= 1.0:
            raise LearningError(f"item {it.id!r}: difficulty must lie between 0 and 1")
        if it.tier not in TIERS:
            raise LearningError(f"item {it.id!r}: tier must be one of basic/advanced/extension (基础/提高/拓展)")
    now = time.time()
    conn = db.conn
    conn.executemany(
        "INSERT INTO learning_knowledge_points (id, name, subject, model_skill, source, updated_at) VALUES (?, ?, '', NULL, ?, ?)",
        [(k, k, source if source in ("package", "district") else "quiz", now) for k in missing],
    )
    for it in parsed:
        conn.execute(
            """INSERT INTO learning_items (id, difficulty, tier, source, active, updated_at) VALUES (?, ?, ?, ?, 1, ?)
               ON CONFLICT(id) DO UPDATE SET difficulty = excluded.difficulty, tier = excluded.tier,
                 source = excluded.source, active = 1, updated_at = excluded.updated_at""",
            (it.id, float(it.difficulty), TIERS[it.tier], source, now),
        )
        conn.execute("DELETE FROM learning_item_kps WHERE item_id = ?", (it.id,))
        conn.executemany("INSERT INTO learning_item_kps (item_id, kp_id) VALUES (?, ?)", [(it.id, k) for k in dict.fromkeys(it.knowledge_points)])
    return len(parsed)


# -- answers ----------------------------------------------------------------------------


@dataclass
class StudentState:
    version: str
    h: np.ndarray
    c: np.ndarray
    p: np.ndarray | None  # None: no answer on a network skill yet
    steps: int
    last_answer: int


_EMPTY = np.zeros(0, dtype=np.float32)


def _blob(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype=np.float32).tobytes()


def _step(model: KTModel, st: StudentState, skills: Iterable[int], correct: bool) -> None:
    for skill in sorted(set(skills)):
        st.p, st.h, st.c = model.step(skill, correct, st.h, st.c)
        st.steps += 1


def _rebuild(db: Database, student_id: int, model: KTModel, upto: int,
             unwritten: Sequence[tuple[int, str, int]] = ()) -> StudentState:
    """Replay the student's history through ``model`` (after a model swap, or the first time).

    ``unwritten``: (id, kps JSON, correct) rows of the batch being planned, not yet in the table.
    """
    h, c = model.zero_state()
    st = StudentState(model.version, h, c, None, 0, 0)
    rows = db.execute("SELECT id, kps, correct FROM learning_answers WHERE student_id = ? AND id <= ? ORDER BY id", (student_id, upto)).fetchall()
    rows += [r for r in unwritten if r[0] <= upto]
    cache: dict[str, int | None] = {}
    for answer_id, kps_json, correct in rows:
        kps = [k for k in json.loads(kps_json)]
        unknown = [k for k in kps if k not in cache]
        if unknown:
            marks = ",".join("?" * len(unknown))
            row_map = {r[0]: r[1] for r in db.execute(f"SELECT id, model_skill FROM learning_knowledge_points WHERE id IN ({marks})", tuple(unknown))}
            for k in unknown:
                s = row_map.get(k)
                cache[k] = s if s is not None and 0 <= s < model.num_skills else None
        _step(model, st, [cache[k] for k in kps if cache[k] is not None], bool(correct))  # type: ignore[misc]
        st.last_answer = answer_id
    return st


def _rebuild_many(db: Database, student_ids: Sequence[int], model: KTModel) -> dict[int, np.ndarray]:
    """Final probabilities of many students under ``model``, replayed together (one batched step per
    time index, so a class after a model swap costs its longest history, not the sum of all)."""
    skill_of = {r[0]: r[1] for r in db.execute("SELECT id, model_skill FROM learning_knowledge_points")}
    steps: dict[int, list[tuple[int, int]]] = {s: [] for s in student_ids}
    marks = ",".join("?" * len(student_ids))
    sql = f"SELECT student_id, kps, correct FROM learning_answers WHERE student_id IN ({marks}) ORDER BY id"
    for sid, kps_json, correct in db.execute(sql, tuple(student_ids)):
        skills = {skill_of.get(k) for k in json.loads(kps_json)}
        steps[sid].extend((s, correct) for s in sorted(x for x in skills if x is not None and 0 <= x < model.num_skills))
    ids = [s for s in student_ids if steps[s]]
    if not ids:
        return {}
    lens = np.array([len(steps[s]) for s in ids])
    sk = np.zeros((len(ids), int(lens.max())), dtype=np.int64)
    co = np.zeros_like(sk)
    for i, s in enumerate(ids):
        arr = np.asarray(steps[s], dtype=np.int64)
        sk[i, : len(arr)], co[i, : len(arr)] = arr[:, 0], arr[:, 1]
    h = np.zeros((len(ids), model.state_widths[0]), dtype=np.float32)
    c = np.zeros((len(ids), model.state_widths[1]), dtype=np.float32)
    last = np.zeros((len(ids), model.num_skills), dtype=np.float32)
    for t in range(int(lens.max())):
        act = np.nonzero(lens > t)[0]
        p, h[act], c[act] = model.step_batch(sk[act, t], co[act, t], h[act], c[act])
        last[act] = p
    return {s: last[i] for i, s in enumerate(ids)}


def warm_up(db: Database) -> None:
    """Load the active model and run one step, so the first answer of the day pays neither."""
    model = active_model(db)
    h, c = model.zero_state()
    model.step(0, 1, h, c)


@dataclass(frozen=True)
class Answer:
    """One graded answer for :func:`record_answers`. ``knowledge_points`` None means the item's own tags."""

    student_id: int
    item_id: str
    knowledge_points: Sequence[str] | None
    correct: bool
    at: float
    answer_id: str | None = None


def record_answer(
    db: Database,
    student_id: int,
    item_id: str,
    knowledge_points: Sequence[str] | None,
    correct: bool,
    at: float,
    answer_id: str | None = None,
    strict: bool = False,
) -> dict[str, float]:
    """Update the student's mastery from one graded answer; the caller owns the transaction.

    ``knowledge_points`` None means the item's own tags. Returns the new mastery
    of the knowledge points the answer touched. An unknown student, item or
    knowledge point writes nothing: with ``strict`` it raises ``UnknownStudent``,
    ``UnknownItem`` or ``UnknownKnowledgePoint``; without (the quiz's grading
    path, whose grade must stand whatever learning thinks of the item) it logs
    the refusal and returns an empty dict. A repeated ``answer_id`` changes
    nothing and returns the current mastery.
    """
    return record_answers(db, [Answer(student_id, item_id, knowledge_points, correct, at, answer_id)], strict=strict)[0]


def record_answers(db: Database, answers: Sequence[Answer], strict: bool = False) -> list[dict[str, float]]:
    """:func:`record_answer` for many answers at once, with the same result as calling it for each in order.

    The quiz's group commit hands over every graded answer of a batch in one call: the
    reads and writes are one statement per table for the whole batch, and the network
    steps all students forward together (one batched model run per step), instead of a
    dozen statements and a model run per answer. Returns each answer's new mastery of the
    points it touched (for a repeated ``answer_id``: the mastery once the whole batch is
    recorded); a refused answer (see :func:`record_answer`) gets an empty dict and writes
    nothing, the others are recorded.
    """
    if not answers:
        return []
    plan = plan_answers(db, answers, strict)
    plan.write()
    return plan.results()


def plan_answers(db: Database, answers: Sequence[Answer], strict: bool = False) -> AnswersPlan:
    """What :func:`record_answers` would write for ``answers``, worked out by reads alone.

    The plan holds every row to write (:meth:`AnswersPlan.write` writes them). It is exact
    for the database as it was read: a caller that plans in one transaction and writes in a
    later one must know that no learning table changed in between (``edge.learning.pending``
    checks the tables' generation, kept by triggers).
    """
    model = active_model(db)
    batch = _Batch(db, model, answers)
    plan = AnswersPlan(db, answers, [{} for _ in answers])
    accepted: list[tuple[int, list[str]]] = []
    for i, a in enumerate(answers):
        try:
            kps = batch.check(a)
        except LearningError as err:
            if strict:
                raise
            log.warning("answer not used for mastery", extra={"student_id": a.student_id, "item_id": a.item_id, "reason": str(err)})
            continue
        if a.answer_id is not None and not batch.claim(a.answer_id):
            plan.repeats.append((i, kps))  # changes nothing
        else:
            accepted.append((i, kps))
    if accepted:
        batch.plan(accepted, plan)
    return plan


@dataclass
class AnswersPlan:
    """The statements and rows a batch of answers writes, in order (:func:`plan_answers`)."""

    db: Database
    answers: Sequence[Answer]
    out: list[dict[str, float]]
    writes: list[tuple[str, list[tuple[Any, ...]]]] = field(default_factory=list)
    repeats: list[tuple[int, list[str]]] = field(default_factory=list)

    def add(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self.writes.append((sql, rows))

    def write(self) -> None:
        """Write the planned rows (the caller owns the write transaction).

        Each statement goes with many rows in its VALUES at once (``execute_rows``, which says why).
        """
        for sql, rows in self.writes:
            execute_rows(self.db.conn, sql, rows)

    def results(self) -> list[dict[str, float]]:
        """Each answer's mastery of the points it touched, once written (see :func:`record_answers`)."""
        for i, kps in self.repeats:
            self.out[i] = mastery_of(self.db, self.answers[i].student_id, kps)
        return self.out


def _marks(n: int) -> str:
    return ",".join("?" * n)


class _Batch:
    """What :func:`record_answers` reads once for all its answers."""

    def __init__(self, db: Database, model: KTModel, answers: Sequence[Answer]) -> None:
        self.db, self.model, self.answers = db, model, answers
        students = list({a.student_id for a in answers})
        self.students = {r[0] for r in db.execute(f"SELECT id FROM students WHERE id IN ({_marks(len(students))})", students)}
        item_ids = list({a.item_id for a in answers})
        self.items = {r[0] for r in db.execute(f"SELECT id FROM learning_items WHERE id IN ({_marks(len(item_ids))})", item_ids)}
        untagged = [i for i in {a.item_id for a in answers if a.knowledge_points is None} if i in self.items]
        self.item_kps: dict[str, list[str]] = {i: [] for i in untagged}
        if untagged:
            sql = f"SELECT item_id, kp_id FROM learning_item_kps WHERE item_id IN ({_marks(len(untagged))}) ORDER BY item_id, kp_id"
            for item_id, kp in db.execute(sql, untagged):
                self.item_kps[item_id].append(kp)
        kp_ids = list({k for a in answers for k in (a.knowledge_points or ())} | {k for ks in self.item_kps.values() for k in ks})
        self.skill_of: dict[str, int | None] = {}
        if kp_ids:
            sql = f"SELECT id, model_skill FROM learning_knowledge_points WHERE id IN ({_marks(len(kp_ids))})"
            for kp, s in db.execute(sql, kp_ids):
                self.skill_of[kp] = s if s is not None and 0 <= s < model.num_skills else None
        ids = [a.answer_id for a in answers if a.answer_id is not None]
        self.seen: set[str] = set()
        if ids:
            self.seen = {r[0] for r in db.execute(f"SELECT answer_id FROM learning_answers WHERE answer_id IN ({_marks(len(ids))})", ids)}

    def check(self, a: Answer) -> list[str]:
        """The answer's knowledge points, or the LearningError that refuses it."""
        if a.student_id not in self.students:
            raise UnknownStudent(f"no student with id {a.student_id}")
        if a.item_id not in self.items:
            raise UnknownItem(f"no exercise {a.item_id!r} in the learning catalogue (register it first)")
        kps = self.item_kps[a.item_id] if a.knowledge_points is None else list(dict.fromkeys(a.knowledge_points))
        if not kps or len(kps) > MAX_KPS_PER_ITEM:
            raise UnknownKnowledgePoint(f"an answer must name 1-{MAX_KPS_PER_ITEM} knowledge points")
        missing = [k for k in kps if k not in self.skill_of]
        if missing:
            raise UnknownKnowledgePoint(f"unknown knowledge point {missing[0]!r}")
        return kps

    def claim(self, answer_id: str) -> bool:
        """False if this answer id was recorded before (or earlier in the batch)."""
        if answer_id in self.seen:
            return False
        self.seen.add(answer_id)
        return True

    def plan(self, accepted: list[tuple[int, list[str]]], plan: AnswersPlan) -> None:
        """The accepted answers' rows, the network steps, BKT, progress and evidence."""
        answers = self.answers
        last = self.db.execute("SELECT COALESCE(MAX(id), 0) FROM learning_answers").fetchone()[0]
        # The new rows get the ids an insert would give them (one above the largest), stated outright.
        new_ids = {i: last + 1 + n for n, (i, _kps) in enumerate(accepted)}
        rows = [(new_ids[i], answers[i].answer_id, answers[i].student_id, answers[i].item_id, orjson.dumps(kps).decode(),
                 1 if answers[i].correct else 0, float(answers[i].at)) for i, kps in accepted]
        plan.add("INSERT INTO learning_answers (id, answer_id, student_id, item_id, kps, correct, at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        unwritten: dict[int, list[tuple[int, str, int]]] = {}  # per student: (id, kps, correct) of these rows
        for r in rows:
            unwritten.setdefault(r[2], []).append((r[0], r[4], r[5]))
        self.step_network(accepted, new_ids, unwritten, plan)
        self.update_bkt(accepted, plan)
        self.update_progress(accepted, plan)
        plan.add(
            """INSERT INTO learning_evidence (student_id, kp_id, answers, correct, last_at) VALUES (?, ?, 1, ?, ?)
               ON CONFLICT(student_id, kp_id) DO UPDATE SET answers = answers + 1, correct = correct + excluded.correct, last_at = excluded.last_at""",
            [(answers[i].student_id, k, 1 if answers[i].correct else 0, float(answers[i].at)) for i, kps in accepted for k in kps],
        )

    def step_network(self, accepted: list[tuple[int, list[str]]], new_ids: dict[int, int],
                     unwritten: dict[int, list[tuple[int, str, int]]], writes: AnswersPlan) -> None:
        """Each student's stored state stepped through their answers of the batch, all students at once."""
        db, model, answers, out = self.db, self.model, self.answers, writes.out
        by_student: dict[int, list[int]] = {}
        for i, _kps in accepted:
            by_student.setdefault(answers[i].student_id, []).append(i)
        sids = list(by_student)
        kps_of = dict(accepted)
        states: dict[int, StudentState] = {}
        # A stored state (~19 KB) is read only for students the batch steps: answers on points the
        # network does not cover (a school's own points, the usual case) need to know only that a
        # current state exists. Those students get a placeholder the steps below never touch.
        stepping = {answers[i].student_id for i, kps in accepted if any(self.skill_of[k] is not None for k in kps)}
        sql = f"SELECT student_id FROM learning_state WHERE model_version = ? AND student_id IN ({_marks(len(sids))})"
        current = [r[0] for r in db.execute(sql, [model.version, *sids])]
        for sid in current:
            if sid not in stepping:
                states[sid] = StudentState(model.version, _EMPTY, _EMPTY, None, 0, 0)
        load = [sid for sid in current if sid in stepping]
        if load:
            sql = f"SELECT student_id, h, c, p, steps, last_answer FROM learning_state WHERE student_id IN ({_marks(len(load))})"
            for sid, h, c, p, steps, last in db.execute(sql, load):
                states[sid] = StudentState(model.version, np.frombuffer(h, dtype=np.float32), np.frombuffer(c, dtype=np.float32),
                                           np.frombuffer(p, dtype=np.float32) if p else None, steps, last)
        # Per student: the network steps still to run, each with the answer it ends (or -1).
        plans: dict[int, list[tuple[int, bool, int]]] = {}
        # Only states this batch changed are written back: a stored state is ~19 KB (five
        # pages), and answers on points the network does not cover (the usual case for a
        # school's own knowledge points) leave it as it was. Rewriting it anyway made a
        # class's pass commit ~1 MB of unchanged pages to the WAL.
        changed: set[int] = set()
        for sid, idx in by_student.items():
            plan: list[tuple[int, bool, int]] = []
            st = states.get(sid)
            for i in idx:
                if st is None:
                    # First answer under this model: replay the history, this answer included.
                    st = states[sid] = _rebuild(db, sid, model, new_ids[i], unwritten.get(sid, ()))
                    plan.append((-1, False, i))
                    changed.add(sid)
                else:
                    skills = sorted({s for k in kps_of[i] if (s := self.skill_of[k]) is not None})
                    plan.extend((s, answers[i].correct, i if j == len(skills) - 1 else -1) for j, s in enumerate(skills))
                    if not skills:
                        plan.append((-1, False, i))
                        continue
                    changed.add(sid)
                st.last_answer = new_ids[i]  # the last answer folded into the state by a step (or the replay)
            plans[sid] = plan
        longest = max(len(p) for p in plans.values())
        for t in range(longest):
            live = [sid for sid in sids if len(plans[sid]) > t and plans[sid][t][0] >= 0]
            if live:
                h = np.stack([states[s].h for s in live])
                c = np.stack([states[s].c for s in live])
                skills = np.array([plans[s][t][0] for s in live], dtype=np.int64)
                correct = np.array([1 if plans[s][t][1] else 0 for s in live], dtype=np.int64)
                p, h2, c2 = model.step_batch(skills, correct, h, c)
                for j, s in enumerate(live):
                    st = states[s]
                    st.p, st.h, st.c = p[j], h2[j], c2[j]
                    st.steps += 1
            for sid in sids:
                if len(plans[sid]) > t and (i := plans[sid][t][2]) >= 0:
                    st = states[sid]
                    if st.p is not None:
                        for k in kps_of[i]:
                            if (s := self.skill_of[k]) is not None:
                                out[i][k] = float(st.p[s])
        now = time.time()
        writes.add(
            """INSERT INTO learning_state (student_id, model_version, h, c, p, steps, last_answer, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(student_id) DO UPDATE SET model_version = excluded.model_version, h = excluded.h, c = excluded.c,
                 p = excluded.p, steps = excluded.steps, last_answer = excluded.last_answer, updated_at = excluded.updated_at""",
            [(sid, st.version, _blob(st.h), _blob(st.c), _blob(st.p) if st.p is not None else b"", st.steps, st.last_answer, now)
             for sid in sids if sid in changed for st in (states[sid],)],
        )

    def update_bkt(self, accepted: list[tuple[int, list[str]]], writes: AnswersPlan) -> None:
        """Points the network does not cover: one BKT update per answer, in order."""
        bkt, out = self.model.bkt, writes.out
        pairs = [(self.answers[i].student_id, k, i) for i, kps in accepted for k in kps if self.skill_of[k] is None]
        if not pairs:
            return
        keys = list({(p[0], p[1]) for p in pairs})
        sql = select_keys("learning_bkt", "student_id, kp_id, p_known", ("student_id", "kp_id"), len(keys))
        known: dict[tuple[int, str], float] = {(sid, kp): p_known for sid, kp, p_known in self.db.execute(sql, [x for key in keys for x in key])}
        counts: dict[tuple[int, str], int] = {}
        for sid, kp, i in pairs:
            p_known = bkt_model.update(known.get((sid, kp), bkt.prior), self.answers[i].correct, bkt)
            known[(sid, kp)] = p_known
            counts[(sid, kp)] = counts.get((sid, kp), 0) + 1
            out[i][kp] = bkt_model.success(p_known, bkt)
        writes.add(
            """INSERT INTO learning_bkt (student_id, kp_id, p_known, answers) VALUES (?, ?, ?, ?)
               ON CONFLICT(student_id, kp_id) DO UPDATE SET p_known = excluded.p_known, answers = answers + excluded.answers""",
            [(sid, kp, known[(sid, kp)], n) for (sid, kp), n in counts.items()],
        )

    def update_progress(self, accepted: list[tuple[int, list[str]]], writes: AnswersPlan) -> None:
        """Each (student, item)'s attempts and its re-practice schedule, answer by answer."""
        answers = self.answers
        keys = list({(answers[i].student_id, answers[i].item_id) for i, _ in accepted})
        rows: dict[tuple[int, str], tuple[float, int, int, int, int, float | None]] = {}
        sql = select_keys("learning_item_progress", "student_id, item_id, attempts, wrong, streak", ("student_id", "item_id"), len(keys))
        current = {(s, it): (n, w, k) for s, it, n, w, k in self.db.execute(sql, [x for key in keys for x in key])}
        for i, _kps in accepted:
            a = answers[i]
            key = (a.student_id, a.item_id)
            attempts, wrong, streak = current.get(key, (0, 0, 0))
            wrong, streak, due = _next_review(bool(a.correct), float(a.at), wrong, streak)
            current[key] = (attempts + 1, wrong, streak)
            rows[key] = (float(a.at), 1 if a.correct else 0, attempts + 1, wrong, streak, due)
        writes.add(
            """INSERT INTO learning_item_progress (student_id, item_id, last_at, last_correct, attempts, wrong, streak, due_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(student_id, item_id) DO UPDATE SET last_at = excluded.last_at, last_correct = excluded.last_correct,
                 attempts = excluded.attempts, wrong = excluded.wrong, streak = excluded.streak, due_at = excluded.due_at""",
            [(s, it, *v) for (s, it), v in rows.items()],
        )


# Re-practice of a wrong item after 1, 3, 7 and 16 days of right answers (expanding spacing).
REVIEW_INTERVALS_S = (86_400.0, 3 * 86_400.0, 7 * 86_400.0, 16 * 86_400.0)


def _next_review(correct: bool, at: float, wrong: int, streak: int) -> tuple[int, int, float | None]:
    """(wrong, streak, due) after one more answer on an item."""
    if not correct:
        return wrong + 1, 0, at + REVIEW_INTERVALS_S[0]
    if wrong:
        streak += 1
        return wrong, streak, (at + REVIEW_INTERVALS_S[streak] if streak < len(REVIEW_INTERVALS_S) else None)
    return wrong, streak, None


# -- reading mastery --------------------------------------------------------------------


@dataclass
class MasteryTable:
    """Mastery of many students at once (the recommender and the heatmap read this)."""

    kp_ids: list[str]
    students: list[int]
    p: np.ndarray  # [students, kps] predicted success
    evidence: np.ndarray  # [students, kps] answers seen


def mastery_table(db: Database, student_ids: Sequence[int], kp_ids: Sequence[str] | None = None) -> MasteryTable:
    model = active_model(db)
    rows = db.execute("SELECT id, model_skill FROM learning_knowledge_points ORDER BY id").fetchall()
    if kp_ids is not None:
        wanted = set(kp_ids)
        rows = [r for r in rows if r[0] in wanted]
    ids = [r[0] for r in rows]
    col = {k: j for j, k in enumerate(ids)}
    prior = bkt_model.success(model.bkt.prior, model.bkt)
    p = np.full((len(student_ids), len(ids)), prior, dtype=np.float32)
    ev = np.zeros((len(student_ids), len(ids)), dtype=np.int32)
    if not student_ids or not ids:
        return MasteryTable(ids, list(student_ids), p, ev)
    srow = {s: i for i, s in enumerate(student_ids)}
    is_net = [r[1] is not None and 0 <= r[1] < model.num_skills for r in rows]
    net_cols = np.array([j for j in range(len(rows)) if is_net[j]], dtype=np.int64)
    net_skills = np.array([rows[j][1] for j in net_cols], dtype=np.int64)
    marks = ",".join("?" * len(student_ids))
    args = tuple(student_ids)
    stale = []
    for sid, version, blob in db.execute(f"SELECT student_id, model_version, p FROM learning_state WHERE student_id IN ({marks})", args):
        if version != model.version:
            stale.append(sid)
        elif blob and len(net_cols):
            p[srow[sid], net_cols] = np.frombuffer(blob, dtype=np.float32)[net_skills]
    if stale and len(net_cols):
        # States from a previous model: recomputed here (a reader holds no write lock, so not saved;
        # each student's next answer stores the rebuilt state).
        for sid, final in _rebuild_many(db, stale, model).items():
            p[srow[sid], net_cols] = final[net_skills]
    for sid, kp, p_known in db.execute(f"SELECT student_id, kp_id, p_known FROM learning_bkt WHERE student_id IN ({marks})", args):
        j = col.get(kp)
        if j is not None and not is_net[j]:
            p[srow[sid], j] = bkt_model.success(p_known, model.bkt)
    for sid, kp, n in db.execute(f"SELECT student_id, kp_id, answers FROM learning_evidence WHERE student_id IN ({marks})", args):
        j = col.get(kp)
        if j is not None:
            ev[srow[sid], j] = n
    return MasteryTable(ids, list(student_ids), p, ev)


def mastery_of(db: Database, student_id: int, kp_ids: Sequence[str] | None = None) -> dict[str, float]:
    t = mastery_table(db, [student_id], kp_ids)
    return {k: float(t.p[0, j]) for j, k in enumerate(t.kp_ids)}


def class_students(db: Database, class_id: int) -> list[int]:
    return [r[0] for r in db.execute("SELECT id FROM students WHERE class_id = ? AND active ORDER BY number, id", (class_id,))]


def snapshot_class(db: Database, class_id: int, mastered: float) -> int:
    """One ``learning.mastery_snapshot`` outbox event per student (pseudonymous id); caller owns the transaction."""
    students = db.execute("SELECT id, pseudo_id FROM students WHERE class_id = ? AND active ORDER BY id", (class_id,)).fetchall()
    if not students:
        return 0
    t = mastery_table(db, [s[0] for s in students])
    model_version = active_model(db).version
    now = time.time()
    for i, (_sid, pseudo) in enumerate(students):
        points = {k: {"p": round(float(t.p[i, j]), 4), "answers": int(t.evidence[i, j])} for j, k in enumerate(t.kp_ids) if t.evidence[i, j] > 0}
        outbox.append(
            db,
            "learning.mastery_snapshot",
            {
                "student": pseudo,
                "class_id": class_id,
                "at": now,
                "model": model_version,
                "mastered": sum(1 for v in points.values() if v["p"] >= mastered),
                "knowledge_points": points,
            },
        )
    return len(students)
