"""A group commit hands learning every graded answer of the batch in one call
(``record_answers``): the result must be exactly that of the answers one by one."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.learning.service import Answer, mastery_of, record_answer, record_answers
from edge.storage.db import Database, connect, transaction
from tests.hub.support import HubEnv

from .conftest import students

TABLES = {
    "learning_answers": "SELECT answer_id, student_id, item_id, kps, correct, at FROM learning_answers ORDER BY id",
    "learning_state": "SELECT student_id, model_version, h, c, p, steps, last_answer FROM learning_state ORDER BY student_id",
    "learning_bkt": "SELECT student_id, kp_id, p_known, answers FROM learning_bkt ORDER BY student_id, kp_id",
    "learning_evidence": "SELECT student_id, kp_id, answers, correct, last_at FROM learning_evidence ORDER BY student_id, kp_id",
    "learning_item_progress": "SELECT student_id, item_id, last_at, last_correct, attempts, wrong, streak, due_at"
                              " FROM learning_item_progress ORDER BY student_id, item_id",
}


def _answers(sids: list[int], n: int, seed: int) -> list[Answer]:
    """A class's answers: several per student in one batch, network and BKT points, multi-point items,
    repeats of the same item, a retried id and answers learning must refuse."""
    rng = random.Random(seed)
    items = [f"{p}-{i}" for p in ("m.count", "m.add", "m.sub", "m.mul", "m.shape") for i in range(6)]
    out = []
    for k in range(n):
        sid = rng.choice(sids)
        roll = rng.random()
        if roll < 0.15:
            out.append(Answer(sid, rng.choice(items), ["m.add", "m.shape", "m.count"], rng.random() < 0.6, 1_000.0 + k, f"a{k}"))
        elif roll < 0.2 and out:
            prev = rng.choice(out)
            out.append(Answer(prev.student_id, prev.item_id, prev.knowledge_points, not prev.correct, 1_000.0 + k, prev.answer_id))
        elif roll < 0.23:
            out.append(Answer(sid, "no-such-item", None, True, 1_000.0 + k, f"a{k}"))
        elif roll < 0.25:
            out.append(Answer(sid, rng.choice(items), ["m.nowhere"], True, 1_000.0 + k, f"a{k}"))
        elif roll < 0.27:
            out.append(Answer(999_999, rng.choice(items), None, True, 1_000.0 + k, f"a{k}"))
        else:
            out.append(Answer(sid, rng.choice(items[: 8 + k % 22]), None, rng.random() < 0.65, 1_000.0 + k, f"a{k}" if k % 7 else None))
    return out


def _dump(db: Database) -> dict[str, list[tuple[object, ...]]]:
    return {name: [tuple(r) for r in db.execute(sql).fetchall()] for name, sql in TABLES.items()}


def _copy(src: Path, dst: Path) -> Database:
    shutil.copy(src, dst)
    return connect(dst)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_batch_equals_the_same_answers_one_by_one(lhub: HubEnv, ldb: Database, tmp_path: Path, seed: int) -> None:
    sids = students(lhub)[:12]
    ldb.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    one = _copy(lhub.config.db_path, tmp_path / "one.sqlite3")
    many = _copy(lhub.config.db_path, tmp_path / "many.sqlite3")
    try:
        # Some history first (so states exist), then the batch.
        warm = _answers(sids[:6], 20, seed + 100)
        for db in (one, many):
            with transaction(db):
                for a in warm:
                    record_answer(db, a.student_id, a.item_id, a.knowledge_points, a.correct, a.at, answer_id=a.answer_id)
        batch = _answers(sids, 150, seed)
        singles, repeats = [], []
        with transaction(one):
            for a in batch:
                known = a.answer_id is not None and one.execute("SELECT 1 FROM learning_answers WHERE answer_id = ?", (a.answer_id,)).fetchone()
                repeats.append(bool(known))
                singles.append(record_answer(one, a.student_id, a.item_id, a.knowledge_points, a.correct, a.at, answer_id=a.answer_id))
        with transaction(many):
            together = record_answers(many, batch)
        assert len(together) == len(singles)
        assert any(repeats), "the batch holds no retried id"
        for a, repeat, got, want in zip(batch, repeats, together, singles, strict=True):
            if repeat:
                # A retried id changes nothing; the batch reports the mastery once it is all recorded.
                want = mastery_of(many, a.student_id, list(want))
            assert got.keys() == want.keys()
            for k in want:
                assert got[k] == pytest.approx(want[k], abs=1e-5)
        a_rows, b_rows = _dump(one), _dump(many)
        for name in TABLES:
            assert len(a_rows[name]) == len(b_rows[name]), name
            for ra, rb in zip(a_rows[name], b_rows[name], strict=True):
                for x, y in zip(ra, rb, strict=True):
                    if isinstance(x, bytes) and name == "learning_state":
                        np.testing.assert_allclose(np.frombuffer(x, np.float32), np.frombuffer(y, np.float32), atol=1e-5)
                    elif isinstance(x, float):
                        assert x == pytest.approx(y, abs=1e-6), name
                    else:
                        assert x == y, name
        assert a_rows["learning_answers"], "the batch recorded nothing"
    finally:
        one.conn.close()
        many.conn.close()


def test_a_refused_answer_in_a_batch_writes_nothing_for_it(lhub: HubEnv, ldb: Database) -> None:
    sid = students(lhub)[0]
    with transaction(ldb):
        out = record_answers(ldb, [Answer(sid, "m.count-1", None, True, 1.0, "x1"), Answer(sid, "nope", None, True, 2.0, "x2"),
                                   Answer(sid, "m.add-1", ["m.missing"], True, 3.0, "x3")])
    assert out[0] and out[1] == {} and out[2] == {}
    assert [r[0] for r in ldb.execute("SELECT answer_id FROM learning_answers")] == ["x1"]


def test_answers_the_network_does_not_cover_leave_the_stored_state_unwritten(lhub: HubEnv, ldb: Database) -> None:
    sid = students(lhub)[0]
    state_sql = "SELECT h, c, p, steps, last_answer, updated_at FROM learning_state WHERE student_id = ?"
    with transaction(ldb):
        record_answers(ldb, [Answer(sid, "m.count-1", ["m.count"], True, 1.0, "s1")])
    first = ldb.execute(state_sql, (sid,)).fetchone()
    s1 = ldb.execute("SELECT id FROM learning_answers WHERE answer_id = 's1'").fetchone()[0]
    assert first[3] == 1 and first[4] == s1

    # "m.shape" has no network skill: BKT and evidence learn from these, the ~19 KB state row is
    # neither read nor rewritten.
    statements: list[str] = []
    ldb.conn.set_trace_callback(statements.append)
    try:
        with transaction(ldb):
            record_answers(ldb, [Answer(sid, "m.shape-1", ["m.shape"], True, 2.0, "s2"), Answer(sid, "m.shape-2", ["m.shape"], False, 3.0, "s3")])
    finally:
        ldb.conn.set_trace_callback(None)
    state_reads = [q for q in statements if "FROM learning_state" in q]
    assert state_reads and not [q for q in state_reads if " h," in q or " p," in q], state_reads
    assert ldb.execute(state_sql, (sid,)).fetchone() == first
    assert ldb.execute("SELECT answers FROM learning_evidence WHERE student_id = ? AND kp_id = 'm.shape'", (sid,)).fetchone() == (2,)

    # The next answer the network does cover steps the state from where it was.
    with transaction(ldb):
        record_answers(ldb, [Answer(sid, "m.add-1", ["m.add", "m.shape"], False, 4.0, "s4")])
    after = ldb.execute(state_sql, (sid,)).fetchone()
    s4 = ldb.execute("SELECT id FROM learning_answers WHERE answer_id = 's4'").fetchone()[0]
    assert after[3] == 2 and after[4] == s4 and after[0] != first[0]
