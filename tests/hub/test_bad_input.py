"""Bad input gets a clear problem+json error and changes nothing (DESIGN.md section 5)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .support import PROBLEM, HubEnv, assert_problem, bearer, device, student_headers


def _check_unchanged(h: HubEnv, before: dict[str, Any]) -> None:
    after = h.snapshot()
    changed = {t for t in before if before[t] != after.get(t)}
    assert not changed, f"a refused request changed tables {changed}"


def _cases(h: HubEnv) -> dict[str, tuple[str, str, dict[str, Any], int, str | None]]:
    """name -> (method, path, request kwargs, status, problem slug)."""
    admin = bearer(h.staff_token("admin"))
    teacher = bearer(h.staff_token("teacher"))
    limit = getattr(h.config.http, "max_body_bytes", 1_048_576)
    big = {"username": "x" * (limit + 10), "display_name": "a", "role": "teacher", "password": "long-enough"}
    return {
        "malformed JSON": ("POST", "/api/v1/users", {"data": b'{"username": "a", ', "content_type": "application/json", "headers": admin}, 400, None),
        "JSON array instead of object": ("POST", "/api/v1/users", {"json": ["a"], "headers": admin}, 422, None),
        "wrong type (string id)": ("POST", "/api/v1/pairing-codes", {"json": {"class_id": str(h.class_id)}, "headers": teacher}, 422, None),
        "wrong type (bool password)": (
            "POST", "/api/v1/users", {"json": {"username": "n1", "display_name": "a", "role": "teacher", "password": True}, "headers": admin}, 422, None,
        ),
        "unknown field": (
            "POST", "/api/v1/users",
            {"json": {"username": "n2", "display_name": "a", "role": "teacher", "password": "long-enough", "is_root": True}, "headers": admin},
            422, None,
        ),
        "bad role value": (
            "POST", "/api/v1/users", {"json": {"username": "n3", "display_name": "a", "role": "root", "password": "long-enough"}, "headers": admin}, 422, None,
        ),
        "short password": (
            "POST", "/api/v1/users", {"json": {"username": "n4", "display_name": "a", "role": "teacher", "password": "short"}, "headers": admin}, 422, None,
        ),
        "assign unknown class": (
            "POST", "/api/v1/users",
            {"json": {"username": "n5", "display_name": "a", "role": "teacher", "password": "long-enough", "class_ids": [99999]}, "headers": admin},
            422, "no-such-class",
        ),
        "oversize body": ("POST", "/api/v1/users", {"json": big, "headers": admin}, 413, "payload-too-large"),
        "wrong content type": (
            "POST", "/api/v1/users", {"data": "username=a", "content_type": "application/x-www-form-urlencoded", "headers": admin}, 415, None,
        ),
        "roster as JSON": ("POST", f"/api/v1/classes/{h.class_id}/roster", {"json": {"rows": []}, "headers": teacher}, 415, None),
        "enrol with bad code format": ("POST", "/api/v1/devices/enrol", {"json": {"code": "12ab56", "name": "t"}}, 422, None),
        "max_uses above the hub limit": ("POST", "/api/v1/pairing-codes", {"json": {"class_id": h.class_id, "max_uses": 100}, "headers": teacher}, 422, None),
        "student code without class": ("POST", "/api/v1/pairing-codes", {"json": {"kind": "student"}, "headers": teacher}, 422, "class-required"),
        "bad Last-Event-ID": ("GET", "/api/v1/events", {"headers": {**teacher, "Last-Event-ID": "abc"}}, 400, "bad-last-event-id"),
        "bad attendance day": ("GET", f"/api/v1/classes/{h.class_id}/attendance?day=yesterday", {"headers": teacher}, 422, None),
        "unknown route": ("GET", "/api/v1/nothing-here", {}, 404, None),
        "wrong method": ("PUT", "/api/v1/hub", {"json": {}}, 405, None),
        "disable unknown user": ("PATCH", "/api/v1/users/424242", {"json": {"disabled": True}, "headers": admin}, 404, "no-such-user"),
        "revoke unknown device": ("DELETE", "/api/v1/devices/not-a-device", {"headers": admin}, 404, "no-such-device"),
        "garbage bearer token": ("GET", "/api/v1/me", {"headers": bearer("x" * 300)}, 401, "unauthenticated"),
    }


def _case_ids() -> list[str]:
    class _Fake:
        config = type("C", (), {"http": type("H", (), {"max_body_bytes": 1024})})()
        class_id = 1

        def staff_token(self, who: str) -> str:
            return "t"

    return list(_cases(_Fake()).keys())  # type: ignore[arg-type]


@pytest.mark.parametrize("name", _case_ids())
def test_bad_input_is_refused_with_a_problem_and_changes_nothing(module_hub: HubEnv, name: str) -> None:
    h = module_hub
    method, path, kwargs, status, slug = _cases(h)[name]
    before = h.snapshot()
    resp = h.client().open(path, method=method, **kwargs)
    assert_problem(resp, status, slug)
    _check_unchanged(h, before)


def test_expired_pairing_code_is_gone(hub: HubEnv) -> None:
    code = hub.pairing_code(ttl_s=30)
    hub.sql("SELECT 1")  # the code is in the DB, keyed; age it by moving its expiry
    _age_codes(hub)
    before = hub.snapshot()
    resp = hub.client().post("/api/v1/devices/enrol", json={"code": code, "name": "late"})
    assert_problem(resp, 410, "pairing-code-expired")
    _check_unchanged(hub, before)
    assert hub.count("auth_failures", "kind = 'pairing'") == 1  # a failure counts towards the lockout


def _age_codes(h: HubEnv) -> None:
    import sqlite3

    conn = sqlite3.connect(h.config.db_path)
    with conn:
        conn.execute("UPDATE pairing_codes SET expires_at = ?", (time.time() - 1,))
    conn.close()


def test_used_up_pairing_code_is_gone(hub: HubEnv) -> None:
    code = hub.pairing_code(max_uses=1)
    assert hub.client().post("/api/v1/devices/enrol", json={"code": code, "name": "first"}).status_code == 201
    before = hub.snapshot()
    resp = hub.client().post("/api/v1/devices/enrol", json={"code": code, "name": "second"})
    assert_problem(resp, 410, "pairing-code-used")
    _check_unchanged(hub, before)


def test_revoked_device_token_is_refused_at_once(hub: HubEnv) -> None:
    tablet = hub.enrol()
    assert hub.client().get("/api/v1/signin/students", headers=device(tablet.token)).status_code == 200
    r = hub.client().delete(f"/api/v1/devices/{tablet.device_id}", headers=bearer(hub.staff_token("teacher")))
    assert r.status_code == 204
    before = hub.snapshot()
    assert_problem(hub.client().get("/api/v1/signin/students", headers=device(tablet.token)), 401)
    sid, pin = hub.student("05")
    assert_problem(hub.client().post("/api/v1/signin", json={"student_id": sid, "pin": pin}, headers=device(tablet.token)), 401)
    _check_unchanged(hub, before)


def test_student_token_on_a_teacher_endpoint_is_forbidden(hub: HubEnv) -> None:
    tablet = hub.enrol()
    token = hub.sign_in(tablet, "06")
    before = hub.snapshot()
    assert_problem(hub.client().get(f"/api/v1/classes/{hub.class_id}/students", headers=student_headers(token, tablet.token)), 403)
    assert_problem(
        hub.client().post("/api/v1/pairing-codes", json={"class_id": hub.class_id}, headers=student_headers(token, tablet.token)), 403
    )
    _check_unchanged(hub, before)


def test_student_token_without_its_device_token_is_unauthenticated(hub: HubEnv) -> None:
    tablet, other = hub.enrol(name="a"), hub.enrol(name="b")
    token = hub.sign_in(tablet, "07")
    assert hub.client().get("/api/v1/me", headers=student_headers(token, tablet.token)).status_code == 200
    assert_problem(hub.client().get("/api/v1/me", headers=bearer(token)), 401)
    # nor with another tablet's token: a stolen session is useless elsewhere
    assert_problem(hub.client().get("/api/v1/me", headers=student_headers(token, other.token)), 401)


def test_every_error_from_the_api_is_problem_json(module_hub: HubEnv) -> None:
    # Werkzeug's own errors (404/405) too, not just our views'
    for path, method in (("/api/v1/nope", "GET"), ("/api/v1/me", "DELETE"), ("/nope", "GET")):
        resp = module_hub.client().open(path, method=method)
        assert resp.status_code in (404, 405)
        assert resp.mimetype == PROBLEM
