"""Capability URLs for interactive lesson HTML.

Lesson HTML runs in an iframe whose document is served with ``CSP: sandbox
allow-scripts`` (no ``allow-same-origin``), so it gets an opaque origin: it cannot
read the hub's cookies, storage or API answers even when opened directly. An
opaque-origin document's own requests carry no SameSite=Strict cookies, so its
files are reached through a path that embeds a token: an HMAC (hub secret) of the
lesson and an expiry. The token grants reading that lesson's files only, which
every signed-in member of the school may read anyway; it expires after ~12 hours
and is stable within an hour so the browser cache can keep the files.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TTL_HOURS = 12


def _mac(secret: str, lesson: int, expires: int) -> str:
    return hmac.new(secret.encode(), f"lesson-frame:{lesson}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]


def make_token(secret: str, lesson: int, now: float | None = None) -> str:
    expires = (int((now or time.time()) // 3600) + TTL_HOURS + 1) * 3600
    return f"{lesson}.{expires}.{_mac(secret, lesson, expires)}"


def check_token(secret: str, token: str, now: float | None = None) -> int | None:
    """The lesson the token grants, or None when forged or expired."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or len(parts[0]) > 12 or len(parts[1]) > 12:
        return None
    lesson, expires = int(parts[0]), int(parts[1])
    if expires < (now or time.time()):
        return None
    return lesson if hmac.compare_digest(parts[2], _mac(secret, lesson, expires)) else None


FRAME_CSP = (
    "sandbox allow-scripts; default-src 'self' data: blob:; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; connect-src 'none'; form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)
