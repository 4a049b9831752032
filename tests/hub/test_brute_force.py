"""Guessing pairing codes, PINs and passwords is slowed, then stopped."""

from __future__ import annotations

import secrets

from .support import HubEnv, assert_problem, bearer, device


def _wrong_code(right: str) -> str:
    while True:
        guess = f"{secrets.randbelow(1_000_000):06d}"
        if guess != right:
            return guess


def _enrol(h: HubEnv, code: str, addr: str = "10.0.0.5") -> object:
    return h.client().post("/api/v1/devices/enrol", json={"code": code, "name": "guesser"}, environ_base={"REMOTE_ADDR": addr})


def test_pairing_code_guessing_from_one_tablet_gets_429_with_retry_after(hub: HubEnv) -> None:
    code = hub.pairing_code()
    for _ in range(5):
        assert_problem(_enrol(hub, _wrong_code(code)), 400, "bad-pairing-code")
    resp = _enrol(hub, _wrong_code(code))
    assert_problem(resp, 429, "too-many-attempts")
    assert int(resp.headers["Retry-After"]) > 0
    # even the right code is refused from that source while it is limited...
    assert_problem(_enrol(hub, code), 429)
    # ...but another tablet can still use it
    assert _enrol(hub, code, addr="10.0.0.6").status_code == 201


def test_hub_wide_pairing_failures_withdraw_every_open_code(hub: HubEnv) -> None:
    limit = hub.config.security.pairing_max_failures
    code_a = hub.pairing_code(max_uses=5)
    code_b = hub.pairing_code(class_id=hub.other_class_id, max_uses=5)
    # spread over sources so the per-source limit (5) does not hide the hub-wide one
    for i in range(limit):
        assert_problem(_enrol(hub, _wrong_code(code_a), addr=f"10.0.1.{i // 4}"), 400)
    assert hub.count("pairing_codes", "withdrawn = 0") == 0
    for code in (code_a, code_b):
        assert_problem(_enrol(hub, code, addr="10.0.2.1"), 400, "bad-pairing-code")
    # the teacher shows a new code and enrolment works again
    fresh = hub.pairing_code()
    assert _enrol(hub, fresh, addr="10.0.2.2").status_code == 201


def test_pin_guessing_locks_the_student_and_the_right_pin_is_refused_during_lockout(hub: HubEnv) -> None:
    tablet = hub.enrol()
    sid, pin = hub.student("10")
    wrong = "0000" if pin != "0000" else "1111"
    n = hub.config.security.pin_max_failures
    for _ in range(n):
        assert_problem(hub.client().post("/api/v1/signin", json={"student_id": sid, "pin": wrong}, headers=device(tablet.token)), 401)
    resp = hub.client().post("/api/v1/signin", json={"student_id": sid, "pin": pin}, headers=device(tablet.token))
    assert_problem(resp, 429, "signin-locked")
    assert 0 < int(resp.headers["Retry-After"]) <= hub.config.security.pin_lockout_s + 1
    assert hub.count("sessions", "student_id = ?", (sid,)) == 0
    assert hub.count("attendance", "student_id = ?", (sid,)) == 0
    # the teacher resets the PIN: that also lifts the lock
    new_pin = hub.client().post(f"/api/v1/students/{sid}/pin", headers=bearer(hub.staff_token("teacher"))).get_json()["pin"]
    assert hub.client().post("/api/v1/signin", json={"student_id": sid, "pin": new_pin}, headers=device(tablet.token)).status_code == 201


def test_pin_failures_below_the_limit_do_not_lock(hub: HubEnv) -> None:
    tablet = hub.enrol()
    sid, pin = hub.student("11")
    wrong = "0000" if pin != "0000" else "1111"
    for _ in range(hub.config.security.pin_max_failures - 1):
        hub.client().post("/api/v1/signin", json={"student_id": sid, "pin": wrong}, headers=device(tablet.token))
    assert hub.client().post("/api/v1/signin", json={"student_id": sid, "pin": pin}, headers=device(tablet.token)).status_code == 201


def test_staff_password_guessing_locks_the_account(hub: HubEnv) -> None:
    user, password = hub.creds.other_teacher
    for _ in range(hub.config.security.password_max_failures):
        assert_problem(hub.client().post("/api/v1/auth/login", json={"username": user, "password": "wrong-password"}), 401, "bad-credentials")
    resp = hub.client().post("/api/v1/auth/login", json={"username": user, "password": password})
    assert_problem(resp, 429, "account-locked")
    assert int(resp.headers["Retry-After"]) > 0
    assert hub.count("sessions", "user_id = (SELECT id FROM users WHERE username = ?)", (user,)) == 0
    # other accounts are not affected
    assert hub.client().post("/api/v1/auth/login", json={"username": hub.creds.teacher[0], "password": hub.creds.teacher[1]}).status_code == 201


def test_unknown_usernames_count_against_the_source(hub: HubEnv) -> None:
    limit = hub.config.security.password_max_failures * 3
    for i in range(limit):
        hub.client().post("/api/v1/auth/login", json={"username": f"nobody{i}", "password": "x"}, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    resp = hub.client().post(
        "/api/v1/auth/login", json={"username": hub.creds.teacher[0], "password": hub.creds.teacher[1]}, environ_base={"REMOTE_ADDR": "10.9.9.9"}
    )
    assert_problem(resp, 429, "too-many-attempts")
    assert "Retry-After" in resp.headers


def test_a_tablet_guessing_pins_across_many_students_is_stopped(hub: HubEnv) -> None:
    """Per-student lockouts alone would let one tablet try a few PINs on every child."""
    from edge.accounts.service import DEVICE_PIN_LIMIT

    tablet = hub.enrol()
    numbers = sorted(n for n in hub.creds.pins if n.isdigit())  # this class only
    for i in range(DEVICE_PIN_LIMIT):
        sid, pin = hub.student(numbers[i % len(numbers)])
        wrong = "0000" if pin != "0000" else "1111"
        assert_problem(hub.client().post("/api/v1/signin", json={"student_id": sid, "pin": wrong}, headers=device(tablet.token)), 401)
    # Even the right PIN of a student who is not locked is refused from this tablet now...
    sid, pin = hub.student(numbers[-1])
    resp = hub.client().post("/api/v1/signin", json={"student_id": sid, "pin": pin}, headers=device(tablet.token))
    assert_problem(resp, 429, "signin-locked")
    assert int(resp.headers["Retry-After"]) > 0
    # ...while another tablet in the class signs that student in.
    other = hub.enrol()
    assert hub.client().post("/api/v1/signin", json={"student_id": sid, "pin": pin}, headers=device(other.token)).status_code == 201
