"""Pairing codes and device enrolment rules.

A code is six digits, valid for a few minutes and for a set number of tablets.
Guessing is limited hub-wide: after ``max_failures`` wrong codes within ten
minutes every open code is withdrawn (the teacher shows a new one), so a
guesser gets a handful of tries at a 1-in-a-million target, and per source
address a client is slowed further with 429 + Retry-After.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from edge.auth import limits
from edge.auth.secrets import new_pairing_code, new_token, pairing_code_hash, token_hash
from edge.storage.db import Database, transaction

FAILURE_WINDOW_S = 600
PER_SOURCE_LIMIT = 5


class EnrolmentError(Exception):
    def __init__(self, slug: str, message: str, status: int = 400, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.slug = slug
        self.status = status
        self.retry_after = retry_after


@dataclass
class PairingCode:
    code: str
    expires_at: float
    max_uses: int
    kind: str
    class_id: int | None
    id: int = 0


@dataclass
class Enrolled:
    device_uuid: str
    token: str
    kind: str
    class_id: int | None
    code_id: int | None = None


def create_code(db: Database, secret: str, *, created_by: int, kind: str, class_id: int | None, max_uses: int, ttl_s: int) -> PairingCode:
    """A new code; its plain digits exist only in the returned value."""
    now = time.time()
    with transaction(db):
        # Codes must be unambiguous among the open ones.
        for _ in range(20):
            code = new_pairing_code()
            clash = db.execute(
                "SELECT 1 FROM pairing_codes WHERE code_hash = ? AND withdrawn = 0 AND expires_at > ?",
                (pairing_code_hash(code, secret), now),
            ).fetchone()
            if not clash:
                break
        cur = db.conn.execute(
            "INSERT INTO pairing_codes (code_hash, class_id, kind, created_by, created_at, expires_at, max_uses) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (pairing_code_hash(code, secret), class_id, kind, created_by, now, now + ttl_s, max_uses),
        )
    return PairingCode(code, now + ttl_s, max_uses, kind, class_id, int(cur.lastrowid or 0))


def enrol(
    db: Database,
    secret: str,
    *,
    code: str,
    name: str,
    source: str,
    max_failures: int,
    token_ttl_days: int,
    request_id: str | None = None,
) -> Enrolled:
    now = time.time()
    if limits.recent_failures(db, "pairing", FAILURE_WINDOW_S, source) >= PER_SOURCE_LIMIT:
        raise EnrolmentError(
            "too-many-attempts", "too many wrong pairing codes from this tablet; wait, then ask the teacher for a new code", 429, FAILURE_WINDOW_S
        )
    with transaction(db):
        if request_id:
            # A retry of an enrolment whose answer was lost: same device, fresh token
            # (only the hash of the first one was kept), no second use of the code.
            # Device ids are not secret, so the retry must carry a still-valid code of
            # the device's kind and class; otherwise (or if that device was revoked)
            # the request is handled as a new enrolment under a fresh id.
            prior = db.execute("SELECT id, kind, class_id, revoked_at FROM devices WHERE uuid = ?", (request_id,)).fetchone()
            if prior is not None:
                same = db.execute(
                    "SELECT 1 FROM pairing_codes WHERE code_hash = ? AND kind = ? AND class_id IS ? AND withdrawn = 0 AND expires_at > ?",
                    (pairing_code_hash(code, secret), prior[1], prior[2], now),
                ).fetchone()
                if same is not None and prior[3] is None:
                    token = new_token()
                    db.conn.execute("UPDATE devices SET token_hash = ? WHERE id = ?", (token_hash(token), prior[0]))
                    return Enrolled(request_id, token, prior[1], prior[2])
                request_id = None
        row = db.execute(
            "SELECT id, kind, class_id, expires_at, max_uses, uses, withdrawn FROM pairing_codes WHERE code_hash = ? ORDER BY id DESC LIMIT 1",
            (pairing_code_hash(code, secret),),
        ).fetchone()
        failure: EnrolmentError | None = None
        if row is None or row[6]:
            failure = EnrolmentError("bad-pairing-code", "this pairing code is not valid; check the code the teacher shows", 400)
        elif row[3] <= now:
            failure = EnrolmentError("pairing-code-expired", "this pairing code has expired; ask the teacher for a new one", 410)
        elif row[5] >= row[4]:
            failure = EnrolmentError("pairing-code-used", "this pairing code has already been used for all its tablets; ask the teacher for a new one", 410)
        if failure is not None:
            limits.record_failure(db, "pairing", source)
            if limits.recent_failures(db, "pairing", FAILURE_WINDOW_S) >= max_failures:
                db.conn.execute("UPDATE pairing_codes SET withdrawn = 1 WHERE withdrawn = 0")
        else:
            assert row is not None
            code_id, kind, class_id = row[0], row[1], row[2]
            db.conn.execute("UPDATE pairing_codes SET uses = uses + 1 WHERE id = ?", (code_id,))
            device_uuid = request_id or str(uuid.uuid4())
            token = new_token()
            db.conn.execute(
                "INSERT INTO devices (uuid, name, kind, class_id, token_hash, enrolled_at, expires_at, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (device_uuid, name, kind, class_id, token_hash(token), now, now + token_ttl_days * 86400, now),
            )
            return Enrolled(device_uuid, token, kind, class_id, code_id)
    # The failure is committed (it counts) before it is reported.
    raise failure


def list_devices(db: Database, class_ids: list[int] | None) -> list[dict[str, object]]:
    rows = db.execute(
        "SELECT d.id, d.uuid, d.name, d.kind, d.class_id, d.enrolled_at, d.last_seen, d.revoked_at FROM devices d ORDER BY d.id"
    ).fetchall()
    out = []
    for r in rows:
        if class_ids is not None and r[4] not in class_ids:
            continue
        out.append({"id": r[1], "name": r[2], "kind": r[3], "class_id": r[4], "enrolled_at": r[5], "last_seen": r[6], "revoked": r[7] is not None})
    return out


def revoke(db: Database, device_uuid: str, class_ids: list[int] | None) -> int:
    """Revoke a tablet and end its sessions; returns the device's row id."""
    with transaction(db):
        row = db.execute("SELECT id, class_id FROM devices WHERE uuid = ?", (device_uuid,)).fetchone()
        if row is None or (class_ids is not None and row[1] not in class_ids):
            raise EnrolmentError("no-such-device", "no such device", 404)
        now = time.time()
        db.conn.execute("UPDATE devices SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", (now, row[0]))
        db.conn.execute("UPDATE sessions SET ended_at = ? WHERE device_id = ? AND ended_at IS NULL", (now, row[0]))
    return int(row[0])


def open_codes(db: Database, class_ids: list[int] | None) -> list[dict[str, object]]:
    """Codes still usable (not expired, withdrawn or used up); never the digits."""
    rows = db.execute(
        "SELECT id, kind, class_id, created_at, expires_at, max_uses, uses FROM pairing_codes "
        "WHERE withdrawn = 0 AND expires_at > ? AND uses < max_uses ORDER BY id",
        (time.time(),),
    ).fetchall()
    return [
        {"id": r[0], "kind": r[1], "class_id": r[2], "created_at": r[3], "expires_at": r[4], "max_uses": r[5], "uses": r[6]}
        for r in rows
        if class_ids is None or r[2] in class_ids
    ]


def withdraw_code(db: Database, code_id: int, class_ids: list[int] | None) -> None:
    with transaction(db):
        row = db.execute("SELECT class_id FROM pairing_codes WHERE id = ?", (code_id,)).fetchone()
        if row is None or (class_ids is not None and row[0] not in class_ids):
            raise EnrolmentError("no-such-code", "no such pairing code", 404)
        db.conn.execute("UPDATE pairing_codes SET withdrawn = 1 WHERE id = ?", (code_id,))
