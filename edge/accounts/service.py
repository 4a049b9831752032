"""Accounts and sign-in rules, independent of HTTP (the CLI uses them too)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from edge import outbox
from edge.accounts.roster import RosterParse
from edge.auth import limits
from edge.auth.passwords import DUMMY_PASSWORD_HASH, DUMMY_PIN_HASH, hash_password, hash_pin, verify
from edge.auth.secrets import new_pin, new_token, token_hash
from edge.storage.db import Database, transaction

ROLES = ("admin", "teacher")
# Wrong PINs one tablet may send (over all students) in the window before it is
# refused: generous for a class of children mistyping, far too few to walk a roster.
DEVICE_PIN_LIMIT = 20
DEVICE_PIN_WINDOW_S = 600


class AccountError(Exception):
    """A rule about accounts was broken; ``slug`` names it for clients."""

    def __init__(self, slug: str, message: str, status: int = 400, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.slug = slug
        self.status = status
        self.retry_after = retry_after


@dataclass
class IssuedSession:
    token: str
    expires_at: float
    session_id: int


def validate_password(password: str) -> None:
    if len(password) < 8:
        raise AccountError("weak-password", "a password needs at least 8 characters")
    if len(password) > 256:
        raise AccountError("weak-password", "a password may have at most 256 characters")


def create_user(db: Database, username: str, display_name: str, role: str, password: str) -> int:
    if role not in ROLES:
        raise AccountError("bad-role", f"role must be one of {', '.join(ROLES)}")
    validate_password(password)
    with transaction(db):
        if db.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
            raise AccountError("username-taken", f"username {username!r} is already taken", status=409)
        cur = db.conn.execute(
            "INSERT INTO users (username, display_name, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
            (username, display_name, role, hash_password(password), time.time()),
        )
    return int(cur.lastrowid or 0)


def set_password(db: Database, username: str, password: str) -> None:
    validate_password(password)
    with transaction(db):
        cur = db.conn.execute(
            "UPDATE users SET password_hash = ?, failed_logins = 0, locked_until = NULL WHERE username = ?",
            (hash_password(password), username),
        )
        if cur.rowcount == 0:
            raise AccountError("no-such-user", f"no account named {username!r}", status=404)
        # A new password ends every session of the old one.
        db.conn.execute(
            "UPDATE sessions SET ended_at = ? WHERE ended_at IS NULL AND user_id = (SELECT id FROM users WHERE username = ?)",
            (time.time(), username),
        )


def set_disabled(db: Database, user_id: int, disabled: bool) -> None:
    with transaction(db):
        cur = db.conn.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user_id))
        if cur.rowcount == 0:
            raise AccountError("no-such-user", f"no account with id {user_id}", status=404)
        if disabled:
            db.conn.execute("UPDATE sessions SET ended_at = ? WHERE user_id = ? AND ended_at IS NULL", (time.time(), user_id))


def list_users(db: Database) -> list[dict[str, object]]:
    rows = db.execute(
        "SELECT id, username, display_name, role, disabled, created_at FROM users ORDER BY id"
    ).fetchall()
    out = []
    for r in rows:
        classes = [c[0] for c in db.execute("SELECT class_id FROM class_teachers WHERE user_id = ?", (r[0],))]
        out.append({"id": r[0], "username": r[1], "display_name": r[2], "role": r[3], "disabled": bool(r[4]), "created_at": r[5], "class_ids": classes})
    return out


def ensure_class(db: Database, name: str) -> int:
    row = db.execute("SELECT id FROM classes WHERE name = ?", (name,)).fetchone()
    if row:
        return int(row[0])
    cur = db.conn.execute("INSERT INTO classes (name, created_at) VALUES (?, ?)", (name, time.time()))
    return int(cur.lastrowid or 0)


def assign_teacher(db: Database, class_id: int, user_id: int) -> None:
    db.conn.execute("INSERT OR IGNORE INTO class_teachers (class_id, user_id) VALUES (?, ?)", (class_id, user_id))


def list_classes(db: Database, class_ids: list[int] | None = None) -> list[dict[str, object]]:
    rows = db.execute(
        "SELECT c.id, c.name, (SELECT COUNT(*) FROM students s WHERE s.class_id = c.id AND s.active) FROM classes c ORDER BY c.id"
    ).fetchall()
    return [{"id": r[0], "name": r[1], "students": r[2]} for r in rows if class_ids is None or r[0] in class_ids]


def import_roster(db: Database, parsed: RosterParse, default_class: str | None) -> dict[str, object]:
    """Insert or update students; new students without a PIN get a generated one.

    Returns a report: counts, refused rows, and the generated PINs (shown once,
    to the person importing, so they can hand them out).
    """
    created, updated, generated = 0, 0, []
    refused = list(parsed.refused)
    with transaction(db):
        for row in parsed.rows:
            class_name = row.class_name or default_class
            if not class_name:
                refused.append({"line": row.line, "code": "no-class", "reason": "no class given (column 班级 or the class option)"})
                continue
            class_id = ensure_class(db, class_name)
            existing = db.execute(
                "SELECT id FROM students WHERE class_id = ? AND number = ?", (class_id, row.number)
            ).fetchone()
            if existing:
                if row.pin:
                    db.conn.execute("UPDATE students SET name = ?, pin_hash = ?, active = 1 WHERE id = ?", (row.name, hash_pin(row.pin), existing[0]))
                else:
                    db.conn.execute("UPDATE students SET name = ?, active = 1 WHERE id = ?", (row.name, existing[0]))
                updated += 1
                continue
            pin = row.pin or new_pin()
            if not row.pin:
                generated.append({"class": class_name, "number": row.number, "name": row.name, "pin": pin})
            db.conn.execute(
                "INSERT INTO students (class_id, number, name, pin_hash, pseudo_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (class_id, row.number, row.name, hash_pin(pin), str(uuid.uuid4()), time.time()),
            )
            created += 1
    refused.sort(key=lambda r: int(r["line"]))  # type: ignore[call-overload]
    return {"encoding": parsed.encoding, "created": created, "updated": updated, "refused": refused, "generated_pins": generated}


def list_students(db: Database, class_ids: list[int]) -> list[dict[str, object]]:
    if not class_ids:
        return []
    marks = ",".join("?" for _ in class_ids)
    rows = db.execute(
        f"SELECT id, class_id, number, name FROM students WHERE active AND class_id IN ({marks}) ORDER BY class_id, number",
        class_ids,
    ).fetchall()
    return [{"id": r[0], "class_id": r[1], "number": r[2], "name": r[3]} for r in rows]


def reset_student_pin(db: Database, student_id: int, pin: str | None = None) -> str:
    pin = pin or new_pin()
    with transaction(db):
        cur = db.conn.execute(
            "UPDATE students SET pin_hash = ?, failed_pins = 0, locked_until = NULL WHERE id = ?", (hash_pin(pin), student_id)
        )
        if cur.rowcount == 0:
            raise AccountError("no-such-student", f"no student with id {student_id}", status=404)
    return pin


def _issue_session(db: Database, ttl_s: int, *, user_id: int | None = None, student_id: int | None = None, device_id: int | None = None) -> IssuedSession:
    token = new_token()
    now = time.time()
    cur = db.conn.execute(
        "INSERT INTO sessions (token_hash, user_id, student_id, device_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        (token_hash(token), user_id, student_id, device_id, now, now + ttl_s),
    )
    return IssuedSession(token, now + ttl_s, int(cur.lastrowid or 0))


def staff_login(
    db: Database, username: str, password: str, source: str, *, ttl_s: int, max_failures: int, lockout_s: int = 900
) -> tuple[IssuedSession, dict[str, object]]:
    """Check a staff password; lock the account after ``max_failures`` in a row."""
    now = time.time()
    if limits.recent_failures(db, "login", 600, source) >= max_failures * 3:
        raise AccountError("too-many-attempts", "too many failed logins from this device; wait a few minutes", 429, 600)
    row = db.execute(
        "SELECT id, password_hash, role, display_name, disabled, failed_logins, locked_until FROM users WHERE username = ?",
        (username,),
    ).fetchone()
    if row is None:
        verify(DUMMY_PASSWORD_HASH, password)
        with transaction(db):
            limits.record_failure(db, "login", source)
        raise AccountError("bad-credentials", "wrong username or password", 401)
    user_id, stored, role, display_name, disabled, failed, locked_until = row
    if locked_until and locked_until > now:
        raise AccountError("account-locked", "this account is locked after too many wrong passwords; try later", 429, int(locked_until - now) + 1)
    ok = verify(stored, password)
    if not ok or disabled:
        # Commit the failure before reporting it: raising inside the transaction would roll it back.
        with transaction(db):
            # Re-read under the write lock so concurrent guesses are all counted.
            failed = int(db.execute("SELECT failed_logins FROM users WHERE id = ?", (user_id,)).fetchone()[0]) + 1
            lock = now + lockout_s if failed >= max_failures else None
            db.conn.execute("UPDATE users SET failed_logins = ?, locked_until = ? WHERE id = ?", (failed if lock is None else 0, lock, user_id))
            limits.record_failure(db, "login", source)
        if disabled and ok:
            raise AccountError("account-disabled", "this account is disabled", 403)
        raise AccountError("bad-credentials", "wrong username or password", 401)
    with transaction(db):
        db.conn.execute("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = ?", (user_id,))
        issued = _issue_session(db, ttl_s, user_id=user_id)
    return issued, {"id": user_id, "username": username, "display_name": display_name, "role": role}


def end_session(db: Database, session_id: int) -> None:
    with transaction(db):
        db.conn.execute("UPDATE sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL", (time.time(), session_id))


def school_day(timezone: str, at: float | None = None) -> str:
    return dt.datetime.fromtimestamp(at or time.time(), ZoneInfo(timezone)).date().isoformat()


def student_sign_in(
    db: Database,
    *,
    student_id: int,
    pin: str,
    device_id: int,
    device_class_id: int | None,
    ttl_s: int,
    max_failures: int,
    lockout_s: int,
    timezone: str,
) -> tuple[IssuedSession, dict[str, object]]:
    """Sign a student in on an enrolled tablet and record attendance for the day.

    Wrong PINs lock the student after ``max_failures`` in a row; a tablet that
    spreads guesses over many students is stopped by the per-device limit.
    """
    now = time.time()
    if limits.recent_failures(db, "pin", DEVICE_PIN_WINDOW_S, f"device:{device_id}") >= DEVICE_PIN_LIMIT:
        raise AccountError(
            "signin-locked", "too many wrong PINs on this tablet; ask the teacher or wait a few minutes", 429, DEVICE_PIN_WINDOW_S
        )
    row = db.execute(
        "SELECT id, class_id, name, pin_hash, failed_pins, locked_until, pseudo_id FROM students WHERE id = ? AND active",
        (student_id,),
    ).fetchone()
    if row is None or (device_class_id is not None and row[1] != device_class_id):
        verify(DUMMY_PIN_HASH, pin)
        raise AccountError("bad-credentials", "wrong student or PIN", 401)
    _, class_id, name, stored, failed, locked_until, pseudo_id = row
    if locked_until and locked_until > now:
        raise AccountError(
            "signin-locked", "too many wrong PINs; ask the teacher or wait", 429, int(locked_until - now) + 1
        )
    ok = verify(stored, pin)
    if not ok:
        # Commit the failure before reporting it: raising inside the transaction would roll it back.
        with transaction(db):
            # Re-read under the write lock so concurrent guesses are all counted.
            failed = int(db.execute("SELECT failed_pins FROM students WHERE id = ?", (student_id,)).fetchone()[0]) + 1
            lock = now + lockout_s if failed >= max_failures else None
            db.conn.execute(
                "UPDATE students SET failed_pins = ?, locked_until = ? WHERE id = ?",
                (0 if lock else failed, lock, student_id),
            )
            limits.record_failure(db, "pin", f"device:{device_id}")
        raise AccountError("bad-credentials", "wrong student or PIN", 401)
    with transaction(db):
        db.conn.execute("UPDATE students SET failed_pins = 0, locked_until = NULL WHERE id = ?", (student_id,))
        issued = _issue_session(db, ttl_s, student_id=student_id, device_id=device_id)
        day = school_day(timezone, now)
        db.conn.execute(
            """
            INSERT INTO attendance (student_id, day, first_seen, last_seen, device_id) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (student_id, day) DO UPDATE SET last_seen = excluded.last_seen,
                device_id = excluded.device_id, sign_ins = sign_ins + 1
            """,
            (student_id, day, now, now, device_id),
        )
        db.conn.execute("UPDATE devices SET last_seen = ? WHERE id = ?", (now, device_id))
        outbox.append(db, "attendance.signin", {"student": pseudo_id, "day": day, "at": now, "class_id": class_id})
    return issued, {"id": student_id, "name": name, "class_id": class_id}


def attendance(db: Database, class_id: int, day: str) -> list[dict[str, object]]:
    rows = db.execute(
        """
        SELECT s.id, s.number, s.name, a.first_seen, a.last_seen, a.sign_ins
        FROM students s LEFT JOIN attendance a ON a.student_id = s.id AND a.day = ?
        WHERE s.class_id = ? AND s.active ORDER BY s.number
        """,
        (day, class_id),
    ).fetchall()
    return [
        {"student_id": r[0], "number": r[1], "name": r[2], "present": r[3] is not None, "first_seen": r[3], "last_seen": r[4], "sign_ins": r[5] or 0}
        for r in rows
    ]
