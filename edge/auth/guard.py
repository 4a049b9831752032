"""Authentication of every request and the role each endpoint needs.

Three kinds of credential:
- a session token (``Authorization: Bearer`` or the ``hub_session`` cookie)
  from a staff login or a student sign-in;
- a device token (``X-Device-Token`` or the ``hub_device`` cookie) from
  enrolment. A student session is valid only together with the token of the
  device it was signed in on, and only while that device is not revoked, so
  revoking a tablet ends its sessions at the very next request.

Roles: ``admin``, ``teacher``, ``student``; ``device`` for an enrolled tablet
with nobody signed in.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field

from apiflask import APIKeyHeaderAuth, HTTPTokenAuth
from flask import g, request
from werkzeug.datastructures import Authorization

from edge.auth.secrets import token_hash
from edge.context import db

SESSION_COOKIE = "hub_session"
DEVICE_COOKIE = "hub_device"
DEVICE_HEADER = "X-Device-Token"

ADMIN, TEACHER, STUDENT, DEVICE = "admin", "teacher", "student", "device"
STAFF = [ADMIN, TEACHER]


@dataclass
class Principal:
    role: str
    name: str
    user_id: int | None = None
    student_id: int | None = None
    device_id: int | None = None
    session_id: int | None = None
    class_ids: list[int] = field(default_factory=list)


def _device_token() -> str | None:
    return request.headers.get(DEVICE_HEADER) or request.cookies.get(DEVICE_COOKIE)


def _active_device(token: str | None) -> tuple[int, str, int | None] | None:
    if not token or len(token) > 200:
        return None
    row = db().execute(
        "SELECT id, kind, class_id FROM devices WHERE token_hash = ? AND revoked_at IS NULL AND expires_at > ?",
        (token_hash(token), time.time()),
    ).fetchone()
    return (row[0], row[1], row[2]) if row else None


class _CookieFallback:
    """The token from the request's header, else from a cookie (browsers, EventSource)."""

    _cookie: str
    scheme: str

    def get_auth(self) -> Authorization | None:
        auth = super().get_auth()  # type: ignore[misc]
        if auth is None and request.cookies.get(self._cookie):
            auth = Authorization(self.scheme)
            auth.token = request.cookies[self._cookie]
        return auth


class _SessionAuth(_CookieFallback, HTTPTokenAuth):
    def __init__(self, cookie: str, description: str) -> None:
        super().__init__(scheme="Bearer", description=description)
        self._cookie = cookie


class _DeviceAuth(_CookieFallback, APIKeyHeaderAuth):
    def __init__(self, cookie: str, header: str, description: str) -> None:
        super().__init__(param_name=header, description=description)
        self._cookie = cookie


session_auth = _SessionAuth(
    SESSION_COOKIE,
    description="Session token from POST /api/v1/auth/login (staff) or POST /api/v1/signin (student). "
    "Student sessions also need the X-Device-Token header of the tablet they were signed in on.",
)
device_auth = _DeviceAuth(DEVICE_COOKIE, DEVICE_HEADER, description="Device token from POST /api/v1/devices/enrol.")


@session_auth.verify_token
def _verify_session(token: str) -> Principal | None:
    principal = authenticate_session(db().conn, token, _device_token())
    if principal is not None:
        g.principal = principal
    return principal


def authenticate_session(conn: sqlite3.Connection, token: str, device_token: str | None) -> Principal | None:
    """Who a session token (and the device token sent with it) belongs to, or None if it is not valid now.

    Shared by the Flask auth decorator and the answer endpoint's fast path (``edge.quiz.answer_endpoint``).
    """
    if len(token) > 200:
        return None
    now = time.time()
    device_hash = token_hash(device_token) if device_token and len(device_token) <= 200 else None
    # One statement per request: the session, its person, and whether the device token
    # sent with it is the active token of the device the session is bound to (``bound_ok``).
    # Revocation, sign-out and expiry are read from the database on every request, as before.
    row = conn.execute(
        """
        SELECT s.id, s.user_id, s.student_id, s.device_id,
               u.role, u.display_name, u.disabled,
               st.name, st.class_id, st.active, d.id IS NOT NULL
        FROM sessions s
        LEFT JOIN users u ON u.id = s.user_id
        LEFT JOIN students st ON st.id = s.student_id
        LEFT JOIN devices d ON d.id = s.device_id AND d.token_hash = ? AND d.revoked_at IS NULL AND d.expires_at > ?
        WHERE s.token_hash = ? AND s.ended_at IS NULL AND s.expires_at > ?
        """,
        (device_hash, now, token_hash(token), now),
    ).fetchone()
    if row is None:
        return None
    session_id, user_id, student_id, device_id, role, display_name, disabled, st_name, st_class, st_active, bound_ok = row
    if user_id is not None:
        if disabled:
            return None
        if device_id is not None and not bound_ok:
            # A staff session bound to a device dies with that device.
            return None
        if role == ADMIN:
            class_ids = [r[0] for r in conn.execute("SELECT id FROM classes")]
        else:
            class_ids = [r[0] for r in conn.execute("SELECT class_id FROM class_teachers WHERE user_id = ?", (user_id,))]
        return Principal(role, display_name, user_id=user_id, session_id=session_id, class_ids=class_ids)
    if not st_active:
        return None
    if device_id is None or not bound_ok:
        # A student session is valid only with the token of its (unrevoked) tablet.
        return None
    return Principal(STUDENT, st_name, student_id=student_id, device_id=device_id, session_id=session_id, class_ids=[st_class])


@session_auth.get_user_roles
def _session_roles(principal: Principal) -> list[str]:
    return [principal.role]


@device_auth.verify_token
def _verify_device(token: str) -> Principal | None:
    device = _active_device(token)
    if device is None:
        return None
    device_id, kind, class_id = device
    principal = Principal(DEVICE, f"device-{device_id}", device_id=device_id, class_ids=[class_id] if class_id else [])
    g.principal = principal
    g.device_kind = kind
    return principal


@device_auth.get_user_roles
def _device_roles(principal: Principal) -> list[str]:
    return [principal.role]


def current_principal() -> Principal:
    return g.principal


def client_address() -> str:
    return request.remote_addr or "unknown"


def peek_session() -> Principal | None:
    """The signed-in principal if the request carries a valid session, else None (never 401)."""
    auth = session_auth.get_auth()
    token = getattr(auth, "token", None)
    return _verify_session(token) if token else None


def peek_device() -> dict[str, object] | None:
    """This tablet's enrolment if the request carries a valid device token, else None."""
    token = _device_token()
    if not token or len(token) > 200:
        return None
    row = db().execute(
        """
        SELECT d.uuid, d.name, d.kind, c.id, c.name FROM devices d LEFT JOIN classes c ON c.id = d.class_id
        WHERE d.token_hash = ? AND d.revoked_at IS NULL AND d.expires_at > ?
        """,
        (token_hash(token), time.time()),
    ).fetchone()
    if row is None:
        return None
    return {"id": row[0], "name": row[1], "kind": row[2], "class": {"id": row[3], "name": row[4]} if row[3] is not None else None}


def session_still_valid(session_id: int, device_id: int | None) -> bool:
    """For long-lived streams: the session has not ended and its tablet is not revoked."""
    row = db().execute(
        """
        SELECT 1 FROM sessions s LEFT JOIN devices d ON d.id = s.device_id
        WHERE s.id = ? AND s.ended_at IS NULL AND s.expires_at > ?
          AND (s.device_id IS NULL OR d.revoked_at IS NULL)
        """,
        (session_id, time.time()),
    ).fetchone()
    return row is not None
