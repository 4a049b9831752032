"""HTTP API: the cart link (authenticated with each cart's own key, never with
tablet or session tokens), the fleet for staff, battery reports from tablets."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Literal, NoReturn

from apiflask import APIBlueprint
from flask import Response, request, send_file
from pydantic import Field

from edge.auth.guard import ADMIN, DEVICE, STAFF, STUDENT, current_principal, device_auth, session_auth
from edge.context import current_hub, db
from edge.devices import link, lock, rollout, service
from edge.errors import problem
from edge.schemas import Out, StrictIn

log = logging.getLogger(__name__)
bp = APIBlueprint("devices", __name__, url_prefix="/api/v1", tag="Carts and tablets")

CART_SCHEME = "CartMac"


@bp.record_once
def _declare_cart_scheme(state: Any) -> None:
    # The cart link's own authentication, so the OpenAPI document says how those
    # operations are protected (they take no session or device token).
    schemes = dict(state.app.config.get("SECURITY_SCHEMES") or {})
    state.app.config["SECURITY_SCHEMES"] = schemes  # merged with the auth schemes by APIFlask
    schemes[CART_SCHEME] = {
        "type": "apiKey", "in": "header", "name": "X-Cart-Mac",
        "description": "HMAC-SHA256 with the cart's key over method, path, X-Cart-Id, X-Cart-Counter and body "
                       "(firmware/cart/protocol.py); X-Cart-Counter must exceed every counter accepted before.",
    }


def _fleet(err: service.FleetError) -> NoReturn:
    problem(err.status, err.slug, str(err))


def _scope() -> list[int] | None:
    p = current_principal()
    return None if p.role == ADMIN else p.class_ids


# -- the cart link ------------------------------------------------------------------------


def _cart_refused(exc: Exception, status: int, slug: str) -> NoReturn:
    log.warning("cart request refused", extra={"cart": getattr(exc, "cart_id", None) or request.headers.get("X-Cart-Id", "")[:40],
                                               "reason": str(exc), "remote": request.remote_addr, "path": request.path})
    problem(status, slug, str(exc))


@bp.post("/cart-link/telemetry")
@bp.doc(summary="A cart posts telemetry and receives its charge plan and commands",
        description="Authenticated with X-Cart-Id, X-Cart-Counter and X-Cart-Mac (HMAC-SHA256 with the cart's key, "
                    "see firmware/cart/protocol.py). The reply carries X-Cart-Mac over the reply body.",
        security=CART_SCHEME, responses={401: "Bad MAC, unknown cart or replayed counter", 422: "Telemetry out of range"})
def cart_telemetry() -> Response:
    body = request.get_data(cache=True)
    try:
        auth = link.authenticate(db(), "POST", request.path, request.headers, body)
        cfg = current_hub().config
        reply, events = link.accept_telemetry(db(), auth, body, clock=link.Clock(cfg.hub.timezone, cfg.devices.end_of_day))
    except link.CartAuthError as exc:
        _cart_refused(exc, 401, "cart-unauthenticated")
    except link.TelemetryError as exc:
        _cart_refused(exc, 422, "bad-telemetry")
    hub = current_hub()
    if events:
        for channel, type_, data in events:
            hub.bus.publish(channel, type_, data)
    payload = json.dumps(reply, separators=(",", ":")).encode()
    resp = Response(payload, mimetype="application/json")
    resp.headers["X-Cart-Mac"] = link.sign_reply(auth, payload)
    return resp


@bp.get("/cart-link/firmware/<string:version>/<string:name>")
@bp.doc(summary="A cart downloads one file of a firmware release (authenticated like telemetry)", security=CART_SCHEME,
        responses={200: "The file; X-Cart-Mac authenticates it", 401: "Bad MAC, unknown cart or replayed counter", 404: "No such file"})
def cart_firmware(version: str, name: str) -> Response:
    try:
        auth = link.authenticate(db(), "GET", request.path, request.headers, b"")
        from edge.storage.db import transaction

        with transaction(db()):
            link.consume_counter(db(), auth)
    except link.CartAuthError as exc:
        _cart_refused(exc, 401, "cart-unauthenticated")
    path = rollout.release_file(db(), version, name)
    if path is None or not path.is_file():
        problem(404, "no-such-file", "no such firmware file")
    data = path.read_bytes()
    resp = send_file(path, mimetype="application/octet-stream")
    resp.headers["X-Cart-Mac"] = link.sign_reply(auth, data)
    return resp


# -- carts -------------------------------------------------------------------------------


class CartIn(StrictIn):
    id: str = Field(pattern=r"^[a-z0-9-]{1,32}$", description="The cart's id (printed on the cart).")
    name: str = Field(min_length=1, max_length=64)
    slots: int = Field(60, ge=1, le=64)
    budget_w: float = Field(1440.0, ge=30, le=10000, description="The circuit's continuous budget in watts (80 % of its rating).")
    class_id: int | None = Field(None, ge=1)
    volts: float = Field(220.0, ge=90, le=260, description="Mains voltage of the circuit (220 in China, 120 in North America).")


class CartKeyOut(Out):
    id: str
    key: str = Field(description="The cart's link key, hex. Shown once: put it in the cart's cart.json.")


@bp.post("/carts")
@bp.auth_required(session_auth, roles=[ADMIN])
@bp.input(CartIn, arg_name="body")
@bp.output(CartKeyOut, status_code=201)
@bp.doc(summary="Enrol a charging cart; its link key is shown once", responses={404: "No such class", 409: "Cart already enrolled"})
def add_cart(body: CartIn) -> tuple[dict[str, Any], int]:
    try:
        key = service.add_cart(db(), body.id, body.name, body.slots, body.budget_w, body.class_id, body.volts)
    except service.FleetError as err:
        _fleet(err)
    return {"id": body.id, "key": key}, 201


class CartsOut(Out):
    carts: list[dict[str, Any]]


@bp.get("/carts")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(CartsOut)
@bp.doc(summary="Carts at a glance: slots, charging, faults, temperature, firmware, open alerts, the door lock",
        description="Each cart also has `lock_command` (its newest door lock command and where it stands) and "
                    "`can_lock` (whether the caller may lock or unlock it: admins any cart, teachers their classes' carts).")
def list_carts() -> dict[str, Any]:
    scope = _scope()
    carts = service.carts(db())
    for cart in carts:
        cart["lock_command"] = lock.latest(db(), cart["id"])
        cart["can_lock"] = scope is None or cart["class_id"] in scope
    return {"carts": carts}


class LockIn(StrictIn):
    op: Literal["lock", "unlock"] = Field(description="lock or unlock the cart's door")


class LockCommandOut(Out):
    id: int = Field(description="The command's id; the cart reports its outcome under it.")
    op: str
    status: str = Field(description="queued, sent, waiting (lock: the door is open), done, refused, superseded or expired")
    detail: str | None
    requested_at: float
    acked_at: float | None


@bp.post("/carts/<string:cart_id>/lock-commands")
@bp.auth_required(session_auth, roles=STAFF)
@bp.input(LockIn, arg_name="body")
@bp.output(LockCommandOut, status_code=202)
@bp.doc(summary="Lock or unlock a cart's door (teachers: their classes' carts; admins: any)",
        description="Queued and sent in the authenticated reply to the cart's next telemetry; the cart reports the outcome "
                    "in a later one (GET /carts shows it as lock_command). The cart refuses to unlock during a thermal "
                    "cut-off and locks only once its door is closed. A newer command replaces an open one; one the cart "
                    f"has not confirmed within {lock.COMMAND_TTL_S // 60} minutes expires.",
        responses={404: "No such cart among the caller's classes' carts"})
def lock_command(cart_id: str, body: LockIn) -> tuple[dict[str, Any], int]:
    p = current_principal()
    try:
        cmd = lock.request(db(), cart_id, body.op, p.user_id, p.role, _scope())
    except service.FleetError as err:
        _fleet(err)
    return cmd, 202


@bp.post("/carts/end-of-day")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(CartsOut)
@bp.doc(summary="End of the day: every tablet still out raises an alert and an event for the district")
def end_of_day() -> dict[str, Any]:
    cfg = current_hub().config
    clock = link.Clock(cfg.hub.timezone, cfg.devices.end_of_day)
    now = time.time()
    raised = service.end_of_day(db(), now, clock.midnight(now))
    hub = current_hub()
    for item in raised:
        if item["class_id"]:
            hub.bus.publish(f"staff:{item['class_id']}", "tablet.not_returned", item)
    return {"carts": raised}


# -- tablets -----------------------------------------------------------------------------


class TabletIn(StrictIn):
    serial: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    model: str = Field("", max_length=64)
    cart_id: str | None = Field(None, pattern=r"^[a-z0-9-]{1,32}$")
    slot: int | None = Field(None, ge=1, le=64)
    device_id: str | None = Field(None, max_length=64, description="The enrolled device's id, if the tablet is enrolled.")
    student_id: int | None = Field(None, ge=1)


class IdOut(Out):
    id: int


@bp.post("/tablets")
@bp.auth_required(session_auth, roles=[ADMIN])
@bp.input(TabletIn, arg_name="body")
@bp.output(IdOut, status_code=201)
@bp.doc(summary="Add a tablet to the fleet (serial, model, home slot, enrolled device, assigned student)",
        responses={404: "No such cart, device or student", 409: "Serial or slot already taken", 422: "Slot out of range"})
def add_tablet(body: TabletIn) -> tuple[dict[str, Any], int]:
    try:
        tid = service.add_tablet(db(), body.serial, body.model, body.cart_id, body.slot, body.device_id, body.student_id)
    except service.FleetError as err:
        _fleet(err)
    return {"id": tid}, 201


class TabletsOut(Out):
    tablets: list[dict[str, Any]]


@bp.get("/tablets")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(TabletsOut)
@bp.doc(summary="The fleet: where each tablet is, its battery, who has it")
def list_tablets() -> dict[str, Any]:
    return {"tablets": service.tablets(db(), _scope())}


class CheckoutIn(StrictIn):
    student_id: int | None = Field(None, ge=1, description="Who takes the tablet (omit for a teacher's own use).")


@bp.post("/tablets/<int:tablet_id>/checkout")
@bp.auth_required(session_auth, roles=STAFF)
@bp.input(CheckoutIn, arg_name="body")
@bp.output({}, status_code=204)
@bp.doc(summary="Check a tablet out of the cart to a student", responses={404: "No such tablet or student", 409: "Already checked out"})
def checkout(tablet_id: int, body: CheckoutIn) -> Response:
    try:
        service.check_out(db(), tablet_id, body.student_id, _scope())
    except service.FleetError as err:
        _fleet(err)
    return Response(status=204)


@bp.post("/tablets/<int:tablet_id>/checkin")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output({}, status_code=204)
@bp.doc(summary="Check a tablet back in (the cart also does this when it sees the tablet docked)", responses={404: "No such tablet"})
def checkin(tablet_id: int) -> Response:
    try:
        service.check_in(db(), tablet_id, _scope())
    except service.FleetError as err:
        _fleet(err)
    return Response(status=204)


class BatteryIn(StrictIn):
    level: float = Field(ge=0.0, le=1.0, description="navigator.getBattery().level")
    charging: bool = False


@bp.post("/tablets/battery")
@bp.auth_required(device_auth, roles=[DEVICE, STUDENT])
@bp.input(BatteryIn, arg_name="body")
@bp.output({}, status_code=204)
@bp.doc(
    summary="An enrolled tablet reports its battery level (where the browser exposes it)",
    description="204 when recorded; 202 when this tablet is not in the fleet inventory (nothing to plan for, "
    "and nothing wrong with the tablet, so it is not an error).",
    responses={202: "Tablet not in the fleet; nothing recorded"},
)
def battery(body: BatteryIn) -> Response:
    p = current_principal()
    try:
        service.report_battery(db(), p.device_id or 0, body.level, None)
    except service.FleetError as err:
        if err.slug == "not-in-fleet":
            return Response('{"recorded":false}', status=202, mimetype="application/json")
        _fleet(err)
    return Response(status=204)


# -- firmware ----------------------------------------------------------------------------


class RolloutIn(StrictIn):
    version: str = Field(pattern=r"^[a-z0-9._-]{1,24}$")
    carts: list[str] | None = Field(None, max_length=64, description="Carts in update order; default all.")


class RolloutsOut(Out):
    rollouts: list[dict[str, Any]]
    releases: list[str]


@bp.post("/firmware/rollouts")
@bp.auth_required(session_auth, roles=[ADMIN])
@bp.input(RolloutIn, arg_name="body")
@bp.output(IdOut, status_code=201)
@bp.doc(summary="Roll a firmware release out to carts one at a time; stops by itself on a failure",
        responses={409: "No such release, unknown carts, or a rollout already running"})
def start_rollout(body: RolloutIn) -> tuple[dict[str, Any], int]:
    carts = body.carts or [c["id"] for c in service.carts(db())]
    try:
        rid = rollout.start(db(), body.version, carts)
    except rollout.RolloutError as exc:
        problem(409, "rollout-refused", str(exc))
    return {"id": rid}, 201


@bp.get("/firmware/rollouts")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(RolloutsOut)
@bp.doc(summary="Firmware releases and rollouts")
def rollouts() -> dict[str, Any]:
    return {"rollouts": rollout.status(db()), "releases": [r[0] for r in db().execute("SELECT version FROM firmware_releases ORDER BY created_at")]}
