"""Who may do what: every role against every endpoint, from an explicit table.

The table is the specification (DESIGN.md section 6). A route that is not in the
table fails ``test_every_route_is_in_the_role_matrix``, so a new endpoint cannot
skip the authorization review.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from .support import PROBLEM, HubEnv, Tablet, bearer, device, student_headers

ROLES = ("anonymous", "device", "student", "teacher", "other_teacher", "admin")


@dataclass
class Call:
    method: str
    path: str  # may contain {class_a}, {class_b}, {victim_student}, {victim_device}, {victim_user}
    endpoint: str
    body: Any = None
    content_type: str | None = None
    stream: bool = False


# expected status per role, in ROLES order
A = "anonymous"
MATRIX: list[tuple[Call, tuple[int, int, int, int, int, int]]] = [
    #                                                                     anon dev  stu  tch  oth  adm
    (Call("GET", "/healthz", "health.healthz"), (200, 200, 200, 200, 200, 200)),
    (Call("GET", "/readyz", "health.readyz"), (200, 200, 200, 200, 200, 200)),
    # the test client's remote address is 127.0.0.1: scrapers on the box need no login.
    # From another host see test_metrics_from_the_lan_need_an_admin.
    (Call("GET", "/metrics", "health.metrics_endpoint"), (200, 200, 200, 200, 200, 200)),
    (Call("GET", "/api/openapi.json", "openapi.spec"), (200, 200, 200, 200, 200, 200)),
    (Call("GET", "/api/v1/hub", "hubinfo.hub"), (200, 200, 200, 200, 200, 200)),
    (Call("GET", "/api/v1/events", "hubinfo.events", stream=True), (401, 401, 200, 200, 200, 200)),
    (Call("POST", "/api/v1/auth/login", "accounts.login", body="LOGIN"), (201, 201, 201, 201, 201, 201)),
    # logout always clears the cookies, even when the session has already ended
    (Call("POST", "/api/v1/auth/logout", "accounts.logout"), (204, 204, 204, 204, 204, 204)),
    (Call("GET", "/api/v1/session", "hubinfo.session"), (200, 200, 200, 200, 200, 200)),
    (Call("GET", "/api/v1/pairing-codes", "enrolment.open_codes"), (401, 401, 403, 200, 200, 200)),
    (Call("DELETE", "/api/v1/pairing-codes/999999", "enrolment.withdraw_code"), (401, 401, 403, 404, 404, 404)),
    (Call("GET", "/api/v1/me", "accounts.me"), (401, 401, 200, 200, 200, 200)),
    (Call("GET", "/api/v1/users", "accounts.users"), (401, 401, 403, 403, 403, 200)),
    (Call("POST", "/api/v1/users", "accounts.create_user", body="NEW_USER"), (401, 401, 403, 403, 403, 201)),
    (Call("PATCH", "/api/v1/users/{victim_user}", "accounts.patch_user", body={"disabled": False}), (401, 401, 403, 403, 403, 204)),
    (Call("GET", "/api/v1/classes", "accounts.classes"), (401, 401, 403, 200, 200, 200)),
    (Call("GET", "/api/v1/classes/{class_a}/students", "accounts.class_students"), (401, 401, 403, 200, 404, 200)),
    (Call("GET", "/api/v1/classes/{class_b}/students", "accounts.class_students"), (401, 401, 403, 404, 200, 200)),
    (Call("POST", "/api/v1/classes/{class_a}/roster", "accounts.import_roster", body="姓名,学号\n王子轩,01\n".encode(), content_type="text/csv"),
     (401, 401, 403, 201, 404, 201)),
    (Call("GET", "/api/v1/classes/{class_a}/attendance", "accounts.class_attendance"), (401, 401, 403, 200, 404, 200)),
    (Call("GET", "/api/v1/classes/{class_b}/attendance", "accounts.class_attendance"), (401, 401, 403, 404, 200, 200)),
    (Call("POST", "/api/v1/students/{victim_student}/pin", "accounts.reset_pin"), (401, 401, 403, 201, 404, 201)),
    (Call("GET", "/api/v1/signin/students", "accounts.signin_students"), (401, 200, 200, 401, 401, 401)),
    (Call("POST", "/api/v1/signin", "accounts.signin", body="SIGNIN"), (401, 201, 201, 401, 401, 401)),
    (Call("GET", "/api/v1/me/attendance", "accounts.my_attendance"), (401, 401, 200, 403, 403, 403)),
    (Call("POST", "/api/v1/pairing-codes", "enrolment.create_code", body={"class_id": "{class_a}"}), (401, 401, 403, 201, 404, 201)),
    (Call("POST", "/api/v1/pairing-codes", "enrolment.create_code", body={"class_id": "{class_b}"}), (401, 401, 403, 404, 201, 201)),
    (Call("POST", "/api/v1/devices/enrol", "enrolment.enrol", body="ENROL"), (201, 201, 201, 201, 201, 201)),
    (Call("GET", "/api/v1/devices", "enrolment.devices"), (401, 401, 403, 200, 200, 200)),
    (Call("DELETE", "/api/v1/devices/{victim_device}", "enrolment.revoke"), (401, 401, 403, 204, 404, 204)),
    # carts and the tablet fleet (issue 7); the cart link authenticates with cart keys only
    (Call("POST", "/api/v1/cart-link/telemetry", "devices.cart_telemetry", body={}), (401, 401, 401, 401, 401, 401)),
    (Call("GET", "/api/v1/cart-link/firmware/1.0.0/app.py", "devices.cart_firmware"), (401, 401, 401, 401, 401, 401)),
    (Call("POST", "/api/v1/carts", "devices.add_cart", body={"id": "matrix-cart", "name": "c"}), (401, 401, 403, 403, 403, 201)),
    (Call("GET", "/api/v1/carts", "devices.list_carts"), (401, 401, 403, 200, 200, 200)),
    (Call("POST", "/api/v1/carts/end-of-day", "devices.end_of_day"), (401, 401, 403, 200, 200, 200)),
    # the demo cart belongs to class A: its teacher and admins may lock it, the other teacher does not see it
    (Call("POST", "/api/v1/carts/demo-cart/lock-commands", "devices.lock_command", body={"op": "lock"}), (401, 401, 403, 202, 404, 202)),
    (Call("POST", "/api/v1/tablets", "devices.add_tablet", body={"serial": "MATRIX-1"}), (401, 401, 403, 403, 403, 201)),
    (Call("GET", "/api/v1/tablets", "devices.list_tablets"), (401, 401, 403, 200, 200, 200)),
    (Call("POST", "/api/v1/tablets/999999/checkout", "devices.checkout", body={"student_id": None}), (401, 401, 403, 404, 404, 404)),
    (Call("POST", "/api/v1/tablets/999999/checkin", "devices.checkin"), (401, 401, 403, 404, 404, 404)),
    (Call("POST", "/api/v1/tablets/battery", "devices.battery", body={"level": 0.5}), (401, 202, 202, 401, 401, 401)),
    (Call("POST", "/api/v1/firmware/rollouts", "devices.start_rollout", body={"version": "9.9.9"}), (401, 401, 403, 403, 403, 409)),
    (Call("GET", "/api/v1/firmware/rollouts", "devices.rollouts"), (401, 401, 403, 200, 200, 200)),
    # micro-lesson recording (issue 6): staff of the class only
    (Call("POST", "/api/v1/recordings", "speech.create_recording",
          body={"class_id": "{class_a}", "title": "matrix", "source": "live", "request_id": "6d1f6a52-8a43-4f0e-9a57-3f1f3a0e0006"}),
     (401, 401, 403, 201, 404, 201)),
    (Call("GET", "/api/v1/recordings", "speech.list_recordings"), (401, 401, 403, 200, 200, 200)),
    (Call("GET", "/api/v1/recordings/999999", "speech.get_recording"), (401, 401, 403, 404, 404, 404)),
    (Call("PUT", "/api/v1/recordings/999999/media", "speech.upload_recording", body=b"RIFF", content_type="audio/wav"), (401, 401, 403, 404, 404, 404)),
    (Call("POST", "/api/v1/recordings/999999/live?seq=1", "speech.live_audio", body=b"\0\0", content_type="application/octet-stream"),
     (401, 401, 403, 404, 404, 404)),
    (Call("POST", "/api/v1/recordings/999999/finish", "speech.finish_recording"), (401, 401, 403, 404, 404, 404)),
    (Call("GET", "/api/v1/recordings/999999/media", "speech.recording_media"), (401, 401, 403, 404, 404, 404)),
    (Call("GET", "/api/v1/recordings/999999/transcript.vtt", "speech.export_transcript"), (401, 401, 403, 404, 404, 404)),
    (Call("GET", "/api/v1/speech/search?q=abc", "speech.search_transcripts"), (401, 401, 403, 200, 200, 200)),
    (Call("GET", "/api/v1/speech/status", "speech.speech_status"), (401, 401, 403, 200, 200, 200)),
    # lessons (issue 3): the demo's sample lesson is lesson 1; lesson frames authenticate with their URL token only
    (Call("GET", "/api/v1/lessons", "lessons.list_lessons"), (401, 401, 200, 200, 200, 200)),
    (Call("GET", "/api/v1/lessons/1", "lessons.get_lesson"), (401, 401, 200, 200, 200, 200)),
    (Call("GET", "/api/v1/content/sha256/" + "0" * 64, "lessons.content"), (401, 401, 404, 404, 404, 404)),
    (Call("GET", "/lesson-frame/1.99.forged/index.html", "lessons.frame_file"), (403, 403, 403, 403, 403, 403)),
    (Call("GET", "/api/v1/classes/{class_a}/schedule", "lessons.get_schedule"), (401, 401, 200, 200, 404, 200)),
    (Call("PUT", "/api/v1/classes/{class_a}/schedule/2026-01-05/2", "lessons.put_period", body={"lesson": None}), (401, 401, 403, 200, 404, 200)),
    (Call("GET", "/api/v1/me/prefetch", "lessons.my_prefetch"), (401, 401, 200, 403, 403, 403)),
    (Call("POST", "/api/v1/classes/{class_a}/page", "lessons.push_page", body={"lesson": 1, "page": 1}), (401, 401, 403, 200, 404, 200)),
    (Call("GET", "/api/v1/classes/{class_a}/page", "lessons.get_page"), (401, 401, 200, 200, 404, 200)),
    (Call("GET", "/api/v1/classes/{class_b}/page", "lessons.get_page"), (401, 401, 404, 404, 200, 200)),
    (Call("GET", "/api/v1/classes/{class_a}/online", "lessons.who_is_online"), (401, 401, 403, 200, 404, 200)),
    # quizzes (issue 4): staff of the class run them; students answer and read only their own results
    (Call("POST", "/api/v1/quiz/items", "quiz.add_item", body={"type": "truefalse", "stem": "matrix", "key": {"value": True}}),
     (401, 401, 403, 201, 201, 201)),
    (Call("GET", "/api/v1/quiz/items", "quiz.list_items"), (401, 401, 403, 200, 200, 200)),
    (Call("POST", "/api/v1/quiz/imports?format=aiken", "quiz.import_questions", body=b"Q?\nA. x\nB. y\nANSWER: A\n",
          content_type="text/plain"), (401, 401, 403, 201, 201, 201)),
    (Call("GET", "/api/v1/quizzes", "quiz.list_quizzes"), (401, 401, 403, 200, 200, 200)),
    (Call("POST", "/api/v1/quiz/sessions", "quiz.start_session", body={"class_id": "{class_a}", "item_ids": [999999]}),
     (401, 401, 403, 404, 404, 404)),
    (Call("GET", "/api/v1/quiz/sessions?class_id={class_a}", "quiz.list_sessions"), (401, 401, 403, 200, 404, 200)),
    (Call("GET", "/api/v1/quiz/sessions/999999/live", "quiz.live"), (401, 401, 403, 404, 404, 404)),
    (Call("POST", "/api/v1/quiz/sessions/999999/close", "quiz.close_session", body={}), (401, 401, 403, 404, 404, 404)),
    (Call("POST", "/api/v1/quiz/answers/999999/mark", "quiz.mark", body={"score": 1}), (401, 401, 403, 404, 404, 404)),
    (Call("POST", "/api/v1/quiz/answers", "quiz.answer", body={"client_id": "6d1f6a52-8a43-4f0e-9a57-3f1f3a0e0004", "session_id": 999999,
          "item_id": 1, "student_id": 999999, "response": {}, "answered_at": 1.0}), (401, 401, 409, 403, 403, 403)),
    (Call("GET", "/api/v1/quiz/current", "quiz.current"), (401, 401, 200, 403, 403, 403)),
    (Call("GET", "/api/v1/quiz/sessions/999999/mine", "quiz.mine"), (401, 401, 404, 403, 403, 403)),
    (Call("POST", "/api/v1/quiz/photos", "quiz.upload_photo", body=b"not an image", content_type="image/jpeg"), (401, 401, 415, 403, 403, 403)),
    (Call("GET", "/api/v1/quiz/photos/" + "0" * 64, "quiz.get_photo"), (401, 401, 404, 404, 404, 404)),
    (Call("GET", "/api/v1/quiz/sessions/999999/report", "quiz.report"), (401, 401, 403, 404, 404, 404)),
    (Call("GET", "/api/v1/quiz/sessions/999999/report.csv", "quiz.report_file"), (401, 401, 403, 404, 404, 404)),
    (Call("GET", "/api/v1/me/quiz-results", "quiz.my_results"), (401, 401, 200, 403, 403, 403)),
    (Call("GET", "/api/v1/quiz/students/{victim_student}/notebook", "quiz.student_notebook"), (401, 401, 403, 200, 404, 200)),
    (Call("POST", "/api/v1/quiz/buzz-rounds", "quiz.open_buzz", body={"class_id": "{class_a}"}), (401, 401, 403, 201, 404, 201)),
    (Call("POST", "/api/v1/quiz/buzz-rounds/999999/buzz", "quiz.buzz"), (401, 401, 404, 403, 403, 403)),
    (Call("POST", "/api/v1/quiz/buzz-rounds/999999/close", "quiz.close_buzz"), (401, 401, 403, 404, 404, 404)),
    (Call("POST", "/api/v1/quiz/picks", "quiz.pick", body={"class_id": "{class_a}"}), (401, 401, 403, 201, 404, 201)),
    # personalised learning (issue 8): staff edit the graph; class views for the class's staff; students see only their own
    (Call("GET", "/api/v1/learning/graph", "learning.get_graph"), (401, 401, 403, 200, 200, 200)),
    (Call("PUT", "/api/v1/learning/graph", "learning.put_graph", body={"knowledge_points": [{"id": "matrix.kp", "name": "m"}]}),
     (401, 401, 403, 200, 200, 200)),
    (Call("POST", "/api/v1/learning/items", "learning.post_items", body={"items": [{"id": "m-1", "knowledge_points": ["no.such.kp"]}]}),
     (401, 401, 403, 422, 422, 422)),
    (Call("GET", "/api/v1/classes/{class_a}/learning/heatmap", "learning.get_heatmap"), (401, 401, 403, 200, 404, 200)),
    (Call("PUT", "/api/v1/classes/{class_a}/learning/settings", "learning.put_settings", body={"band_low": 0.6, "band_high": 0.85}),
     (401, 401, 403, 200, 404, 200)),
    (Call("GET", "/api/v1/classes/{class_a}/learning/recommendations", "learning.get_class_recommendations"), (401, 401, 403, 200, 404, 200)),
    (Call("POST", "/api/v1/classes/{class_a}/learning/assign", "learning.assign", body={}), (401, 401, 403, 201, 404, 201)),
    (Call("GET", "/api/v1/me/learning", "learning.my_learning"), (401, 401, 200, 403, 403, 403)),
    (Call("GET", "/api/v1/learning/model", "learning.get_model"), (401, 401, 403, 200, 200, 200)),
    (Call("POST", "/api/v1/learning/model/install", "learning.install_models"), (401, 401, 403, 403, 403, 200)),
]

# Endpoints that exist only as framework plumbing (Flask's static route).
NOT_API = {"static"}

# The web UI's pages and assets: public shells that carry no data (the data comes
# from the API, which the matrix covers). Listed one by one so a new page is a
# conscious decision; exercised by test_web_pages_are_public.
PUBLIC_WEB = {
    "web.index": "/", "web.student": "/student", "web.teacher": "/teacher", "web.admin": "/admin", "web.carts": "/carts",
    "web.manifest": "/manifest.webmanifest", "web.service_worker": "/sw.js", "web.favicon": "/favicon.ico", "web.static_file": None,
    "speech.speech_page": "/speech", "learning.learning_page": "/learning",
}


@pytest.fixture(scope="module")
def world(module_hub: HubEnv) -> dict[str, Any]:
    h = module_hub
    tablet = h.enrol(name="matrix-tablet")
    victim_user = h.client().post(
        "/api/v1/users", headers=bearer(h.staff_token("admin")),
        json={"username": "victim", "display_name": "被测老师", "role": "teacher", "password": "victim-password"},
    ).get_json()["id"]
    return {"tablet": tablet, "victim_user": victim_user, "victim_student": h.student("45")[0]}


def _headers_for(h: HubEnv, role: str, world: dict[str, Any], fresh_session: bool) -> dict[str, str]:
    tablet: Tablet = world["tablet"]
    if role == "anonymous":
        return {}
    if role == "device":
        return device(tablet.token)
    if role == "student":
        if fresh_session:
            return student_headers(h.sign_in(tablet, "02"), tablet.token)
        if "student_token" not in world:
            world["student_token"] = h.sign_in(tablet, "02")
        return student_headers(world["student_token"], tablet.token)
    if fresh_session:
        return bearer(h.login(*getattr(h.creds, role)))
    return bearer(h.staff_token(role))


def _cases() -> list[Any]:
    out = []
    for call, expected in MATRIX:
        for role, status in zip(ROLES, expected, strict=True):
            out.append(pytest.param(call, role, status, id=f"{call.method} {call.path} as {role} -> {status}"))
    return out


@pytest.mark.parametrize(("call", "role", "expected"), _cases())
def test_role_matrix(module_hub: HubEnv, world: dict[str, Any], call: Call, role: str, expected: int) -> None:
    h = module_hub
    victim_device = h.enrol(name="victim").device_id if call.endpoint == "enrolment.revoke" else ""
    subst = {
        "class_a": h.class_id, "class_b": h.other_class_id, "victim_student": world["victim_student"],
        "victim_device": victim_device, "victim_user": world["victim_user"],
    }
    path = call.path.format(**subst)
    headers = _headers_for(h, role, world, fresh_session=call.endpoint == "accounts.logout")
    body = call.body
    if body == "LOGIN":
        body = {"username": h.creds.teacher[0], "password": h.creds.teacher[1]}
    elif body == "NEW_USER":
        body = {"username": f"u{uuid.uuid4().hex[:10]}", "display_name": "新老师", "role": "teacher", "password": "a-long-password"}
    elif body == "SIGNIN":
        sid, pin = h.student("03")
        body = {"student_id": sid, "pin": pin}
    elif body == "ENROL":
        body = {"code": h.pairing_code(), "name": "matrix-enrol"}
    elif isinstance(body, dict):
        body = {k: (int(v.format(**subst)) if isinstance(v, str) and v.startswith("{") else v) for k, v in body.items()}
    kwargs: dict[str, Any] = {"headers": headers}
    if isinstance(body, bytes):
        kwargs.update(data=body, content_type=call.content_type)
    elif body is not None:
        kwargs["json"] = body
    resp = h.client().open(path, method=call.method, buffered=not call.stream, **kwargs)
    try:
        assert resp.status_code == expected, (role, call.method, path, resp.status_code, resp.get_data(as_text=True)[:300] if not call.stream else "")
        if expected >= 400:
            assert resp.mimetype == PROBLEM
        if call.stream and expected == 200:
            assert resp.mimetype == "text/event-stream"
            assert next(resp.response) == b"retry: 1000\n\n"
    finally:
        resp.close()


def test_every_route_is_in_the_role_matrix(module_hub: HubEnv) -> None:
    covered = {(c.endpoint, c.method) for c, _ in MATRIX}
    routes = set()
    for rule in module_hub.app.url_map.iter_rules():
        if rule.endpoint in NOT_API:
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((rule.endpoint, method))
    missing = routes - covered - {(e, "GET") for e in PUBLIC_WEB}
    assert not missing, f"routes without a row in the role matrix: {sorted(missing)}"
    stale = covered - routes
    assert not stale, f"matrix rows for routes that no longer exist: {sorted(stale)}"


@pytest.mark.parametrize(("who", "expected"), [("anonymous", 401), ("device", 401), ("student", 403), ("teacher", 403), ("admin", 200)])
def test_metrics_from_the_lan_need_an_admin(module_hub: HubEnv, world: dict[str, Any], who: str, expected: int) -> None:
    h = module_hub
    headers = _headers_for(h, who, world, fresh_session=False)
    resp = h.client().get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": "192.168.10.23"})
    assert resp.status_code == expected, resp.get_data(as_text=True)[:300]
    if expected == 200:
        assert b"hub_outbox_depth" in resp.data
    else:
        assert resp.mimetype == PROBLEM


def test_forwarded_for_does_not_make_a_lan_client_local(module_hub: HubEnv) -> None:
    # security.trusted_proxy_count is 0: X-Forwarded-For must not be believed.
    resp = module_hub.client().get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}, environ_base={"REMOTE_ADDR": "192.168.10.23"})
    assert resp.status_code == 401


def test_students_see_only_their_own_class_on_the_sign_in_screen(module_hub: HubEnv, world: dict[str, Any]) -> None:
    h = module_hub
    names = h.client().get("/api/v1/signin/students", headers=device(world["tablet"].token)).get_json()["students"]
    assert len(names) == 45
    assert not any(n["number"].startswith("B") for n in names)
    # and a student of another class cannot sign in on this tablet
    sid, pin = h.student("B01")
    r = h.client().post("/api/v1/signin", json={"student_id": sid, "pin": pin}, headers=device(world["tablet"].token))
    assert r.status_code == 401


@pytest.mark.parametrize("endpoint", sorted(e for e, p in PUBLIC_WEB.items() if p))
def test_web_pages_are_public_and_carry_no_data(module_hub: HubEnv, endpoint: str) -> None:

    path = PUBLIC_WEB[endpoint]
    resp = module_hub.client().get(path)
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert "王子轩" not in body and module_hub.creds.teacher[1] not in body
