"""HTTP API for staff login, accounts, classes, roster, student sign-in and attendance."""

from __future__ import annotations

import datetime as dt

from apiflask import APIBlueprint
from flask import Response, jsonify, request
from pydantic import Field

from edge.accounts import service
from edge.accounts.roster import RosterError, parse_roster
from edge.auth.guard import (
    ADMIN,
    DEVICE,
    SESSION_COOKIE,
    STAFF,
    STUDENT,
    TEACHER,
    client_address,
    current_principal,
    device_auth,
    session_auth,
)
from edge.context import current_hub, db
from edge.errors import problem
from edge.schemas import Out, StrictIn

bp = APIBlueprint("accounts", __name__, url_prefix="/api/v1", tag="Accounts")

MAX_ROSTER_BYTES = 2 * 1_048_576


def _raise(err: service.AccountError) -> None:
    headers = {"Retry-After": str(err.retry_after)} if err.retry_after else None
    problem(err.status, err.slug, str(err), headers=headers)


def _session_cookie(resp: Response, token: str, max_age: int) -> Response:
    resp.set_cookie(SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="Strict", path="/")
    return resp


# -- staff login ------------------------------------------------------------------


class LoginIn(StrictIn):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class UserOut(Out):
    id: int
    username: str
    display_name: str
    role: str


class LoginOut(Out):
    token: str
    expires_at: float
    user: UserOut


@bp.post("/auth/login")
@bp.input(LoginIn, arg_name="body")
@bp.output(LoginOut, status_code=201)
@bp.doc(summary="Staff login (teacher or admin)", responses={401: "Wrong username or password", 429: "Locked or rate-limited"})
def login(body: LoginIn) -> Response:
    sec = current_hub().config.security
    try:
        issued, user = service.staff_login(
            db(), body.username, body.password, client_address(), ttl_s=sec.session_ttl_s, max_failures=sec.password_max_failures
        )
    except service.AccountError as err:
        _raise(err)
    resp = jsonify({"token": issued.token, "expires_at": issued.expires_at, "user": user})
    resp.status_code = 201
    return _session_cookie(resp, issued.token, sec.session_ttl_s)


@bp.post("/auth/logout")
@bp.auth_required(session_auth, optional=True)
@bp.output({}, status_code=204)
@bp.doc(summary="End the current session (and clear the session cookie even if the session already ended)")
def logout() -> Response:
    p = session_auth.current_user
    if p is not None and p.session_id:
        service.end_session(db(), p.session_id)
    resp = Response(status=204)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


class MeOut(Out):
    role: str
    id: int
    name: str
    class_ids: list[int]


@bp.get("/me")
@bp.auth_required(session_auth)
@bp.output(MeOut)
@bp.doc(summary="Who is signed in")
def me() -> dict[str, object]:
    p = current_principal()
    return {"role": p.role, "id": p.user_id or p.student_id or 0, "name": p.name, "class_ids": p.class_ids}


# -- accounts (admin) ----------------------------------------------------------------


class UserIn(StrictIn):
    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    display_name: str = Field(min_length=1, max_length=64)
    role: str = Field(pattern=r"^(admin|teacher)$")
    password: str = Field(min_length=8, max_length=256)
    class_ids: list[int] = Field(default_factory=list, max_length=50)


class UserListOut(Out):
    users: list[dict[str, object]]


@bp.get("/users")
@bp.auth_required(session_auth, roles=[ADMIN])
@bp.output(UserListOut)
@bp.doc(summary="List staff accounts")
def users() -> dict[str, object]:
    return {"users": service.list_users(db())}


@bp.post("/users")
@bp.auth_required(session_auth, roles=[ADMIN])
@bp.input(UserIn, arg_name="body")
@bp.output(UserOut, status_code=201)
@bp.doc(summary="Create a staff account", responses={409: "Username taken"})
def create_user(body: UserIn) -> tuple[dict[str, object], int]:
    database = db()
    known = {c["id"] for c in service.list_classes(database)}
    unknown = [c for c in body.class_ids if c not in known]
    if unknown:
        problem(422, "no-such-class", f"no class with id {unknown[0]}")
    try:
        user_id = service.create_user(database, body.username, body.display_name, body.role, body.password)
    except service.AccountError as err:
        _raise(err)
    for class_id in body.class_ids:
        service.assign_teacher(database, class_id, user_id)
    return {"id": user_id, "username": body.username, "display_name": body.display_name, "role": body.role}, 201


class UserPatch(StrictIn):
    disabled: bool


@bp.patch("/users/<int:user_id>")
@bp.auth_required(session_auth, roles=[ADMIN])
@bp.input(UserPatch, arg_name="body")
@bp.output({}, status_code=204)
@bp.doc(summary="Disable or re-enable a staff account (disabling ends its sessions)")
def patch_user(user_id: int, body: UserPatch) -> Response:
    if user_id == current_principal().user_id and body.disabled:
        problem(409, "cannot-disable-self", "an admin cannot disable their own account")
    try:
        service.set_disabled(db(), user_id, body.disabled)
    except service.AccountError as err:
        _raise(err)
    return Response(status=204)


# -- classes and roster (teacher for own classes, admin for all) ---------------------


class ClassListOut(Out):
    classes: list[dict[str, object]]


@bp.get("/classes")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(ClassListOut)
@bp.doc(summary="Classes the caller may see")
def classes() -> dict[str, object]:
    p = current_principal()
    return {"classes": service.list_classes(db(), p.class_ids)}


class StudentListOut(Out):
    students: list[dict[str, object]]


def _own_class(class_id: int) -> None:
    if class_id not in current_principal().class_ids:
        problem(404, "no-such-class", f"no class with id {class_id} among yours")


@bp.get("/classes/<int:class_id>/students")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(StudentListOut)
@bp.doc(summary="The class roster")
def class_students(class_id: int) -> dict[str, object]:
    _own_class(class_id)
    return {"students": service.list_students(db(), [class_id])}


class RosterReport(Out):
    encoding: str
    created: int
    updated: int
    refused: list[dict[str, object]]
    generated_pins: list[dict[str, object]]


@bp.post("/classes/<int:class_id>/roster")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(RosterReport, status_code=201)
@bp.doc(
    summary="Import a roster CSV (UTF-8 or GBK) into this class",
    description="Body: the CSV file itself (Content-Type text/csv). Columns 姓名/name and 学号/number, optional PIN. "
    "Rows naming another class (班级) are refused. New students without a PIN get one; the PINs are in the answer once.",
    responses={415: "Not a CSV body", 422: "Unreadable file"},
)
def import_roster(class_id: int) -> tuple[dict[str, object], int]:
    _own_class(class_id)
    if request.mimetype not in ("text/csv", "application/octet-stream", "text/plain"):
        problem(415, "unsupported-media-type", "send the roster as the request body with Content-Type text/csv")
    request.max_content_length = MAX_ROSTER_BYTES
    raw = request.get_data(cache=False)
    try:
        parsed = parse_roster(raw)
    except RosterError as err:
        problem(422, "bad-roster", str(err))
    database = db()
    class_name = next(c["name"] for c in service.list_classes(database) if c["id"] == class_id)
    for row in parsed.rows:
        if row.class_name and row.class_name != class_name:
            parsed.refused.append({"line": row.line, "code": "other-class", "reason": f"row is for class {row.class_name}, not {class_name}"})
    parsed.rows = [r for r in parsed.rows if not r.class_name or r.class_name == class_name]
    return service.import_roster(database, parsed, str(class_name)), 201


class PinOut(Out):
    pin: str


@bp.post("/students/<int:student_id>/pin")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(PinOut, status_code=201)
@bp.doc(summary="Give a student a new PIN (also unlocks a locked sign-in)")
def reset_pin(student_id: int) -> tuple[dict[str, object], int]:
    row = db().execute("SELECT class_id FROM students WHERE id = ?", (student_id,)).fetchone()
    if row is None or row[0] not in current_principal().class_ids:
        problem(404, "no-such-student", "no such student in your classes")
    return {"pin": service.reset_student_pin(db(), student_id)}, 201


class AttendanceQuery(StrictIn):
    model_config = StrictIn.model_config | {"strict": False}
    day: dt.date | None = None


class AttendanceOut(Out):
    day: str
    present: int
    total: int
    students: list[dict[str, object]]


@bp.get("/classes/<int:class_id>/attendance")
@bp.auth_required(session_auth, roles=[TEACHER, ADMIN])
@bp.input(AttendanceQuery, location="query", arg_name="query")
@bp.output(AttendanceOut)
@bp.doc(summary="Who signed in on a day (default today)")
def class_attendance(class_id: int, query: AttendanceQuery) -> dict[str, object]:
    _own_class(class_id)
    day = query.day.isoformat() if query.day else service.school_day(current_hub().config.hub.timezone)
    rows = service.attendance(db(), class_id, day)
    return {"day": day, "present": sum(1 for r in rows if r["present"]), "total": len(rows), "students": rows}


# -- student sign-in on an enrolled tablet ------------------------------------------------


class SigninStudentsOut(Out):
    students: list[dict[str, object]]


@bp.get("/signin/students")
@bp.auth_required(device_auth, roles=[DEVICE])
@bp.output(SigninStudentsOut)
@bp.doc(summary="Names to pick from on this tablet's sign-in screen", tags=["Sign-in"])
def signin_students() -> dict[str, object]:
    p = current_principal()
    rows = service.list_students(db(), p.class_ids)
    return {"students": [{"id": r["id"], "name": r["name"], "number": r["number"]} for r in rows]}


class SigninIn(StrictIn):
    student_id: int = Field(ge=1)
    pin: str = Field(pattern=r"^\d{4,6}$")


class SigninStudent(Out):
    id: int
    name: str


class SigninOut(Out):
    token: str
    expires_at: float
    student: SigninStudent


@bp.post("/signin")
@bp.auth_required(device_auth, roles=[DEVICE])
@bp.input(SigninIn, arg_name="body")
@bp.output(SigninOut, status_code=201)
@bp.doc(summary="Student sign-in (name + PIN) on an enrolled tablet; records attendance", tags=["Sign-in"],
        responses={401: "Wrong student or PIN", 429: "Too many wrong PINs"})
def signin(body: SigninIn) -> Response:
    p = current_principal()
    hub = current_hub()
    sec = hub.config.security
    device_class = p.class_ids[0] if p.class_ids else None
    try:
        issued, student = service.student_sign_in(
            db(),
            student_id=body.student_id,
            pin=body.pin,
            device_id=p.device_id or 0,
            device_class_id=device_class,
            ttl_s=sec.session_ttl_s,
            max_failures=sec.pin_max_failures,
            lockout_s=sec.pin_lockout_s,
            timezone=hub.config.hub.timezone,
        )
    except service.AccountError as err:
        _raise(err)
    hub.bus.publish(f"class:{student['class_id']}", "student.signed_in", {"student_id": student["id"], "name": student["name"]})
    resp = jsonify({"token": issued.token, "expires_at": issued.expires_at, "student": {"id": student["id"], "name": student["name"]}})
    resp.status_code = 201
    return _session_cookie(resp, issued.token, sec.session_ttl_s)


class MyAttendanceOut(Out):
    days: list[dict[str, object]]


@bp.get("/me/attendance")
@bp.auth_required(session_auth, roles=[STUDENT])
@bp.output(MyAttendanceOut)
@bp.doc(summary="The signed-in student's own attendance", tags=["Sign-in"])
def my_attendance() -> dict[str, object]:
    p = current_principal()
    rows = db().execute(
        "SELECT day, first_seen, sign_ins FROM attendance WHERE student_id = ? ORDER BY day DESC LIMIT 60", (p.student_id,)
    ).fetchall()
    return {"days": [{"day": r[0], "first_seen": r[1], "sign_ins": r[2]} for r in rows]}
