"""Live sessions through the real API: answers idempotent by client id, graded on the hub,
xAPI statements in the same transaction, keys only after close, bad answers refused."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import uuid

from tests.hub.support import assert_problem

from .conftest import SECRET_EXPLANATION, SECRET_FILL, Pupil, QuizRoom, make_room


def _items(room: QuizRoom) -> tuple[int, int]:
    single = room.item(type="single", stem="2+2=?", options=["3", "4", "5"], key={"choices": [1]}, explanation=SECRET_EXPLANATION,
                       knowledge_points=["加法"], difficulty=1)
    fill = room.item(type="fill", stem="暗号是？", key={"blanks": [[SECRET_FILL]]}, explanation=SECRET_EXPLANATION)
    return single, fill


def test_answer_is_graded_once_and_a_retry_gets_the_same_ack(room: QuizRoom) -> None:
    single, fill = _items(room)
    sid = room.start([single, fill])
    p = room.pupils[0]
    cid = str(uuid.uuid4())
    body_time = time.time()
    first = room.answer(p, sid, single, {"choices": [1]}, client_id=cid, answered_at=body_time)
    assert first.status_code == 201, first.get_json()
    again = room.answer(p, sid, single, {"choices": [1]}, client_id=cid, answered_at=body_time, sent_at=body_time + 30)
    assert again.status_code == 200 and again.get_json() == first.get_json()
    ack = first.get_json()
    assert set(ack) == {"client_id", "session_id", "item_id", "status", "received_at"}  # nothing about correctness
    assert room.env.count("quiz_answers") == 1
    assert room.env.sql("SELECT correct, score FROM quiz_answers") == [(1, 1.0)]
    # a replayed id with different content is a conflict and changes nothing
    before = room.env.snapshot()
    assert_problem(room.answer(p, sid, single, {"choices": [2]}, client_id=cid, answered_at=body_time), 409, "replayed-id")
    assert room.env.snapshot() == before


def test_a_retry_of_an_answer_stored_before_the_digest_changed_is_still_a_retry(room: QuizRoom) -> None:
    # Answers acknowledged by an older hub carry the first form of the request digest (no "2:"
    # prefix); a tablet resending one after the upgrade must get its ack, not a conflict.
    single, _ = _items(room)
    sid = room.start([single])
    p = room.pupils[0]
    cid, t = str(uuid.uuid4()), time.time()
    first = room.answer(p, sid, single, {"choices": [1]}, client_id=cid, answered_at=t)
    assert first.status_code == 201
    stored = room.env.sql("SELECT request_sha FROM quiz_submissions WHERE client_id = ?", (cid,))[0][0]
    assert stored.startswith("2:")
    legacy = hashlib.sha256(json.dumps([sid, single, p.student_id, {"choices": [1]}, False, t], sort_keys=True, ensure_ascii=False)
                            .encode()).hexdigest()
    with sqlite3.connect(room.env.config.db_path) as conn:
        conn.execute("UPDATE quiz_submissions SET request_sha = ? WHERE client_id = ?", (legacy, cid))
    assert room.env.sql("SELECT request_sha FROM quiz_submissions WHERE client_id = ?", (cid,))[0][0] == legacy
    again = room.answer(p, sid, single, {"choices": [1]}, client_id=cid, answered_at=t, sent_at=t + 5)
    assert again.status_code == 200 and again.get_json() == first.get_json()
    assert_problem(room.answer(p, sid, single, {"choices": [2]}, client_id=cid, answered_at=t), 409, "replayed-id")


def test_every_graded_answer_writes_one_xapi_statement(room: QuizRoom) -> None:
    single, _ = _items(room)
    sid = room.start([single])
    p = room.pupils[0]
    cid = str(uuid.uuid4())
    room.answer(p, sid, single, {"choices": [0]}, client_id=cid)
    room.answer(p, sid, single, {"choices": [0]}, client_id=cid)  # retry: no second statement
    rows = room.env.sql("SELECT event_id, type, payload FROM outbox WHERE type = 'xapi.statement'")
    assert len(rows) == 1
    event_id, _, payload = rows[0]
    st = json.loads(payload)
    assert st["id"] == event_id and uuid.UUID(st["id"])
    assert st["verb"]["id"] == "http://adlnet.gov/expapi/verbs/answered"
    assert st["result"] == {"success": False, "response": "0", "score": {"raw": 0.0, "min": 0.0, "max": 1.0, "scaled": 0.0}}
    assert st["object"]["definition"]["type"] == "http://adlnet.gov/expapi/activities/cmi.interaction"
    assert st["object"]["definition"]["interactionType"] == "choice"
    reg = room.env.sql("SELECT uuid FROM quiz_sessions WHERE id = ?", (sid,))[0][0]
    assert st["context"]["registration"] == reg
    assert st["timestamp"].endswith("+08:00")  # the school's time zone, with offset
    pseudo = room.env.sql("SELECT pseudo_id FROM students WHERE id = ?", (p.student_id,))[0][0]
    assert st["actor"]["account"]["name"] == pseudo and "name" not in st["actor"]


def test_answer_changes_until_submit_and_late_old_changes_do_not_win(room: QuizRoom) -> None:
    single, _ = _items(room)
    sid = room.start([single])
    p = room.pupils[0]
    t0 = time.time()
    assert room.answer(p, sid, single, {"choices": [0]}, answered_at=t0).status_code == 201
    assert room.answer(p, sid, single, {"choices": [1]}, answered_at=t0 + 2, sent_at=t0 + 2).status_code == 201
    # an earlier change, queued offline, arrives last: recorded, but the answer stays the newer one
    late = room.answer(p, sid, single, {"choices": [2]}, answered_at=t0 + 1, sent_at=t0 + 10)
    assert late.status_code == 201 and late.get_json()["status"] == "superseded"
    assert room.env.sql("SELECT response, changes FROM quiz_answers") == [('{"choices":[1]}', 1)]
    assert room.answer(p, sid, single, {"choices": [1]}, final=True).status_code == 201
    assert_problem(room.answer(p, sid, single, {"choices": [0]}), 409, "already-submitted")


def test_no_changes_when_the_teacher_says_so(room: QuizRoom) -> None:
    single, _ = _items(room)
    sid = room.start([single], allow_change=False)
    p = room.pupils[0]
    assert room.answer(p, sid, single, {"choices": [0]}).status_code == 201
    assert_problem(room.answer(p, sid, single, {"choices": [1]}), 409, "no-changes")


def test_bad_answers_are_refused_and_change_nothing(room: QuizRoom) -> None:
    single, fill = _items(room)
    sid = room.start([single])
    other = room.start([fill])
    room.t("post", f"/api/v1/quiz/sessions/{other}/close", json={})
    a, b = room.pupils[0], room.pupils[1]
    before = room.env.snapshot()
    assert_problem(room.answer(a, sid, 999999, {"choices": [1]}), 404, "no-such-question")
    assert_problem(room.answer(a, 999999, single, {"choices": [1]}), 404, "no-such-question")
    assert_problem(room.answer(a, sid, fill, {"blanks": ["x"]}), 404, "no-such-question")  # not in this session
    assert_problem(room.answer(a, other, fill, {"blanks": ["x"]}), 409, "question-closed")
    wrong = room.s(a, "post", "/api/v1/quiz/answers", json={"client_id": str(uuid.uuid4()), "session_id": sid, "item_id": single,
                                                            "student_id": b.student_id, "response": {"choices": [1]}, "answered_at": time.time()})
    assert_problem(wrong, 409, "wrong-student")
    assert_problem(room.answer(a, sid, single, {"choices": [7]}), 422, "bad-answer")
    assert_problem(room.answer(a, sid, single, {"value": True}), 422, "bad-answer")
    assert_problem(room.answer(a, sid, single, {"choices": [1]}, client_id="not-a-uuid"), 422)
    assert room.env.snapshot() == before


def test_another_class_cannot_answer(room: QuizRoom) -> None:
    env = room.env
    single, _ = _items(room)
    sid = room.start([single])
    tablet = env.enrol(class_id=env.other_class_id, name="other-class")
    token = env.sign_in(tablet, "B01")
    from tests.hub.support import student_headers

    from .conftest import Pupil
    outsider = Pupil(env.student("B01")[0], student_headers(token, tablet.token), "B01")
    assert_problem(room.answer(outsider, sid, single, {"choices": [1]}), 404, "no-such-question")
    assert outsider.student_id not in [r[0] for r in env.sql("SELECT student_id FROM quiz_answers")]
    current = room.s(outsider, "get", "/api/v1/quiz/current").get_json()
    assert current["sessions"] == []
    assert_problem(room.s(outsider, "get", f"/api/v1/quiz/sessions/{sid}/mine"), 404)


def test_offline_answer_made_before_close_is_accepted_within_grace(room: QuizRoom) -> None:
    single, fill = _items(room)
    sid = room.start([single, fill], grace_s=60)
    a, b, c = room.pupils
    made = time.time()
    room.t("post", f"/api/v1/quiz/sessions/{sid}/close", json={})
    # a: the tablet says it answered 5 s before sending: that was before the close
    time.sleep(0.05)
    r = room.answer(a, sid, single, {"choices": [1]}, answered_at=made - 100, sent_at=made - 95 + 0.0)
    assert r.status_code == 201, r.get_json()
    # b: answered after the close (sent right away): refused
    now = time.time()
    assert_problem(room.answer(b, sid, single, {"choices": [1]}, answered_at=now, sent_at=now), 409, "question-closed")
    # c: has already seen the key: no late answer any more
    room.s(c, "get", f"/api/v1/quiz/sessions/{sid}/mine")
    assert_problem(room.answer(c, sid, fill, {"blanks": [SECRET_FILL]}, answered_at=made - 100, sent_at=made - 99), 409, "question-closed")


def test_grace_window_ends(room: QuizRoom) -> None:
    single, _ = _items(room)
    sid = room.start([single], grace_s=0)
    made = time.time()
    room.t("post", f"/api/v1/quiz/sessions/{sid}/close", json={})
    time.sleep(0.02)
    assert_problem(room.answer(room.pupils[0], sid, single, {"choices": [1]}, answered_at=made - 1, sent_at=made), 409, "question-closed")


def test_timed_question_closes_itself(room: QuizRoom) -> None:
    single, _ = _items(room)
    sid = room.start([single], time_limit_s=0.3, grace_s=0)
    p = room.pupils[0]
    assert room.answer(p, sid, single, {"choices": [1]}).status_code == 201
    time.sleep(0.4)
    assert_problem(room.answer(room.pupils[1], sid, single, {"choices": [1]}), 409, "question-closed")
    mine = room.s(p, "get", f"/api/v1/quiz/sessions/{sid}/mine").get_json()
    assert mine["items"][0]["closed"] and mine["items"][0]["correct"] is True


def test_keys_and_explanations_reach_students_only_after_close(room: QuizRoom) -> None:
    single, fill = _items(room)
    sid = room.start([single, fill])
    p = room.pupils[0]
    room.answer(p, sid, single, {"choices": [1]})
    room.answer(p, sid, fill, {"blanks": ["猜一个"]})
    room.s(p, "get", "/api/v1/quiz/current")
    room.s(p, "get", f"/api/v1/quiz/sessions/{sid}/mine")
    room.s(p, "get", "/api/v1/me/quiz-results")
    seen_open = "\n".join(room.student_seen)
    assert SECRET_FILL not in seen_open and SECRET_EXPLANATION not in seen_open
    assert '"key"' not in seen_open and '"correct"' not in seen_open
    # closing one question reveals that one only
    room.t("post", f"/api/v1/quiz/sessions/{sid}/close", json={"item_id": single})
    mine = room.s(p, "get", f"/api/v1/quiz/sessions/{sid}/mine").get_json()
    by_id = {i["id"]: i for i in mine["items"]}
    assert by_id[single]["key"] == {"choices": [1]} and by_id[single]["correct"] is True
    assert by_id[single]["explanation"] == SECRET_EXPLANATION
    assert "key" not in by_id[fill] and "explanation" not in by_id[fill] and "correct" not in by_id[fill]
    assert SECRET_FILL not in json.dumps(mine, ensure_ascii=False)
    room.t("post", f"/api/v1/quiz/sessions/{sid}/close", json={})
    mine = room.s(p, "get", f"/api/v1/quiz/sessions/{sid}/mine").get_json()
    assert {i["id"]: i for i in mine["items"]}[fill]["key"] == {"blanks": [[SECRET_FILL]]}


def test_short_answer_marked_by_the_teacher_writes_its_statement(room: QuizRoom) -> None:
    short = room.item(type="short", stem="说一说", key={"reference": "参考"}, points=5)
    sid = room.start([short])
    p = room.pupils[0]
    assert room.answer(p, sid, short, {"text": "我的想法"}).status_code == 201
    assert room.env.count("outbox", "type = 'xapi.statement'") == 0  # not graded yet
    answer_id = room.env.sql("SELECT id FROM quiz_answers")[0][0]
    assert_problem(room.t("post", f"/api/v1/quiz/answers/{answer_id}/mark", json={"score": 6}), 422, "bad-score")
    r = room.t("post", f"/api/v1/quiz/answers/{answer_id}/mark", json={"score": 5})
    assert r.status_code == 200 and r.get_json()["correct"] is True
    st = json.loads(room.env.sql("SELECT payload FROM outbox WHERE type = 'xapi.statement'")[0][0])
    assert st["object"]["definition"]["interactionType"] == "long-fill-in" and st["result"]["score"]["raw"] == 5


def test_live_view_and_projector_mode_hide_names(room: QuizRoom) -> None:
    single, fill = _items(room)
    sid = room.start([single, fill])
    a, b, _ = room.pupils
    room.answer(a, sid, single, {"choices": [1]})
    room.answer(b, sid, single, {"choices": [0]})
    room.answer(b, sid, fill, {"blanks": ["错"]})
    live = room.t("get", f"/api/v1/quiz/sessions/{sid}/live").get_json()
    it = {i["id"]: i for i in live["items"]}
    assert it[single]["answered"] == 2 and it[single]["distribution"] == [1, 1, 0] and it[single]["correct"] == 1
    assert live["most_missed"] in (single, fill)
    names = [s["name"] for s in live["students"]]
    assert len(names) == live["class_size"] == 45
    proj = room.t("get", f"/api/v1/quiz/sessions/{sid}/live?projector=1")
    text = proj.get_data(as_text=True)
    assert "students" not in proj.get_json() and len(proj.get_json()["grid"]) == 45
    for name in names:
        assert name not in text
    for number in (s["number"] for s in live["students"]):
        assert f'"{number}"' not in text


def test_report_export_and_notebook(room: QuizRoom) -> None:
    single, fill = _items(room)
    sid = room.start([single, fill])
    for i, p in enumerate(room.pupils):
        room.answer(p, sid, single, {"choices": [1 if i else 0]})
        room.answer(p, sid, fill, {"blanks": [SECRET_FILL if i == 2 else "不对"]})
    p0 = room.pupils[0]
    # before close, the notebook shows nothing (it would carry keys)
    assert room.s(p0, "get", "/api/v1/me/quiz-results").get_json()["notebook"] == []
    room.t("post", f"/api/v1/quiz/sessions/{sid}/close", json={})
    rep = room.t("get", f"/api/v1/quiz/sessions/{sid}/report").get_json()
    q = {x["item_id"]: x for x in rep["questions"]}
    assert q[single]["difficulty_p"] == round(2 / 3, 3) and q[fill]["difficulty_p"] == round(1 / 3, 3)
    csv_resp = room.t("get", f"/api/v1/quiz/sessions/{sid}/report.csv")
    assert csv_resp.status_code == 200 and csv_resp.mimetype == "text/csv" and "学号" in csv_resp.get_data(as_text=True)
    xlsx = room.t("get", f"/api/v1/quiz/sessions/{sid}/report.xlsx")
    assert xlsx.status_code == 200 and xlsx.data[:2] == b"PK"
    import io

    from openpyxl import load_workbook
    ws = load_workbook(io.BytesIO(xlsx.data)).worksheets[0]
    assert ws.cell(1, 1).value == "学号"
    notebook = room.s(p0, "get", "/api/v1/me/quiz-results").get_json()["notebook"]
    assert {e["item_id"] for e in notebook} == {single, fill}
    assert all(e["explanation"] == SECRET_EXPLANATION for e in notebook)
    teacher_view = room.t("get", f"/api/v1/quiz/students/{p0.student_id}/notebook").get_json()
    assert len(teacher_view["notebook"]) == 2


def test_discrimination_separates_strong_and_weak_students(hub) -> None:  # type: ignore[no-untyped-def]
    from .conftest import make_room
    room = make_room(hub, 8)
    easy = room.item(type="truefalse", stem="1+1=2", key={"value": True})
    hard = room.item(type="truefalse", stem="难题", key={"value": False})
    sid = room.start([easy, hard])
    for i, p in enumerate(room.pupils):
        room.answer(p, sid, easy, {"value": True})
        room.answer(p, sid, hard, {"value": i >= 4})  # the first four get it right: they are the top of the class
    rep = room.t("get", f"/api/v1/quiz/sessions/{sid}/report").get_json()
    q = {x["item_id"]: x for x in rep["questions"]}
    assert q[easy]["difficulty_p"] == 1.0 and q[easy]["discrimination_d"] == 0.0
    assert q[hard]["difficulty_p"] == 0.5 and q[hard]["discrimination_d"] == 1.0


def test_photo_answers_must_be_real_small_images(room: QuizRoom) -> None:
    import io

    from PIL import Image
    short = room.item(type="short", stem="拍下你的草稿", key={}, allow_photo=True)
    sid = room.start([short])
    p = room.pupils[0]
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "white").save(buf, "JPEG")
    up = room.s(p, "post", "/api/v1/quiz/photos", data=buf.getvalue(), headers={"Content-Type": "image/jpeg"})
    assert up.status_code == 201, up.get_json()
    photo = up.get_json()["photo_id"]
    assert up.get_json()["width"] == 64
    assert room.answer(p, sid, short, {"text": "", "photo_id": photo}).status_code == 201
    assert room.t("get", f"/api/v1/quiz/photos/{photo}").data == buf.getvalue()
    assert_problem(room.s(room.pupils[1], "get", f"/api/v1/quiz/photos/{photo}"), 404)
    fake = room.s(p, "post", "/api/v1/quiz/photos", data=b"GIF89a not really" * 10, headers={"Content-Type": "image/jpeg"})
    assert_problem(fake, 415, "bad-photo")
    big = b"\xff\xd8\xff" + b"0" * (room.env.config.quiz.photo_max_bytes + 10)
    assert_problem(room.s(p, "post", "/api/v1/quiz/photos", data=big, headers={"Content-Type": "image/jpeg"}), 413)
    assert_problem(room.answer(p, sid, short, {"text": "x", "photo_id": "0" * 64}), 422, "bad-answer")


def test_buzz_order_and_random_pick_without_repeats(room: QuizRoom) -> None:
    cid = room.env.class_id
    r = room.t("post", "/api/v1/quiz/buzz-rounds", json={"class_id": cid})
    rid = r.get_json()["round_id"]
    places = [room.s(p, "post", f"/api/v1/quiz/buzz-rounds/{rid}/buzz").get_json()["place"] for p in room.pupils]
    assert places[0] == 1 and all(1 <= pl <= i + 1 for i, pl in enumerate(places))
    again = room.s(room.pupils[0], "post", f"/api/v1/quiz/buzz-rounds/{rid}/buzz").get_json()
    assert again["round_id"] == rid  # a second buzz keeps the first arrival
    order = room.t("post", f"/api/v1/quiz/buzz-rounds/{rid}/close").get_json()["order"]
    assert sorted(o["student_id"] for o in order) == sorted(p.student_id for p in room.pupils)
    assert_problem(room.s(room.pupils[1], "post", f"/api/v1/quiz/buzz-rounds/{rid}/buzz"), 409, "round-closed")
    picked = [room.t("post", "/api/v1/quiz/picks", json={"class_id": cid, "window": 44}).get_json()["student_id"] for _ in range(45)]
    assert len(set(picked)) == 45  # a window of class size - 1: everyone once before anyone twice


def test_buzz_ties_are_broken_by_the_draw_not_by_who_is_listed_first(room: QuizRoom) -> None:
    from edge.quiz.classroom import TIE_WINDOW_NS, buzz_order
    db = room.env.app.extensions["classroom_hub"].db
    db.conn.execute("INSERT INTO quiz_buzz_rounds (id, class_id, opened_at) VALUES (77, ?, 0)", (room.env.class_id,))
    a, b, c = (p.student_id for p in room.pupils)
    t = 10**12
    # c arrives first by a clear margin; a and b tie (1 ms apart) and b drew the lower number
    db.conn.executemany("INSERT INTO quiz_buzzes (round_id, student_id, arrived_ns, tiebreak) VALUES (77, ?, ?, ?)",
                        [(c, t, 5), (a, t + 2 * TIE_WINDOW_NS, 900), (b, t + 2 * TIE_WINDOW_NS + 1_000_000, 100)])
    assert [o["student_id"] for o in buzz_order(db, 77)] == [c, b, a]


def test_answers_arriving_together_share_commits_and_each_counts_once(hub) -> None:  # type: ignore[no-untyped-def]
    # Students answer at the same instant: the group writer batches them, and what it keeps
    # per batch (the question's row, its answered count) must still give every answer its
    # own statement, its own live event and a count that ends at the class size.
    import threading

    from edge.quiz.writer import ANSWERS, BATCHES

    room = make_room(hub, n_students=12)
    single, _ = _items(room)
    sid = room.start([single])
    batches0, answers0 = BATCHES._value.get(), ANSWERS._value.get()
    barrier = threading.Barrier(len(room.pupils))
    results: list[int] = []

    def answer(p: Pupil) -> None:
        barrier.wait()
        results.append(room.answer(p, sid, single, {"choices": [1]}).status_code)

    threads = [threading.Thread(target=answer, args=(p,)) for p in room.pupils]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [201] * 12
    assert room.env.count("quiz_answers", "session_id = ?", (sid,)) == 12
    assert room.env.count("outbox", "type = 'xapi.statement'") == 12
    counts = sorted(json.loads(d)["answered"] for (d,) in room.env.sql("SELECT data FROM live_events WHERE type = 'quiz.answer'"))
    assert counts == list(range(1, 13))
    assert ANSWERS._value.get() - answers0 == 12
    assert 1 <= BATCHES._value.get() - batches0 <= 12
