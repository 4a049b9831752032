"""Random tokens and the hashes they are stored as.

Tokens carry 256 bits of entropy, so a fast hash is enough to store them: a
stolen database does not reveal a usable token, and lookup is one index probe.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_pairing_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def pairing_code_hash(code: str, hub_secret: str) -> str:
    # Keyed so that six digits in a stolen database can't be looked up in a table.
    return hmac.new(hub_secret.encode(), code.encode(), hashlib.sha256).hexdigest()


def new_pin() -> str:
    return f"{secrets.randbelow(10_000):04d}"
