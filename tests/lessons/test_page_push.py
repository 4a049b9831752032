"""The class follows the teacher's page: push -> ``lesson.page`` on ``class:<id>``
(shape ``{lesson_id, page, at}`` plus ``lesson`` and ``version``), stored per class
so a reconnecting tablet lands on it; who is online; refusals."""

from __future__ import annotations

import json

import requests

from tests.hub.support import SSE, HubEnv, bearer, student_headers


def _demo_lesson(h: HubEnv) -> int:
    return int(h.sql("SELECT id FROM lessons WHERE lesson_id = 'demo-math-3-fractions'")[0][0])


def test_push_reaches_the_class_stream_across_workers_and_a_reconnect_lands_on_it(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory(workers=2).start()
    creds = srv.creds()
    s = requests.Session()
    login = {"username": creds["teacher_username"], "password": creds["teacher_password"]}
    teacher = s.post(srv.url + "/api/v1/auth/login", json=login, timeout=10).json()["token"]
    class_id = s.get(srv.url + "/api/v1/classes", headers=bearer(teacher), timeout=10).json()["classes"][0]["id"]
    lesson = s.get(srv.url + "/api/v1/lessons", headers=bearer(teacher), timeout=10).json()["lessons"][0]["id"]
    code = s.post(srv.url + "/api/v1/pairing-codes", json={"class_id": class_id, "max_uses": 1}, headers=bearer(teacher), timeout=10).json()["code"]
    device = s.post(srv.url + "/api/v1/devices/enrol", json={"code": code, "name": "t"}, timeout=10).json()["device_token"]
    students = s.get(srv.url + "/api/v1/signin/students", headers={"X-Device-Token": device}, timeout=10).json()["students"]
    first = students[0]
    session = s.post(srv.url + "/api/v1/signin", json={"student_id": first["id"], "pin": creds["student_pins"][first["number"]]},
                     headers={"X-Device-Token": device}, timeout=10).json()["token"]
    headers = student_headers(session, device)
    streams = [SSE(srv.port, headers) for _ in range(4)]  # spread over both workers
    try:
        for st in streams:
            assert st.status == 200
            st.first_line()
        r = s.post(srv.url + f"/api/v1/classes/{class_id}/page", json={"lesson": lesson, "page": 3}, headers=bearer(teacher), timeout=10)
        assert r.status_code == 200, r.text
        for st in streams:
            frames = [f for f in st.frames(1, timeout=5) if f["event"] == "lesson.page"]
            assert frames, "the page push did not arrive"
            data = json.loads(frames[0]["data"])
            assert data["page"] == 3 and data["lesson_id"] == "demo-math-3-fractions" and data["lesson"] == lesson and data["at"] > 0
        last_id = frames[0]["id"]
    finally:
        for st in streams:
            st.close()
    # the tablet dropped off the Wi-Fi; meanwhile the teacher moved on
    s.post(srv.url + f"/api/v1/classes/{class_id}/page", json={"lesson": lesson, "page": 4}, headers=bearer(teacher), timeout=10)
    current = s.get(srv.url + f"/api/v1/classes/{class_id}/page", headers=headers, timeout=10).json()
    assert current["page"] == 4 and current["lesson"] == lesson
    resumed = SSE(srv.port, {**headers, "Last-Event-ID": last_id})
    try:
        replay = [f for f in resumed.frames(1, timeout=5) if f["event"] == "lesson.page"]
        assert replay and json.loads(replay[0]["data"])["page"] == 4
    finally:
        resumed.close()


def test_pushes_are_refused_for_other_classes_missing_pages_and_students(hub: HubEnv) -> None:
    lesson = _demo_lesson(hub)
    teacher = bearer(hub.staff_token("teacher"))
    c = hub.client()
    assert c.post(f"/api/v1/classes/{hub.class_id}/page", json={"lesson": lesson, "page": 99}, headers=teacher).status_code == 422
    assert c.post(f"/api/v1/classes/{hub.class_id}/page", json={"lesson": 9999, "page": 1}, headers=teacher).status_code == 404
    assert c.post(f"/api/v1/classes/{hub.class_id}/page", json={"lesson": lesson, "page": "3"}, headers=teacher).status_code == 422
    other = bearer(hub.staff_token("other_teacher"))
    assert c.post(f"/api/v1/classes/{hub.class_id}/page", json={"lesson": lesson, "page": 1}, headers=other).status_code == 404
    tablet = hub.enrol()
    student = student_headers(hub.sign_in(tablet, "05"), tablet.token)
    assert c.post(f"/api/v1/classes/{hub.class_id}/page", json={"lesson": lesson, "page": 1}, headers=student).status_code == 403
    assert hub.sql("SELECT COUNT(*) FROM lesson_current_page")[0][0] == 0


def test_teacher_sees_which_students_are_online(hub: HubEnv) -> None:
    teacher = bearer(hub.staff_token("teacher"))
    before = hub.client().get(f"/api/v1/classes/{hub.class_id}/online", headers=teacher).get_json()
    assert before["online"] == 0 and before["total"] >= 45
    tablet = hub.enrol()
    student = student_headers(hub.sign_in(tablet, "06"), tablet.token)
    assert hub.client().get(f"/api/v1/classes/{hub.class_id}/page", headers=student).status_code == 200
    after = hub.client().get(f"/api/v1/classes/{hub.class_id}/online", headers=teacher).get_json()
    assert after["online"] == 1
    assert [s["number"] for s in after["students"] if s["online"]] == ["06"]


def test_schedule_and_prefetch_list_the_days_files(hub: HubEnv) -> None:
    lesson = _demo_lesson(hub)
    teacher = bearer(hub.staff_token("teacher"))
    r = hub.client().put(f"/api/v1/classes/{hub.class_id}/schedule/2026-09-01/2", json={"lesson": lesson}, headers=teacher)
    assert r.status_code == 200 and r.get_json()["periods"][-1]["lesson"] == lesson
    assert hub.client().put(f"/api/v1/classes/{hub.class_id}/schedule/2026-13-01/2", json={"lesson": lesson}, headers=teacher).status_code == 422
    assert hub.client().put(f"/api/v1/classes/{hub.class_id}/schedule/2026-09-01/99", json={"lesson": lesson}, headers=teacher).status_code == 422
    tablet = hub.enrol()
    student = student_headers(hub.sign_in(tablet, "07"), tablet.token)
    pre = hub.client().get("/api/v1/me/prefetch?day=2026-09-01", headers=student).get_json()
    files = {f["sha256"] for f in pre["files"]}
    expected = {r[0] for r in hub.sql("SELECT sha256 FROM lesson_files WHERE lesson = ?", (lesson,))}
    assert pre["lessons"] == [lesson] and files == expected and pre["total_bytes"] > 0
    assert all(f["url"].startswith("/api/v1/content/sha256/") for f in pre["files"])
    empty = hub.client().get("/api/v1/me/prefetch?day=2026-09-02", headers=student).get_json()
    assert empty["files"] == []
