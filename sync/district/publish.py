"""``district-publish``: sign a file and announce it to one hub or the whole district.

The file must already be reachable at ``--url`` (the district's HTTP(S) mirror);
this command hashes the local copy, signs the notice with the district's Ed25519
key and publishes it retained, so a hub that comes online later still sees the
latest notice of each kind.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync.wire.messages import Notice, signed_bytes


def sign_notice(path: Path, kind: str, url: str, private_key_b64: str, notice_id: str | None = None, name: str | None = None) -> Notice:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    fields = {
        "v": 1,
        "id": notice_id or uuid.uuid4().hex,
        "kind": kind,
        "name": name or path.name,
        "url": url,
        "size": size,
        "sha256": digest.hexdigest(),
        "published_at": time.time(),
    }
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(private_key_b64.strip(), validate=True))
    signature = base64.b64encode(key.sign(signed_bytes(fields))).decode()
    return Notice.model_validate({**fields, "signature": signature})
