"""The web app's start-screen question, managing open pairing codes, and revocation pushed to the tablet."""

from __future__ import annotations

from .support import HubEnv, assert_problem, bearer, device, student_headers


def test_session_answers_200_for_nobody_and_names_the_tablet_and_user(hub: HubEnv) -> None:
    anon = hub.client().get("/api/v1/session")
    assert anon.status_code == 200
    body = anon.get_json()
    assert body["user"] is None and body["device"] is None
    assert body["limits"]["pairing_code_max_uses"] == hub.config.security.pairing_code_max_uses

    tablet = hub.enrol(name="平板-07")
    as_device = hub.client().get("/api/v1/session", headers=device(tablet.token)).get_json()
    assert as_device["user"] is None
    assert as_device["device"]["id"] == tablet.device_id
    assert as_device["device"]["name"] == "平板-07"
    assert as_device["device"]["class"]["id"] == hub.class_id

    token = hub.sign_in(tablet, "03")
    signed_in = hub.client().get("/api/v1/session", headers=student_headers(token, tablet.token)).get_json()
    assert signed_in["user"]["role"] == "student"
    # A student session without its tablet's token is no session at all.
    assert hub.client().get("/api/v1/session", headers=bearer(token)).get_json()["user"] is None


def test_a_revoked_tablet_is_not_reported_as_enrolled(hub: HubEnv) -> None:
    tablet = hub.enrol()
    teacher = bearer(hub.staff_token("teacher"))
    assert hub.client().delete(f"/api/v1/devices/{tablet.device_id}", headers=teacher).status_code == 204
    assert hub.client().get("/api/v1/session", headers=device(tablet.token)).get_json()["device"] is None


def test_open_codes_show_uses_but_never_the_digits_and_can_be_withdrawn(hub: HubEnv) -> None:
    teacher = bearer(hub.staff_token("teacher"))
    made = hub.client().post("/api/v1/pairing-codes", json={"class_id": hub.class_id, "max_uses": 3}, headers=teacher).get_json()
    enrolled = hub.client().post("/api/v1/devices/enrol", json={"code": made["code"], "name": "t1"})
    assert enrolled.status_code == 201
    listing = hub.client().get("/api/v1/pairing-codes", headers=teacher)
    codes = {c["id"]: c for c in listing.get_json()["codes"]}
    assert codes[made["id"]]["uses"] == 1 and codes[made["id"]]["max_uses"] == 3
    assert made["code"] not in listing.get_data(as_text=True)
    # another class's teacher neither sees nor withdraws it
    other = bearer(hub.staff_token("other_teacher"))
    assert made["id"] not in {c["id"] for c in hub.client().get("/api/v1/pairing-codes", headers=other).get_json()["codes"]}
    assert_problem(hub.client().delete(f"/api/v1/pairing-codes/{made['id']}", headers=other), 404, "no-such-code")
    assert hub.client().delete(f"/api/v1/pairing-codes/{made['id']}", headers=teacher).status_code == 204
    assert_problem(hub.client().post("/api/v1/devices/enrol", json={"code": made["code"], "name": "t2"}), 400, "bad-pairing-code")
    assert made["id"] not in {c["id"] for c in hub.client().get("/api/v1/pairing-codes", headers=teacher).get_json()["codes"]}


def test_revoking_a_tablet_pushes_a_last_event_that_ends_its_stream(hub: HubEnv) -> None:
    tablet = hub.enrol()
    token = hub.sign_in(tablet, "05")
    resp = hub.client().get("/api/v1/events", headers=student_headers(token, tablet.token), buffered=False)
    assert resp.status_code == 200
    chunks = iter(resp.response)
    assert next(chunks).startswith(b"retry:")
    teacher = bearer(hub.staff_token("teacher"))
    assert hub.client().delete(f"/api/v1/devices/{tablet.device_id}", headers=teacher).status_code == 204
    rest = b"".join(chunks)  # ends by itself after the revocation event
    assert b"event: device.revoked" in rest
    assert tablet.device_id.encode() in rest
    resp.close()


def test_enrolment_events_go_to_staff_not_to_students(hub: HubEnv) -> None:
    """Device ids are enough to attempt a retry-enrolment; students have no need to see them."""
    tablet = hub.enrol()
    hub.enrol(name="second")
    rows = hub.sql("SELECT channel FROM live_events WHERE type = 'device.enrolled'")
    assert rows and all(r[0].startswith("staff:") for r in rows)
    assert tablet  # the first enrolment also produced one


def test_logout_clears_the_cookie_even_after_the_session_ended(hub: HubEnv) -> None:
    browser = hub.client(cookies=True)
    login = browser.post("/api/v1/auth/login", json={"username": hub.creds.teacher[0], "password": hub.creds.teacher[1]})
    assert login.status_code == 201
    # the session ends elsewhere (password changed, account disabled...)
    hub.sql("UPDATE sessions SET ended_at = 1")
    out = browser.post("/api/v1/auth/logout")
    assert out.status_code == 204
    assert "hub_session=;" in out.headers.get("Set-Cookie", "")
