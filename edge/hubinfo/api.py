"""GET /api/v1/hub and the live-event stream."""

from __future__ import annotations

import socket

from apiflask import APIBlueprint
from flask import Response, request, stream_with_context
from pydantic import Field

from edge import API_MAJOR, __version__
from edge.auth.guard import STUDENT, current_principal, peek_device, peek_session, session_auth, session_still_valid
from edge.context import current_hub
from edge.errors import problem
from edge.health.metrics import LIVE_STREAMS
from edge.live.sse import stream
from edge.schemas import Out

bp = APIBlueprint("hubinfo", __name__, url_prefix="/api/v1", tag="Hub")


class HubOut(Out):
    id: str
    school: str
    room: str
    name: str
    api: int
    version: str


@bp.get("/hub")
@bp.output(HubOut)
@bp.doc(summary="This hub's identity (tablets verify the id they discovered by mDNS)", security=[])
def hub() -> dict[str, object]:
    h = current_hub()
    return {"id": h.hub_id, "school": h.config.hub.school, "room": h.config.hub.room, "name": h.name, "api": API_MAJOR, "version": __version__}


class SessionUser(Out):
    role: str
    id: int
    name: str
    class_ids: list[int]


class SessionClass(Out):
    id: int
    name: str


class SessionDevice(Out):
    id: str
    name: str
    kind: str
    class_: SessionClass | None = Field(None, alias="class")


class SessionLimits(Out):
    pairing_code_max_uses: int
    pairing_code_ttl_s: int


class SessionOut(Out):
    user: SessionUser | None
    device: SessionDevice | None
    limits: SessionLimits


@bp.get("/session")
@bp.output(SessionOut)
@bp.doc(
    summary="Who is signed in and whether this tablet is enrolled, without failing when nobody is",
    description="Always 200: `user` is null when no valid session is sent, `device` is null when this "
    "client is not an enrolled tablet (or was revoked). For the web app's start screen.",
    security=[],
)
def session() -> dict[str, object]:
    p = peek_session()
    sec = current_hub().config.security
    user = {"role": p.role, "id": p.user_id or p.student_id or 0, "name": p.name, "class_ids": p.class_ids} if p else None
    return {
        "user": user,
        "device": peek_device(),
        "limits": {"pairing_code_max_uses": sec.pairing_code_max_uses, "pairing_code_ttl_s": sec.pairing_code_ttl_s},
    }


@bp.get("/events")
@bp.auth_required(session_auth)
@bp.doc(
    summary="Live events (Server-Sent Events); resume with Last-Event-ID",
    description="Students receive their class's and their own events; staff those of their classes.",
    responses={200: {"description": "text/event-stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
def events() -> Response:
    p = current_principal()
    channels = {f"class:{c}" for c in p.class_ids}
    if p.role == STUDENT:
        channels.add(f"student:{p.student_id}")
        channels.add(f"device:{p.device_id}")
    else:
        channels |= {f"staff:{c}" for c in p.class_ids}
    raw_last = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    last_id = None
    if raw_last:
        if not raw_last.isdigit() or len(raw_last) > 18:
            problem(400, "bad-last-event-id", "Last-Event-ID must be a number")
        last_id = int(raw_last)
    h = current_hub()
    if h.bus.subscriber_count() >= h.config.http.stream_limit:
        # Each stream holds a worker thread; keep the rest for ordinary requests.
        # A retry usually lands on the other worker.
        problem(503, "too-many-streams", "this hub worker holds too many live streams; retry shortly", headers={"Retry-After": "2"})
    _bound_dead_peer_time(request.environ.get("gunicorn.socket"))

    session_id, device_id = p.session_id or 0, p.device_id

    def generate():  # type: ignore[no-untyped-def]
        LIVE_STREAMS.inc()
        try:
            yield from stream(
                h.bus, channels, last_id, h.config.http.sse_heartbeat_s,
                still_valid=lambda: session_still_valid(session_id, device_id),
                final_types=frozenset({"device.revoked"}),
            )
        finally:
            LIVE_STREAMS.dec()

    resp = Response(stream_with_context(generate()), mimetype="text/event-stream")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Accel-Buffering"] = "no"
    return resp


def _bound_dead_peer_time(sock: socket.socket | None) -> None:
    """A tablet that leaves the Wi-Fi mid-stream leaves a half-open connection
    holding a thread; with the heartbeat writes, TCP_USER_TIMEOUT ends it in
    under a minute instead of the kernel's ~15 minutes of retransmissions."""
    if sock is None or not hasattr(socket, "TCP_USER_TIMEOUT"):
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 45_000)
    except OSError:
        pass
