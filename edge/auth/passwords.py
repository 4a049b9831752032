"""Password and PIN hashing with Argon2id.

PINs get a cheaper cost than passwords: 55 children sign in within a minute on
a 2-core box, and a 4-digit PIN's strength comes from the lockout, not the hash.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_passwords = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_pins = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    return _passwords.hash(password)


def hash_pin(pin: str) -> str:
    return _pins.hash(pin)


def verify(stored_hash: str, secret: str) -> bool:
    hasher = _pins if "m=8192" in stored_hash else _passwords
    try:
        return hasher.verify(stored_hash, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# A real hash to verify against when the account does not exist, so the
# response time does not reveal which usernames exist.
DUMMY_PASSWORD_HASH = _passwords.hash("not-a-real-account")
DUMMY_PIN_HASH = _pins.hash("0000")
