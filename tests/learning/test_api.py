"""The teacher's class map and pushes, the student's own view, snapshots for the district,
and the loop closed through the real quiz API."""

from __future__ import annotations

import json

from edge.learning.service import record_answer
from edge.storage.db import Database, transaction
from tests.hub.support import HubEnv, assert_problem, bearer, student_headers
from tests.quiz.conftest import make_room

from .conftest import students, teacher


def _practice(db: Database, sids: list[int]) -> None:
    t = 1_000.0
    with transaction(db):
        for n, sid in enumerate(sids):
            for i in range(4):
                t += 1
                # the first student gets everything wrong: the one the teacher must see
                record_answer(db, sid, f"m.count-{i}", None, n != 0 and i != 3, t)
                record_answer(db, sid, f"m.shape-{i}", None, n != 0, t)


def test_the_heatmap_shows_points_by_students_with_risk_and_hardest_items(lhub: HubEnv, ldb: Database) -> None:
    sids = students(lhub)
    _practice(ldb, sids[:10])
    r = lhub.client().get(f"/api/v1/classes/{lhub.class_id}/learning/heatmap", headers=teacher(lhub))
    assert r.status_code == 200
    body = r.get_json()
    kps = [k["id"] for k in body["knowledge_points"]]
    assert kps.index("m.count") < kps.index("m.add") < kps.index("m.sub")  # prerequisites first
    assert [s["id"] for s in body["students"]] == sids
    row0 = body["mastery"][0]
    assert row0[kps.index("m.count")] is not None and row0[kps.index("m.add")] is None  # None: no answers yet
    assert len(body["mastery"]) == len(sids) and all(len(r) == len(kps) for r in body["mastery"])
    assert body["at_risk"][0]["student_id"] == sids[0] and "m.shape" in body["at_risk"][0]["weak"]
    assert body["hardest_items"][0]["item_id"] == "m.count-3" and body["hardest_items"][0]["wrong_rate"] == 1.0
    assert body["band"] == {"low": 0.6, "high": 0.85}


def test_another_teachers_class_is_not_found(lhub: HubEnv) -> None:
    r = lhub.client().get(f"/api/v1/classes/{lhub.class_id}/learning/heatmap", headers=bearer(lhub.staff_token("other_teacher")))
    assert_problem(r, 404, "no-such-class")


def test_the_teacher_sets_the_band_and_bad_bands_are_refused(lhub: HubEnv) -> None:
    c = lhub.client()
    url = f"/api/v1/classes/{lhub.class_id}/learning/settings"
    assert c.put(url, headers=teacher(lhub), json={"band_low": 0.5, "band_high": 0.8}).status_code == 200
    heat = c.get(f"/api/v1/classes/{lhub.class_id}/learning/heatmap", headers=teacher(lhub)).get_json()
    assert heat["band"] == {"low": 0.5, "high": 0.8}
    bad_bands = (
        {"band_low": 0.8, "band_high": 0.5},
        {"band_low": 0, "band_high": 0.5},
        {"band_low": 0.5, "band_high": 1.2},
        {"band_low": "0.5", "band_high": 0.8},
    )
    for bad in bad_bands:
        assert_problem(c.put(url, headers=teacher(lhub), json=bad), 422)
    recs = c.get(f"/api/v1/classes/{lhub.class_id}/learning/recommendations?n=3", headers=teacher(lhub)).get_json()["students"]
    assert all(len(s["exercises"]) == 3 for s in recs)


def test_assign_pushes_each_student_their_own_list_and_snapshots_to_the_outbox(lhub: HubEnv, ldb: Database) -> None:
    sids = students(lhub)
    _practice(ldb, sids[:3])
    before = lhub.count("outbox", "type = 'learning.mastery_snapshot'")
    r = lhub.client().post(f"/api/v1/classes/{lhub.class_id}/learning/assign", headers=teacher(lhub), json={"n": 4})
    assert r.status_code == 201, r.get_json()
    assert r.get_json() == {"students": len(sids), "exercises": 4 * len(sids), "snapshots": len(sids)}
    events = lhub.sql("SELECT channel, data FROM live_events WHERE type = 'learning.exercises' ORDER BY id")
    assert [c for c, _ in events] == [f"student:{s}" for s in sids]  # each on the student's own channel
    assert len(json.loads(events[0][1])["exercises"]) == 4
    snaps = lhub.sql("SELECT payload FROM outbox WHERE type = 'learning.mastery_snapshot' ORDER BY seq")
    assert len(snaps) == before + len(sids)
    first = json.loads(snaps[before][0])
    pseudo = lhub.sql("SELECT pseudo_id FROM students WHERE id = ?", (sids[0],))[0][0]
    assert first["student"] == pseudo and "name" not in first  # pseudonymous, no names for the district
    assert set(first["knowledge_points"]) == {"m.count", "m.shape"} and first["model"]


def test_a_student_sees_only_their_own_progress_and_exercises(lhub: HubEnv, ldb: Database) -> None:
    tablet = lhub.enrol(name="t1")
    token = lhub.sign_in(tablet, "01")
    me = lhub.student("01")[0]
    _practice(ldb, [me, students(lhub)[1]])
    r = lhub.client().get("/api/v1/me/learning", headers=student_headers(token, tablet.token))
    assert r.status_code == 200
    body = r.get_json()
    count = next(k for k in body["knowledge_points"] if k["id"] == "m.count")
    assert count["answers"] == 4 and 0 < count["p"] < 1
    assert body["total"] >= 5 and 0 < len(body["exercises"]) <= 5
    text = r.get_data(as_text=True)
    other_name = lhub.sql("SELECT name FROM students WHERE id = ?", (students(lhub)[1],))[0][0]
    assert other_name not in text and "student_id" not in text


def test_the_loop_closes_through_the_quiz(hub: HubEnv) -> None:
    room = make_room(hub, n_students=2)
    item = room.item(type="single", stem="3+4=?", options=["6", "7"], key={"choices": [1]}, knowledge_points=["十以内加法"], difficulty=2)
    session = room.start([item])
    good, bad = room.pupils
    assert room.answer(good, session, item, {"choices": [1]}).status_code in (200, 201)
    assert room.answer(bad, session, item, {"choices": [0]}).status_code in (200, 201)
    hub.learning_applied()
    rows = dict(hub.sql("SELECT student_id, correct FROM learning_evidence WHERE kp_id = '十以内加法'"))
    assert rows == {good.student_id: 1, bad.student_id: 0}
    heat = hub.client().get(f"/api/v1/classes/{hub.class_id}/learning/heatmap", headers=room.teacher).get_json()
    col = [k["id"] for k in heat["knowledge_points"]].index("十以内加法")
    by_student = {s["id"]: row[col] for s, row in zip(heat["students"], heat["mastery"], strict=True)}
    assert by_student[good.student_id] > by_student[bad.student_id]
