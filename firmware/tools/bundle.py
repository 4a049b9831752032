"""Build a signed firmware bundle for the hub (runs on a PC, in CPython).

    python -m firmware.tools.bundle OUT_DIR --key district-firmware.key [--version 1.1.0] [--source firmware/cart]

OUT_DIR gets every .py file of the application, ``manifest.json`` ({version,
files: [{name, sha256, size}]}) and ``manifest.sig`` (Ed25519 over the exact
bytes of manifest.json, base64). The hub imports it with
``classroom-hub carts firmware-import OUT_DIR --public-key KEY.pub``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import shutil
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent / "cart"


def read_version(source: Path) -> str:
    m = re.search(r'^VERSION = "([^"]+)"', (source / "__init__.py").read_text(), re.M)
    if not m:
        raise SystemExit(f"no VERSION in {source / '__init__.py'}")
    return m.group(1)


def build(out: Path, private_key_b64: str, source: Path = DEFAULT_SOURCE, version: str | None = None) -> dict[str, object]:
    """Write the bundle to ``out`` (replaced) and return its manifest."""
    version = version or read_version(source)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    files = []
    for path in sorted(source.glob("*.py")):
        data = path.read_bytes()
        if path.name == "__init__.py":
            data = re.sub(rb'^VERSION = "[^"]+"', f'VERSION = "{version}"'.encode(), data, flags=re.M)
        (out / path.name).write_bytes(data)
        files.append({"name": path.name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    manifest = {"version": version, "files": files}
    manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode()
    (out / "manifest.json").write_bytes(manifest_bytes)
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(private_key_b64))
    (out / "manifest.sig").write_text(base64.b64encode(key.sign(manifest_bytes)).decode() + "\n")
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--key", type=Path, required=True, help="file holding the base64 Ed25519 private key")
    ap.add_argument("--version")
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    args = ap.parse_args()
    manifest = build(args.out, args.key.read_text().strip(), args.source, args.version)
    print(f"bundle {manifest['version']}: {len(manifest['files'])} files in {args.out}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
