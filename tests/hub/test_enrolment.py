"""Tablet enrolment: codes, retries, token storage, revocation."""

from __future__ import annotations

import uuid
from pathlib import Path

from .support import HubEnv, assert_problem, bearer, device, student_headers


def test_a_codes_max_uses_is_enforced(hub: HubEnv) -> None:
    code = hub.pairing_code(max_uses=3)
    for i in range(3):
        assert hub.client().post("/api/v1/devices/enrol", json={"code": code, "name": f"t{i}"}).status_code == 201
    assert_problem(hub.client().post("/api/v1/devices/enrol", json={"code": code, "name": "t4"}), 410, "pairing-code-used")
    assert hub.count("devices") == 3
    assert hub.sql("SELECT uses FROM pairing_codes")[0][0] == 3


def test_retried_enrol_with_the_same_request_id_is_the_same_device(hub: HubEnv) -> None:
    code = hub.pairing_code(max_uses=2)
    rid = str(uuid.uuid4())
    first = hub.client().post("/api/v1/devices/enrol", json={"code": code, "name": "slot 7", "request_id": rid})
    second = hub.client().post("/api/v1/devices/enrol", json={"code": code, "name": "slot 7", "request_id": rid})
    assert first.status_code == second.status_code == 201
    a, b = first.get_json(), second.get_json()
    assert a["device_id"] == b["device_id"] == rid
    assert a["device_token"] != b["device_token"]
    assert hub.client().get("/api/v1/signin/students", headers=device(b["device_token"])).status_code == 200
    assert hub.count("devices") == 1
    assert hub.sql("SELECT uses FROM pairing_codes")[0][0] == 1


def test_enrol_retry_with_a_wrong_code_cannot_take_over_a_device(hub: HubEnv) -> None:
    # Device ids are not secret (the device list, live events); a retry must prove it holds the code.
    tablet = hub.enrol(request_id=str(uuid.uuid4()))
    resp = hub.client().post("/api/v1/devices/enrol", json={"code": "000000", "name": "thief", "request_id": tablet.device_id})
    assert resp.status_code == 400, resp.get_json()
    assert hub.client().get("/api/v1/signin/students", headers=device(tablet.token)).status_code == 200


def test_request_id_of_a_revoked_device_enrols_a_new_device(hub: HubEnv) -> None:
    rid = str(uuid.uuid4())
    tablet = hub.enrol(request_id=rid)
    assert hub.client().delete(f"/api/v1/devices/{rid}", headers=bearer(hub.staff_token("teacher"))).status_code == 204
    code = hub.pairing_code()
    resp = hub.client().post("/api/v1/devices/enrol", json={"code": code, "name": "again", "request_id": rid})
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["device_id"] != rid  # a new device, not the revoked one brought back
    token = resp.get_json()["device_token"]
    assert hub.client().get("/api/v1/signin/students", headers=device(token)).status_code == 200
    assert hub.client().get("/api/v1/signin/students", headers=device(tablet.token)).status_code == 401


def _raw_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("hub.sqlite3*")))


def test_device_and_session_tokens_are_stored_only_hashed(hub: HubEnv) -> None:
    tablet = hub.enrol()
    session = hub.sign_in(tablet, "12")
    staff = hub.login(*hub.creds.teacher)
    raw = _raw_bytes(hub.config.hub.data_dir)
    assert len(raw) > 10_000
    for token in (tablet.token, session, staff):
        assert token.encode() not in raw
    # the hash is there (the check above would pass trivially on an empty file)
    import hashlib

    assert hub.count("devices", "token_hash = ?", (hashlib.sha256(tablet.token.encode()).hexdigest(),)) == 1


def test_pairing_codes_are_not_stored_in_clear(hub: HubEnv) -> None:
    code = hub.pairing_code()
    assert hub.count("pairing_codes", "code_hash = ?", (code,)) == 0
    assert all(len(r[0]) == 64 for r in hub.sql("SELECT code_hash FROM pairing_codes"))


def test_revoking_a_device_ends_its_student_sessions_at_once(hub: HubEnv) -> None:
    tablet = hub.enrol()
    token = hub.sign_in(tablet, "13")
    headers = student_headers(token, tablet.token)
    assert hub.client().get("/api/v1/me", headers=headers).status_code == 200
    assert hub.client().delete(f"/api/v1/devices/{tablet.device_id}", headers=bearer(hub.staff_token("teacher"))).status_code == 204
    assert_problem(hub.client().get("/api/v1/me", headers=headers), 401)
    assert_problem(hub.client().get("/api/v1/me/attendance", headers=headers), 401)
    assert hub.count("sessions", "device_id = (SELECT id FROM devices WHERE uuid = ?) AND ended_at IS NULL", (tablet.device_id,)) == 0


def test_a_teacher_cannot_revoke_another_class_tablet(hub: HubEnv) -> None:
    tablet = hub.enrol(class_id=hub.other_class_id)
    assert_problem(hub.client().delete(f"/api/v1/devices/{tablet.device_id}", headers=bearer(hub.staff_token("teacher"))), 404)
    assert hub.client().get("/api/v1/signin/students", headers=device(tablet.token)).status_code == 200


def test_enrolment_cookie_lets_a_browser_tablet_sign_in(hub: HubEnv) -> None:
    # A browser tablet keeps the tokens in cookies: one client = one tablet.
    tab = hub.client(cookies=True)
    code = hub.pairing_code()
    assert tab.post("/api/v1/devices/enrol", json={"code": code, "name": "browser"}).status_code == 201
    sid, pin = hub.student("14")
    assert tab.post("/api/v1/signin", json={"student_id": sid, "pin": pin}).status_code == 201
    me = tab.get("/api/v1/me")
    assert me.status_code == 200 and me.get_json()["id"] == sid
    # another tablet (no cookies) is nobody
    assert hub.client(cookies=True).get("/api/v1/me").status_code == 401
    assert tab.post("/api/v1/auth/logout").status_code == 204
    assert tab.get("/api/v1/me").status_code == 401
