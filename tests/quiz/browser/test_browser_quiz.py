"""Quizzes in real Chromium against the real hub: an answer made offline lands exactly
once after reconnecting (and survives a reload while the hub is unreachable); the
teacher's live view updates as answers arrive; projector mode shows no names."""

from __future__ import annotations

import sqlite3
import time
import uuid

import requests
from playwright.sync_api import expect

from tests.web.flows import enrol, sign_in, teacher_login


def _teacher(hub) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {hub.teacher_token()}"}


def _start_question(hub, stem: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    t = _teacher(hub)
    item = requests.post(hub.url + "/api/v1/quiz/items", json={"type": "single", "stem": stem, "options": ["甲", "乙", "丙"],
                                                               "key": {"choices": [1]}}, headers=t, timeout=10).json()["id"]
    cls = requests.get(hub.url + "/api/v1/classes", headers=t, timeout=10).json()["classes"][0]["id"]
    sid = requests.post(hub.url + "/api/v1/quiz/sessions", json={"class_id": cls, "item_ids": [item]}, headers=t, timeout=10).json()["id"]
    return sid, item


def _rows(hub, sql: str, params: tuple = ()) -> list[tuple]:  # type: ignore[no-untyped-def]
    conn = sqlite3.connect(hub.data_dir / "hub.sqlite3")
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _student_at_question(hub, new_page, number: str, tablet: str, stem: str):  # type: ignore[no-untyped-def]
    """A new question for the class, and student ``number`` signed in on a new tablet with it on screen."""
    sid, item = _start_question(hub, f"{stem} {uuid.uuid4().hex[:6]}")
    student = hub.student(number)
    w = new_page()
    enrol(w.page, hub.pairing_code(), tablet)
    sign_in(w.page, str(student["name"]), hub.pin(number))
    row = w.page.locator(f"[data-quiz-item='{sid}:{item}']")
    expect(row).to_be_visible()
    return w, student, sid, row


def test_an_answer_made_offline_lands_exactly_once_after_reconnect(hub, new_page) -> None:  # type: ignore[no-untyped-def]
    w, student, sid, row = _student_at_question(hub, new_page, "31", "quiz-offline-tablet", "离线作答")
    page, context = w.page, w.page.context
    context.set_offline(True)
    row.locator(".quiz-option[data-option='1']").click()
    expect(row.locator(".quiz-state")).to_have_attribute("data-state", "queued")
    expect(page.locator("#quiz-pending")).to_be_visible()
    # Wi-Fi comes back but the hub is still unreachable, and the tablet reloads the page:
    # the answer is still in the tablet's outbox (IndexedDB), not lost with the page.
    context.route("**/api/v1/quiz/answers", lambda route: route.abort())
    context.set_offline(False)
    page.reload()
    expect(page.locator("#quiz-pending")).to_be_visible()
    assert _rows(hub, "SELECT COUNT(*) FROM quiz_submissions WHERE student_id = ?", (student["id"],)) == [(0,)]
    # The hub is reachable again: the outbox drains and the answer lands once.
    context.unroute("**/api/v1/quiz/answers")
    expect(page.locator("#quiz-pending")).to_be_hidden(timeout=15000)
    time.sleep(1)  # any duplicate resend would have arrived by now
    answers = _rows(hub, "SELECT response FROM quiz_answers WHERE session_id = ? AND student_id = ?", (sid, student["id"]))
    assert answers == [('{"choices":[1]}',)]
    assert _rows(hub, "SELECT COUNT(*) FROM quiz_submissions WHERE session_id = ? AND student_id = ?", (sid, student["id"])) == [(1,)]
    # Nothing on the page said right or wrong before the close; after it, the result and the key show.
    assert page.locator(".quiz-result").count() == 0
    requests.post(hub.url + f"/api/v1/quiz/sessions/{sid}/close", json={}, headers=_teacher(hub), timeout=10).raise_for_status()
    result = page.locator(f"[data-result-session='{sid}'] .quiz-result.right")
    expect(result).to_be_visible()
    expect(result.locator(".quiz-key")).to_have_text("B")
    assert not w.page_errors


def test_a_queued_answer_stays_queued_when_the_question_list_is_redrawn(hub, new_page) -> None:  # type: ignore[no-untyped-def]
    # The hub answers everything but the answer POST (as if it never arrived), so the answer
    # waits in the outbox while a new question makes the page redraw the list from the hub.
    w, student, sid, row = _student_at_question(hub, new_page, "33", "quiz-redraw-tablet", "重绘")
    page, context = w.page, w.page.context
    context.route("**/api/v1/quiz/answers", lambda route: route.abort())
    row.locator(".quiz-option[data-option='2']").click()
    expect(row.locator(".quiz-state")).to_have_attribute("data-state", "queued")
    sid2, item2 = _start_question(hub, f"重绘之后 {uuid.uuid4().hex[:6]}")
    expect(page.locator(f"[data-quiz-item='{sid2}:{item2}']")).to_be_visible()  # quiz.started redrew the list
    expect(row.locator(".quiz-state")).to_have_attribute("data-state", "queued")
    context.unroute("**/api/v1/quiz/answers")
    expect(row.locator(".quiz-state")).to_have_attribute("data-state", "sent", timeout=15000)
    assert _rows(hub, "SELECT response FROM quiz_answers WHERE session_id = ? AND student_id = ?", (sid, student["id"])) == [('{"choices":[2]}',)]
    assert not w.page_errors


def _api_student(hub, number: str) -> tuple[int, dict[str, str]]:  # type: ignore[no-untyped-def]
    r = requests.post(hub.url + "/api/v1/devices/enrol", json={"code": hub.pairing_code(), "name": f"api-{number}"}, timeout=10)
    dev = r.json()["device_token"]
    st = hub.student(number)
    r = requests.post(hub.url + "/api/v1/signin", json={"student_id": st["id"], "pin": hub.pin(number)}, headers={"X-Device-Token": dev}, timeout=10)
    assert r.status_code == 201, r.text
    return int(st["id"]), {"Authorization": f"Bearer {r.json()['token']}", "X-Device-Token": dev}


def test_teacher_live_view_updates_and_projector_shows_no_names(hub, new_page, shots) -> None:  # type: ignore[no-untyped-def]
    w = new_page()
    page = w.page
    teacher_login(page, hub)
    expect(page.locator("#quiz-start")).to_be_enabled()
    expect(page.locator("#quiz-exit-ticket")).to_be_enabled()
    page.locator("#quiz-start").click()
    panel = page.locator("#quiz-live-panel")
    expect(panel).to_be_visible()
    expect(page.locator("#quiz-answered")).to_have_attribute("data-answered", "0")
    title = page.locator("#quiz-live-title").inner_text()
    t = _teacher(hub)
    sessions = requests.get(hub.url + "/api/v1/quiz/sessions?class_id=1", headers=t, timeout=10).json()["sessions"]
    sid = next(s["id"] for s in sessions if s["title"] == title and s["closed_at"] is None)
    live = requests.get(hub.url + f"/api/v1/quiz/sessions/{sid}/live", headers=t, timeout=10).json()
    first = live["items"][0]
    answers = []
    for number in ("40", "41"):
        student_id, headers = _api_student(hub, number)
        r = requests.post(hub.url + "/api/v1/quiz/answers", headers=headers, timeout=10, json={
            "client_id": str(uuid.uuid4()), "session_id": sid, "item_id": first["id"], "student_id": student_id,
            "response": {"choices": [0]}, "answered_at": time.time()})
        assert r.status_code == 201, r.text
        answers.append(student_id)
    # pushed over SSE to the teacher's page, which re-reads the live view
    expect(page.locator("#quiz-answered")).to_have_attribute("data-answered", "2")
    item_row = page.locator(f".quiz-live-item[data-item-id='{first['id']}']")
    expect(item_row.locator("svg.quiz-chart rect")).to_have_count(len(first["options"]))
    expect(page.locator("#quiz-grid td.cell.right, #quiz-grid td.cell.wrong")).to_have_count(2)
    names = [s["name"] for s in live["students"]]
    expect(page.locator("#quiz-grid th.name").first).to_be_visible()
    page.screenshot(path=str(shots / "quiz-live.png"), full_page=True)
    with page.expect_response(lambda r: "/live?projector=1" in r.url) as projector_resp:
        page.locator("#quiz-projector").click()
    expect(page.locator("body.quiz-projector")).to_be_visible()
    body = projector_resp.value.text()
    assert not [n for n in names if n in body]  # the projector's data never carried a name
    expect(page.locator("#quiz-grid th.name")).to_have_count(0)
    expect(page.locator("#quiz-grid tbody tr")).to_have_count(45)
    page.screenshot(path=str(shots / "quiz-projector.png"), full_page=True)
    text = page.locator("body").inner_text()
    shown = [n for n in names if n in text]
    assert not shown, f"projector shows names: {shown[:5]}"
    assert not w.page_errors, w.page_errors
