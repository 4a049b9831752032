"""Mastery per student and knowledge point, kept up to date answer by answer.

``record_answer`` is the interface for the quiz capability: it is called inside
the quiz's grading transaction and costs one step of the network per knowledge
point the answer touches (the student's recurrent state is stored, never
recomputed), plus a BKT update for points the network does not cover.

Mastery is reported as the predicted probability that the student's next
answer on that knowledge point is right, for both kinds of model, so a band
such as 0.6-0.85 means the same thing everywhere.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge import outbox
from edge.learning import bkt as bkt_model
from edge.learning.errors import LearningError, UnknownItem, UnknownKnowledgePoint, UnknownStudent
from edge.learning.kt_model import KTModel
from edge.learning.registry import active_model
from edge.storage.db import Database

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


def _blob(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype=np.float32).tobytes()


def _load_state(db: Database, student_id: int, model: KTModel) -> StudentState | None:
    row = db.execute("SELECT model_version, h, c, p, steps, last_answer FROM learning_state WHERE student_id = ?", (student_id,)).fetchone()
    if row is None or row[0] != model.version:
        return None
    p = np.frombuffer(row[3], dtype=np.float32) if row[3] else None
    return StudentState(row[0], np.frombuffer(row[1], dtype=np.float32), np.frombuffer(row[2], dtype=np.float32), p, row[4], row[5])


def _save_state(db: Database, student_id: int, st: StudentState) -> None:
    db.conn.execute(
        """INSERT INTO learning_state (student_id, model_version, h, c, p, steps, last_answer, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(student_id) DO UPDATE SET model_version = excluded.model_version, h = excluded.h, c = excluded.c,
             p = excluded.p, steps = excluded.steps, last_answer = excluded.last_answer, updated_at = excluded.updated_at""",
        (student_id, st.version, _blob(st.h), _blob(st.c), _blob(st.p) if st.p is not None else b"", st.steps, st.last_answer, time.time()),
    )


def _kp_skills(db: Database, kp_ids: Sequence[str], model: KTModel) -> dict[str, int | None]:
    marks = ",".join("?" * len(kp_ids))
    rows = db.execute(f"SELECT id, model_skill FROM learning_knowledge_points WHERE id IN ({marks})", tuple(kp_ids)).fetchall()
    found = {r[0]: (r[1] if r[1] is not None and 0 <= r[1] < model.num_skills else None) for r in rows}
    missing = [k for k in kp_ids if k not in found]
    if missing:
        raise UnknownKnowledgePoint(f"unknown knowledge point {missing[0]!r}")
    return found


def _step(model: KTModel, st: StudentState, skills: Iterable[int], correct: bool) -> None:
    for skill in sorted(set(skills)):
        st.p, st.h, st.c = model.step(skill, correct, st.h, st.c)
        st.steps += 1


def _rebuild(db: Database, student_id: int, model: KTModel, upto: int) -> StudentState:
    """Replay the student's history through ``model`` (after a model swap, or the first time)."""
    h, c = model.zero_state()
    st = StudentState(model.version, h, c, None, 0, 0)
    rows = db.execute("SELECT id, kps, correct FROM learning_answers WHERE student_id = ? AND id <= ? ORDER BY id", (student_id, upto)).fetchall()
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
    try:
        return _record(db, student_id, item_id, knowledge_points, correct, at, answer_id)
    except LearningError as err:
        if strict:
            raise
        log.warning("answer not used for mastery", extra={"student_id": student_id, "item_id": item_id, "reason": str(err)})
        return {}


def _record(
    db: Database, student_id: int, item_id: str, knowledge_points: Sequence[str] | None, correct: bool, at: float, answer_id: str | None
) -> dict[str, float]:
    if db.execute("SELECT 1 FROM students WHERE id = ?", (student_id,)).fetchone() is None:
        raise UnknownStudent(f"no student with id {student_id}")
    if db.execute("SELECT 1 FROM learning_items WHERE id = ?", (item_id,)).fetchone() is None:
        raise UnknownItem(f"no exercise {item_id!r} in the learning catalogue (register it first)")
    if knowledge_points is None:
        kps = [r[0] for r in db.execute("SELECT kp_id FROM learning_item_kps WHERE item_id = ? ORDER BY kp_id", (item_id,))]
    else:
        kps = list(dict.fromkeys(knowledge_points))
    if not kps or len(kps) > MAX_KPS_PER_ITEM:
        raise UnknownKnowledgePoint(f"an answer must name 1-{MAX_KPS_PER_ITEM} knowledge points")
    model = active_model(db)
    skill_of = _kp_skills(db, kps, model)
    if answer_id is not None:
        if db.execute("SELECT 1 FROM learning_answers WHERE answer_id = ?", (answer_id,)).fetchone():
            return mastery_of(db, student_id, kps)
    cur = db.conn.execute(
        "INSERT INTO learning_answers (answer_id, student_id, item_id, kps, correct, at) VALUES (?, ?, ?, ?, ?, ?)",
        (answer_id, student_id, item_id, json.dumps(kps, ensure_ascii=False), 1 if correct else 0, float(at)),
    )
    new_id = int(cur.lastrowid or 0)
    out: dict[str, float] = {}
    net_kps = [k for k in kps if skill_of[k] is not None]
    st = _load_state(db, student_id, model)
    if st is None:
        st = _rebuild(db, student_id, model, new_id)  # includes this answer
    elif net_kps:
        _step(model, st, [skill_of[k] for k in net_kps], correct)  # type: ignore[misc]
        st.last_answer = new_id
    else:
        st.last_answer = new_id
    _save_state(db, student_id, st)
    if st.p is not None:
        for k in net_kps:
            out[k] = float(st.p[skill_of[k]])  # type: ignore[index]
    for k in kps:
        if skill_of[k] is None:
            row = db.execute("SELECT p_known FROM learning_bkt WHERE student_id = ? AND kp_id = ?", (student_id, k)).fetchone()
            p_known = bkt_model.update(row[0] if row else model.bkt.prior, correct, model.bkt)
            db.conn.execute(
                """INSERT INTO learning_bkt (student_id, kp_id, p_known, answers) VALUES (?, ?, ?, 1)
                   ON CONFLICT(student_id, kp_id) DO UPDATE SET p_known = excluded.p_known, answers = answers + 1""",
                (student_id, k, p_known),
            )
            out[k] = bkt_model.success(p_known, model.bkt)
    _progress(db, student_id, item_id, bool(correct), float(at))
    db.conn.executemany(
        """INSERT INTO learning_evidence (student_id, kp_id, answers, correct, last_at) VALUES (?, ?, 1, ?, ?)
           ON CONFLICT(student_id, kp_id) DO UPDATE SET answers = answers + 1, correct = correct + excluded.correct, last_at = excluded.last_at""",
        [(student_id, k, 1 if correct else 0, float(at)) for k in kps],
    )
    return out


# Re-practice of a wrong item after 1, 3, 7 and 16 days of right answers (expanding spacing).
REVIEW_INTERVALS_S = (86_400.0, 3 * 86_400.0, 7 * 86_400.0, 16 * 86_400.0)


def _progress(db: Database, student_id: int, item_id: str, correct: bool, at: float) -> None:
    row = db.execute("SELECT attempts, wrong, streak FROM learning_item_progress WHERE student_id = ? AND item_id = ?", (student_id, item_id)).fetchone()
    attempts, wrong, streak = row if row else (0, 0, 0)
    if not correct:
        wrong, streak, due = wrong + 1, 0, at + REVIEW_INTERVALS_S[0]
    elif wrong:
        streak += 1
        due = at + REVIEW_INTERVALS_S[streak] if streak < len(REVIEW_INTERVALS_S) else None
    else:
        due = None
    db.conn.execute(
        """INSERT INTO learning_item_progress (student_id, item_id, last_at, last_correct, attempts, wrong, streak, due_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(student_id, item_id) DO UPDATE SET last_at = excluded.last_at, last_correct = excluded.last_correct,
             attempts = excluded.attempts, wrong = excluded.wrong, streak = excluded.streak, due_at = excluded.due_at""",
        (student_id, item_id, at, 1 if correct else 0, attempts + 1, wrong, streak, due),
    )


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
