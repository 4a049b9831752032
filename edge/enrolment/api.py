"""HTTP API for pairing codes, tablet enrolment, the device list and revocation."""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import Response, jsonify
from pydantic import Field

from edge.auth.guard import ADMIN, DEVICE_COOKIE, STAFF, TEACHER, client_address, current_principal, session_auth
from edge.context import current_hub, db
from edge.enrolment import service
from edge.errors import problem
from edge.schemas import Out, StrictIn

bp = APIBlueprint("enrolment", __name__, url_prefix="/api/v1", tag="Enrolment")


def _raise(err: service.EnrolmentError) -> None:
    headers = {"Retry-After": str(err.retry_after)} if err.retry_after else None
    problem(err.status, err.slug, str(err), headers=headers)


class CodeIn(StrictIn):
    class_id: int | None = Field(None, ge=1, description="Class the tablets will belong to (student tablets).")
    kind: str = Field("student", pattern=r"^(student|teacher)$")
    max_uses: int = Field(1, ge=1, le=200, description="How many tablets may enrol with this code.")
    ttl_s: int | None = Field(None, ge=30, le=86400, description="Validity in seconds (default from configuration).")


class CodeOut(Out):
    id: int
    code: str
    expires_at: float
    max_uses: int
    kind: str
    class_id: int | None


@bp.post("/pairing-codes")
@bp.auth_required(session_auth, roles=[TEACHER, ADMIN])
@bp.input(CodeIn, arg_name="body")
@bp.output(CodeOut, status_code=201)
@bp.doc(summary="Show a new 6-digit pairing code for tablets to enrol with", responses={404: "No such class among yours"})
def create_code(body: CodeIn) -> tuple[dict[str, object], int]:
    hub = current_hub()
    p = current_principal()
    sec = hub.config.security
    if body.kind == "student":
        if body.class_id is None:
            problem(422, "class-required", "a student pairing code needs class_id")
        if body.class_id not in p.class_ids:
            problem(404, "no-such-class", f"no class with id {body.class_id} among yours")
    if body.max_uses > sec.pairing_code_max_uses:
        problem(422, "too-many-uses", f"a code may enrol at most {sec.pairing_code_max_uses} tablets")
    code = service.create_code(
        db(), hub.hub_secret, created_by=p.user_id or 0, kind=body.kind,
        class_id=body.class_id if body.kind == "student" else None,
        max_uses=body.max_uses, ttl_s=body.ttl_s or sec.pairing_code_ttl_s,
    )
    return {"id": code.id, "code": code.code, "expires_at": code.expires_at, "max_uses": code.max_uses, "kind": code.kind, "class_id": code.class_id}, 201


class EnrolIn(StrictIn):
    code: str = Field(pattern=r"^\d{6}$", description="The 6 digits the teacher shows.")
    name: str = Field(min_length=1, max_length=64, description="A name for this tablet, e.g. its cart slot.")
    request_id: str | None = Field(
        None, pattern=r"^[0-9a-fA-F-]{36}$",
        description="Client-generated UUID; a retry with the same id re-issues the token for the same device.",
    )


class EnrolClass(Out):
    id: int
    name: str


class EnrolOut(Out):
    device_id: str
    device_token: str
    hub_id: str
    kind: str
    class_: EnrolClass | None = Field(None, alias="class")


@bp.post("/devices/enrol")
@bp.input(EnrolIn, arg_name="body")
@bp.output(EnrolOut, status_code=201)
@bp.doc(
    summary="Enrol this tablet with a pairing code",
    security=[],
    responses={400: "Wrong code", 410: "Code expired or used up", 429: "Too many wrong codes"},
)
def enrol(body: EnrolIn) -> Response:
    hub = current_hub()
    sec = hub.config.security
    try:
        enrolled = service.enrol(
            db(), hub.hub_secret, code=body.code, name=body.name, source=client_address(),
            max_failures=sec.pairing_max_failures, token_ttl_days=sec.device_token_ttl_days,
            request_id=body.request_id.lower() if body.request_id else None,
        )
    except service.EnrolmentError as err:
        _raise(err)
    klass = None
    if enrolled.class_id is not None:
        row = db().execute("SELECT id, name FROM classes WHERE id = ?", (enrolled.class_id,)).fetchone()
        klass = {"id": row[0], "name": row[1]} if row else None
    resp = jsonify({"device_id": enrolled.device_uuid, "device_token": enrolled.token, "hub_id": hub.hub_id, "kind": enrolled.kind, "class": klass})
    resp.status_code = 201
    resp.set_cookie(DEVICE_COOKIE, enrolled.token, max_age=sec.device_token_ttl_days * 86400, httponly=True, samesite="Strict", path="/")
    if enrolled.class_id is not None:
        hub.bus.publish(
            f"staff:{enrolled.class_id}", "device.enrolled", {"device_id": enrolled.device_uuid, "name": body.name, "code_id": enrolled.code_id}
        )
    return resp


class DeviceListOut(Out):
    devices: list[dict[str, object]]


@bp.get("/devices")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(DeviceListOut)
@bp.doc(summary="Enrolled tablets (a teacher sees those of their classes)")
def devices() -> dict[str, object]:
    p = current_principal()
    return {"devices": service.list_devices(db(), None if p.role == ADMIN else p.class_ids)}


@bp.delete("/devices/<string:device_id>")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output({}, status_code=204)
@bp.doc(summary="Revoke a tablet: its token and sessions stop working at once")
def revoke(device_id: str) -> Response:
    p = current_principal()
    if len(device_id) > 64:
        problem(404, "no-such-device", "no such device")
    try:
        row_id = service.revoke(db(), device_id, None if p.role == ADMIN else p.class_ids)
    except service.EnrolmentError as err:
        _raise(err)
    # The tablet's open stream gets this last event and ends; the tablet goes back to pairing.
    current_hub().bus.publish(f"device:{row_id}", "device.revoked", {"device_id": device_id})
    return Response(status=204)


class OpenCode(Out):
    id: int
    kind: str
    class_id: int | None
    created_at: float
    expires_at: float
    max_uses: int
    uses: int


class OpenCodesOut(Out):
    codes: list[OpenCode]


@bp.get("/pairing-codes")
@bp.auth_required(session_auth, roles=[TEACHER, ADMIN])
@bp.output(OpenCodesOut)
@bp.doc(summary="Pairing codes still usable, with their uses (the digits are shown only when a code is made)")
def open_codes() -> dict[str, object]:
    p = current_principal()
    return {"codes": service.open_codes(db(), None if p.role == ADMIN else p.class_ids)}


@bp.delete("/pairing-codes/<int:code_id>")
@bp.auth_required(session_auth, roles=[TEACHER, ADMIN])
@bp.output({}, status_code=204)
@bp.doc(summary="Withdraw a pairing code before it expires", responses={404: "No such code among yours"})
def withdraw_code(code_id: int) -> Response:
    p = current_principal()
    try:
        service.withdraw_code(db(), code_id, None if p.role == ADMIN else p.class_ids)
    except service.EnrolmentError as err:
        _raise(err)
    return Response(status=204)
