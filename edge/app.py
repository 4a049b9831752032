"""The Flask application factory."""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from types import FunctionType
from typing import Any

from apiflask import APIFlask
from flask import Response, g, request

from edge import API_MAJOR, __version__
from edge.config import HubConfig
from edge.context import Hub
from edge.errors import document_problems, install_error_handlers, problem
from edge.jsonio import OrjsonProvider
from edge.live.bus import LiveBus
from edge.storage.db import ThreadLocalDatabase
from edge.storage.setup import prepare_storage

log = logging.getLogger(__name__)

# Endpoints that take large bodies set their own limit; everything else gets http.max_body_bytes.
_HUB_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'self'; form-action 'self'"
)


class HubApp(APIFlask):
    """APIFlask with JSON by orjson and Flask's async check done once per function."""

    json_provider_class = OrjsonProvider

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync_checked: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        # Flask asks inspect whether each hook and view is a coroutine function on every
        # request (7 times for an authenticated GET); the answer never changes for a function.
        if type(func) is not FunctionType:
            return super().ensure_sync(func)
        sync = self._sync_checked.get(func)
        if sync is None:
            sync = self._sync_checked[func] = super().ensure_sync(func)
        return sync


def create_app(config: HubConfig) -> APIFlask:
    """Build the hub application for ``config``; migrates the database if needed."""
    hub_id, secret, _ = prepare_storage(config)
    app = HubApp(
        "edge",
        title="Classroom hub API",
        version=__version__,
        spec_path="/api/openapi.json",
        docs_path=None,  # the UI pages load scripts from CDNs; classrooms are offline
    )
    app.config.update(
        MAX_CONTENT_LENGTH=config.http.max_body_bytes,
        JSON_AS_ASCII=False,
        OPENAPI_VERSION="3.1.0",
        INFO={"description": f"Classroom micro-cloud hub, API major version {API_MAJOR}. Errors are application/problem+json."},
        VALIDATION_ERROR_STATUS_CODE=422,
        AUTO_OPERATION_ID=True,
        SPEC_FORMAT="json",
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    databases = ThreadLocalDatabase(config.db_path, config.storage.busy_timeout_ms, config.storage.synchronous)
    hub = Hub(config=config, databases=databases, hub_id=hub_id, hub_secret=secret, bus=LiveBus(databases, config.run_dir))
    app.extensions["classroom_hub"] = hub

    install_error_handlers(app)
    app.spec_processor(document_problems)
    _install_request_hooks(app)

    for module in BLUEPRINTS:
        app.register_blueprint(importlib.import_module(module).bp)
    from edge.quiz.answer_endpoint import install as install_answer_fast_path

    install_answer_fast_path(app)  # tablets' answers without Flask's per-request machinery
    return app


# One line per capability: the module whose ``bp`` holds its routes.
BLUEPRINTS = [
    "edge.health.api",
    "edge.hubinfo.api",
    "edge.accounts.api",
    "edge.enrolment.api",
    "edge.devices.api",
    "edge.quiz.api",
    "edge.lessons.api",
    "edge.web",
    "edge.speech.api",
    "edge.learning.api",
]


def _install_request_hooks(app: APIFlask) -> None:
    from edge.health.metrics import request_metrics

    access_log = app.extensions["classroom_hub"].config.logging.access_log

    @app.before_request
    def _start() -> None:
        # These hooks run for every request: the request object is looked up once, not
        # through the context-local proxy at each attribute.
        req = request._get_current_object()  # type: ignore[attr-defined]
        g.t0 = time.perf_counter()
        method = req.method
        if method not in ("POST", "PUT", "PATCH"):
            return
        if req.content_length is None and req.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return
        if req.path.startswith("/api/"):
            ctype = req.mimetype
            if ctype and ctype != "application/json" and not _accepts_raw_upload():
                problem(415, "unsupported-media-type", "send JSON with Content-Type application/json")

    @app.after_request
    def _finish(resp: Response) -> Response:
        req = request._get_current_object()  # type: ignore[attr-defined]
        endpoint = req.endpoint or "unmatched"
        elapsed = time.perf_counter() - g.get("t0", time.perf_counter())
        count, latency = request_metrics(req.method, endpoint, resp.status_code)
        count.inc()
        latency.observe(elapsed)
        headers = resp.headers
        # One scan of the headers instead of a setdefault per header (each is a linear search).
        present = {key.lower() for key, _ in headers.items()}
        if "x-content-type-options" not in present:
            headers.add("X-Content-Type-Options", "nosniff")
        if "referrer-policy" not in present:
            headers.add("Referrer-Policy", "no-referrer")
        if "content-security-policy" not in present and resp.mimetype == "text/html":
            headers.add("Content-Security-Policy", _HUB_CSP)
        path = req.path
        if "cache-control" not in present and path.startswith("/api/"):
            headers.add("Cache-Control", "no-store")
        if access_log:
            log.info("request", extra={"method": req.method, "path": path, "status": resp.status_code, "ms": round(elapsed * 1000, 2)})
        return resp


def _accepts_raw_upload() -> bool:
    # Endpoints documented as taking a raw body (CSV, files) check the type themselves.
    return request.endpoint in {"accounts.import_roster", "speech.upload_recording", "speech.live_audio",
                                "quiz.import_questions", "quiz.upload_photo"}
