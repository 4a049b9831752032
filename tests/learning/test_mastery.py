"""Mastery kept answer by answer: one network step per answer, BKT where the network
has no skill, cold start, and bad answers refused without a trace."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.learning import bkt, registry
from edge.learning.errors import UnknownItem, UnknownKnowledgePoint, UnknownStudent
from edge.learning.service import mastery_of, mastery_table, record_answer, register_items
from edge.storage.db import Database, transaction
from tests.hub.support import HubEnv

from .conftest import students


def _answer(db: Database, sid: int, item: str, correct: bool, at: float = 1_000.0, **kw: object) -> dict[str, float]:
    with transaction(db):
        return record_answer(db, sid, item, None, correct, at, **kw)


def test_a_cold_start_student_has_the_prior_everywhere(lhub: HubEnv, ldb: Database) -> None:
    sid = students(lhub)[0]
    model = registry.active_model(ldb)
    prior = bkt.success(model.bkt.prior, model.bkt)
    m = mastery_of(ldb, sid)
    assert {"m.count", "m.add", "m.sub", "m.mul", "m.shape"} <= set(m)
    assert all(v == pytest.approx(prior, abs=1e-6) for v in m.values())
    assert mastery_table(ldb, [sid]).evidence.sum() == 0


def test_right_answers_raise_and_wrong_answers_lower_mastery(lhub: HubEnv, ldb: Database) -> None:
    a, b = students(lhub)[:2]
    for _ in range(6):
        up = _answer(ldb, a, "m.count-2", True)
        down = _answer(ldb, b, "m.count-2", False)
    assert up["m.count"] > down["m.count"] + 0.25
    assert mastery_of(ldb, a)["m.count"] == pytest.approx(up["m.count"], abs=1e-6)


def test_one_answer_is_one_incremental_step_equal_to_a_full_replay(lhub: HubEnv, ldb: Database) -> None:
    sid = students(lhub)[0]
    pattern = [("m.count-1", True), ("m.add-2", False), ("m.count-3", True), ("m.add-2", True), ("m.sub-1", False), ("m.mul-0", True)]
    for i, (item, ok) in enumerate(pattern):
        _answer(ldb, sid, item, ok, at=1_000.0 + i)
        steps = ldb.execute("SELECT steps FROM learning_state WHERE student_id = ?", (sid,)).fetchone()[0]
        assert steps == i + 1  # the stored state advanced by exactly one step
    # Replaying the history from scratch through the model gives the same state.
    model = registry.active_model(ldb)
    h, c = model.zero_state()
    skill = {"m.count": 10, "m.add": 11, "m.sub": 12, "m.mul": 13}
    for item, ok in pattern:
        p, h, c = model.step(skill[item.rsplit("-", 1)[0]], ok, h, c)
    stored = np.frombuffer(ldb.execute("SELECT p FROM learning_state WHERE student_id = ?", (sid,)).fetchone()[0], dtype=np.float32)
    np.testing.assert_allclose(stored, p, atol=1e-6)


def test_points_the_network_lacks_follow_bkt(lhub: HubEnv, ldb: Database) -> None:
    sid = students(lhub)[0]
    model = registry.active_model(ldb)
    p_known = model.bkt.prior
    for ok in (True, True, False, True):
        got = _answer(ldb, sid, "m.shape-2", ok)["m.shape"]
        p_known = bkt.update(p_known, ok, model.bkt)
        assert got == pytest.approx(bkt.success(p_known, model.bkt), abs=1e-9)
    # The network state did not move: the answer touched no network skill.
    assert ldb.execute("SELECT steps FROM learning_state WHERE student_id = ?", (sid,)).fetchone()[0] == 0


def test_a_skill_beyond_the_model_falls_back_to_bkt(lhub: HubEnv, ldb: Database) -> None:
    from edge.learning.graph import KnowledgePoint, import_points

    with transaction(ldb):
        import_points(ldb, [KnowledgePoint("m.far", "远", "math", 9999)], "district")
        register_items(ldb, [{"uid": "far-1", "knowledge_points": ["m.far"], "difficulty": 3, "type": "single"}])
    sid = students(lhub)[0]
    got = _answer(ldb, sid, "far-1", True)
    model = registry.active_model(ldb)
    assert got["m.far"] == pytest.approx(bkt.success(bkt.update(model.bkt.prior, True, model.bkt), model.bkt))


def test_quiz_items_register_with_their_tags_as_new_points(lhub: HubEnv, ldb: Database) -> None:
    with transaction(ldb):
        register_items(ldb, [{"uid": "q-uid-1", "knowledge_points": ["分数加法", "m.add"], "difficulty": 5, "type": "single"}])
    row = ldb.execute("SELECT difficulty, tier FROM learning_items WHERE id = 'q-uid-1'").fetchone()
    assert row == (1.0, "extension")
    assert ldb.execute("SELECT source, model_skill FROM learning_knowledge_points WHERE id = '分数加法'").fetchone() == ("quiz", None)
    sid = students(lhub)[0]
    got = _answer(ldb, sid, "q-uid-1", True)
    assert set(got) == {"分数加法", "m.add"}


def test_a_retried_answer_counts_once(lhub: HubEnv, ldb: Database) -> None:
    sid = students(lhub)[0]
    first = _answer(ldb, sid, "m.count-1", True, answer_id="a-1")
    again = _answer(ldb, sid, "m.count-1", True, answer_id="a-1")
    assert again["m.count"] == pytest.approx(first["m.count"], abs=1e-6)
    assert lhub.count("learning_answers", "student_id = ?", (sid,)) == 1


@pytest.mark.parametrize(
    ("student", "item", "kps", "error"),
    [
        (None, "no-such-item", None, UnknownItem),
        (None, "m.count-1", ["no.such.point"], UnknownKnowledgePoint),
        (None, "m.count-1", [], UnknownKnowledgePoint),
        (987654, "m.count-1", None, UnknownStudent),
    ],
)
def test_bad_answers_change_nothing(lhub: HubEnv, ldb: Database, student: int | None, item: str, kps: list[str] | None, error: type) -> None:
    sid = student or students(lhub)[0]
    _answer(ldb, students(lhub)[0], "m.count-1", True)
    before = lhub.snapshot()
    with pytest.raises(error) as err, transaction(ldb):
        record_answer(ldb, sid, item, kps, True, 2_000.0, strict=True)
    assert str(err.value)  # a sentence for people
    # The quiz's grading path (not strict) must not fail: nothing is written, the grade stands.
    with transaction(ldb):
        assert record_answer(ldb, sid, item, kps, True, 2_000.0) == {}
    assert lhub.snapshot() == before


def test_answers_survive_in_the_history_for_replay(lhub: HubEnv, ldb: Database) -> None:
    sid = students(lhub)[0]
    _answer(ldb, sid, "m.add-1", False, at=5.0)
    row = ldb.execute("SELECT item_id, kps, correct, at FROM learning_answers WHERE student_id = ?", (sid,)).fetchone()
    assert row[0] == "m.add-1" and json.loads(row[1]) == ["m.add"] and row[2] == 0 and row[3] == 5.0


def test_a_state_stored_by_an_older_model_is_replayed_under_the_bundled_one(lhub: HubEnv, ldb: Database) -> None:
    # A hub upgraded from dkt-2 (h 200, c 820 floats) keeps those rows; the new model must not read them.
    sid = students(lhub)[0]
    for i, ok in enumerate([True, False, True]):
        _answer(ldb, sid, "m.add-1", ok, at=1_000.0 + i)
    model = registry.active_model(ldb)
    old_h, old_c = np.zeros(200, dtype=np.float32).tobytes(), np.ones(820, dtype=np.float32).tobytes()
    with transaction(ldb):
        ldb.conn.execute("UPDATE learning_state SET model_version = 'dkt-2', h = ?, c = ?, steps = 3 WHERE student_id = ?", (old_h, old_c, sid))
    after = _answer(ldb, sid, "m.add-1", True, at=1_010.0)
    h, c = model.zero_state()
    for ok in (True, False, True, True):
        p, h, c = model.step(11, ok, h, c)
    assert after["m.add"] == pytest.approx(float(p[11]), abs=1e-6)
    version, steps, hb, cb = ldb.execute("SELECT model_version, steps, h, c FROM learning_state WHERE student_id = ?", (sid,)).fetchone()
    assert (version, steps, len(hb), len(cb)) == (model.version, 4, model.state_widths[0] * 4, model.state_widths[1] * 4)
