"""/healthz, /readyz and /metrics."""

from __future__ import annotations

import ipaddress

from apiflask import APIBlueprint
from flask import Response, request

from edge.auth.guard import ADMIN, session_auth
from edge.context import current_hub
from edge.errors import problem
from edge.health import checks, metrics

bp = APIBlueprint("health", __name__, tag="Operations")


@bp.get("/healthz")
@bp.doc(summary="Alive: the process answers", security=[])
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@bp.get("/readyz")
@bp.doc(summary="Ready: database reachable, migrations done, free disk above the reserve", security=[],
        responses={200: "Ready; the body lists each check", 503: "Not ready; the body says which check failed"})
def readyz() -> Response | tuple[dict[str, object], int]:
    hub = current_hub()
    results = {name: check(hub) for name, check in checks.READINESS.items()}
    ok = all(r[0] for r in results.values())
    body = {"status": "ready" if ok else "not-ready", "checks": {k: {"ok": v[0], "detail": v[1]} for k, v in results.items()}}
    return body, 200 if ok else 503


def _from_loopback() -> bool:
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


@bp.get("/metrics")
@bp.doc(summary="Prometheus metrics (from the hub itself, or with an admin session)", security=[{"BearerAuth": []}],
        responses={200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}, 401: "Not signed in"})
def metrics_endpoint() -> Response:
    # Scrapers run on the box (node exporter style); from the LAN only an admin may look.
    if not _from_loopback():
        principal = session_auth.ensure_sync(session_auth.verify_token_callback)(_bearer() or "")  # type: ignore[misc]
        if principal is None:
            problem(401, "unauthenticated", "metrics need an admin session when fetched from another host")
        if principal.role != ADMIN:
            problem(403, "forbidden", "metrics are for the hub admin")
    return Response(metrics.render(current_hub()), content_type="text/plain; version=0.0.4; charset=utf-8")


def _bearer() -> str | None:
    auth = session_auth.get_auth()
    return getattr(auth, "token", None)
