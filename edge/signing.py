"""Ed25519 signatures on what the district ships (lesson packages, rosters,
models, firmware manifests).

The district signs the bytes of a manifest with its private key; every hub
holds the district's public key and refuses anything whose detached signature
does not verify. Keys and signatures travel as base64 text so they fit in
JSON notices and TOML configuration.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class SignatureError(ValueError):
    """A signature or key is malformed or does not verify."""


def generate_key() -> tuple[str, str]:
    """A new key pair as (private, public), both base64 of the raw 32 bytes."""
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    raw_public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw_private).decode(), base64.b64encode(raw_public).decode()


def _raw(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{what} is not base64") from None
    if len(raw) not in (32, 64):
        raise SignatureError(f"{what} has {len(raw)} bytes; an Ed25519 {what} has 32 (key) or 64 (signature)")
    return raw


def sign(data: bytes, private_key_b64: str) -> str:
    key = Ed25519PrivateKey.from_private_bytes(_raw(private_key_b64, "private key"))
    return base64.b64encode(key.sign(data)).decode()


def verify(data: bytes, signature_b64: str, public_key_b64: str) -> None:
    """Return if ``signature_b64`` is the district's signature of ``data``; raise otherwise."""
    key = Ed25519PublicKey.from_public_bytes(_raw(public_key_b64, "public key"))
    signature = _raw(signature_b64, "signature")
    if len(signature) != 64:
        raise SignatureError("a signature has 64 bytes")
    try:
        key.verify(signature, data)
    except InvalidSignature:
        raise SignatureError("the signature does not match: the file was changed or not signed by the district") from None


def public_key_of(private_key_b64: str) -> str:
    key = Ed25519PrivateKey.from_private_bytes(_raw(private_key_b64, "private key"))
    return base64.b64encode(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def read_key_file(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip()
