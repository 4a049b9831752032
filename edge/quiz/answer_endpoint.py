"""``POST /api/v1/quiz/answers`` from a tablet, answered without Flask's request machinery.

55 tablets send their answers at the same instant, and the hub's two cores are the
limit: Flask's and APIFlask's per-request machinery (request context, hooks, the auth
and schema decorators, the response object) was ~0.3 ms of CPU of an answer's ~0.95 ms
(``tests/bench/bench_quiz.py``, README "Quizzes"), for no work of the answer's own.

This WSGI middleware takes only the request a tablet sends: a session and a device token
(``Authorization: Bearer`` and ``X-Device-Token`` headers, or the web app's cookies), a
JSON body within ``http.max_body_bytes``, from a signed-in student, that parses and
validates as :class:`edge.quiz.api.AnswerIn`. It then does what the Flask view does,
with the same parts (``authenticate_session``, the same schema,
``submit_answer``), and answers as the Flask app does: the same status, body and
headers, the same request metrics and access log line. Anything else (another kind of
credential, another role, a body that does not parse or validate, a chunked or oversize
body) goes to the Flask app with the body already read handed on, and is answered
there exactly as before, so every error of the request itself is still the Flask route's.
The route stays registered in Flask, for the OpenAPI document and for those requests.
"""

from __future__ import annotations

import io
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import orjson
from pydantic import ValidationError
from werkzeug.http import parse_cookie

from edge.auth.guard import DEVICE_COOKIE, DEVICE_HEADER, SESSION_COOKIE, STUDENT, authenticate_session
from edge.errors import BUSY_DETAIL, INTERNAL_ERROR_DETAIL, PROBLEM_MIMETYPE, problem_json
from edge.health.metrics import request_metrics
from edge.quiz.api import AnswerIn, submit_answer
from edge.quiz.sessions import QuizError

log = logging.getLogger(__name__)

PATH = "/api/v1/quiz/answers"
ENDPOINT = "quiz.answer"  # the Flask route's endpoint name, as in the request metrics
_DEVICE_KEY = "HTTP_" + DEVICE_HEADER.upper().replace("-", "_")
# What the Flask app adds to every /api/ response (edge.app._install_request_hooks).
_HEADERS = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")]


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class AnswerEndpoint:
    def __init__(self, app: Any, inner: WSGIApp) -> None:
        self._inner = inner
        self._hub = app.extensions["classroom_hub"]
        self._max_body = int(app.config["MAX_CONTENT_LENGTH"])
        self._access_log = self._hub.config.logging.access_log

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self._inner(environ, start_response)
        t0 = time.perf_counter()
        headers = list(_HEADERS)
        try:
            taken = self._take(environ)
            if taken is None:
                return self._inner(environ, start_response)
            body, student_id, class_id = taken
            ack, created = submit_answer(self._hub, self._hub.databases.get(), body, student_id, class_id)
        except QuizError as err:
            status, ctype, data = err.status, PROBLEM_MIMETYPE, problem_json(err.status, err.slug, str(err), PATH)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                status, ctype, data = self._unexpected()
            else:  # as the Flask app's handler: nothing was written, a retry moments later succeeds
                log.warning("database busy", extra={"path": PATH, "method": "POST"})
                status, ctype, data = 503, PROBLEM_MIMETYPE, problem_json(503, "busy", BUSY_DETAIL, PATH)
                headers.append(("Retry-After", "1"))
        except Exception:
            status, ctype, data = self._unexpected()
        else:
            status, ctype = (201 if created else 200), "application/json"
            data = orjson.dumps(ack, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
        start_response(f"{status} {HTTPStatus(status).phrase.upper()}", [("Content-Type", ctype), ("Content-Length", str(len(data))), *headers])
        elapsed = time.perf_counter() - t0
        count, latency = request_metrics("POST", ENDPOINT, status)
        count.inc()
        latency.observe(elapsed)
        if self._access_log:
            log.info("request", extra={"method": "POST", "path": PATH, "status": status, "ms": round(elapsed * 1000, 2)})
        return [data]

    @staticmethod
    def _unexpected() -> tuple[int, str, bytes]:
        log.exception("unhandled error", extra={"path": PATH, "method": "POST"})
        return 500, PROBLEM_MIMETYPE, problem_json(500, "internal-error", INTERNAL_ERROR_DETAIL, PATH)

    def _take(self, environ: dict[str, Any]) -> tuple[AnswerIn, int, int] | None:
        """The validated answer and its student's (id, class), or None: the Flask app answers this request."""
        length = environ.get("CONTENT_LENGTH", "")
        size = int(length) if length.isdigit() else 0
        if not 0 < size <= self._max_body:
            return None
        # The credentials as the Flask auth takes them: the header, else the cookie (the web app's).
        auth = environ.get("HTTP_AUTHORIZATION")
        device_token = environ.get(_DEVICE_KEY)
        cookies = parse_cookie(environ.get("HTTP_COOKIE")) if auth is None or not device_token else None
        if auth is None:
            token = cookies.get(SESSION_COOKIE) if cookies else None
        elif auth[:7] == "Bearer ":
            token = auth[7:]
        else:
            return None
        device_token = device_token or (cookies.get(DEVICE_COOKIE) if cookies else None)
        if not token or not device_token or " " in token:
            return None
        if environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() != "application/json" or "HTTP_TRANSFER_ENCODING" in environ:
            return None
        raw = environ["wsgi.input"].read(size)
        # Handed on if the Flask app has to answer after all (it reads the same bytes).
        environ["wsgi.input"] = io.BytesIO(raw)
        if len(raw) != size:
            return None  # the client sent less than it announced: Flask's error
        principal = authenticate_session(self._hub.databases.get().conn, token, device_token)
        if principal is None or principal.role != STUDENT or principal.student_id is None:
            return None
        try:
            body = AnswerIn.model_validate(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValidationError):
            return None
        return body, principal.student_id, principal.class_ids[0]


def install(app: Any) -> None:
    """Put the fast path in front of the Flask app (``app.wsgi_app``)."""
    app.wsgi_app = AnswerEndpoint(app, app.wsgi_app)
