"""Build and sign a lesson package from a folder (district side, tests, the demo).

The folder holds ``lesson.toml`` (metadata and pages) and the lesson's files::

    id = "math-3-fractions"
    version = 1
    title = "认识分数"
    subject = "数学"
    grade = 3
    chapter = "第八单元 分数的初步认识"
    knowledge_points = ["分数的意义"]
    [[pages]]
    title = "封面"
    file = "cover.svg"
    [[quizzes]]
    id = "fractions-check"
    file = "quiz/fractions.json"

Every other regular file under the folder is packed under ``files/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
import zipfile
from pathlib import Path

from edge import signing
from edge.lessons.manifest import (
    FILES_PREFIX,
    FORMAT_VERSION,
    MANIFEST_NAME,
    MEDIA_TYPES,
    SIGNATURE_NAME,
    Manifest,
    ManifestError,
    dump_manifest,
    parse_manifest,
)

SOURCE_NAME = "lesson.toml"
# Media is already compressed; deflating it wastes the district's CPU and the hub's.
_STORED_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".mp4", ".webm", ".mp3", ".m4a", ".ogg", ".oga", ".woff2", ".pdf"}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_from_folder(folder: Path) -> Manifest:
    """The manifest for ``folder`` (hashes every file)."""
    try:
        meta = tomllib.loads((folder / SOURCE_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{folder} has no {SOURCE_NAME}") from None
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if rel == SOURCE_NAME or path.is_dir():
            continue
        if path.is_symlink() or not path.is_file():
            raise ManifestError(f"{rel} is not a regular file; a lesson holds regular files only")
        media_type = MEDIA_TYPES.get(path.suffix.lower())
        if media_type is None:
            raise ManifestError(f"{rel}: files of type '{path.suffix}' cannot go into a lesson")
        files.append({"path": rel, "size": path.stat().st_size, "sha256": _sha256(path), "media_type": media_type})
    data = {"format": FORMAT_VERSION, **meta, "files": files}
    return parse_manifest(json.dumps(data, ensure_ascii=False).encode("utf-8"))


def build_package(folder: Path, out: Path, private_key_b64: str | None) -> Manifest:
    """Write ``out`` (a zip) from ``folder``; signed when a key is given. Atomic (temp file + rename)."""
    manifest = manifest_from_folder(folder)
    raw = dump_manifest(manifest)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(MANIFEST_NAME, raw)
            if private_key_b64:
                zf.writestr(SIGNATURE_NAME, signing.sign(raw, private_key_b64))
            for entry in manifest.files:
                src = folder / entry.path
                method = zipfile.ZIP_STORED if src.suffix.lower() in _STORED_SUFFIXES else zipfile.ZIP_DEFLATED
                zf.write(src, FILES_PREFIX + entry.path, compress_type=method)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return manifest


def sign_package(package: Path, private_key_b64: str, out: Path | None = None) -> None:
    """(Re-)sign an existing package's manifest, writing ``out`` (default: in place)."""
    out = out or package
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(package) as src, zipfile.ZipFile(tmp, "w") as dst:
            raw = src.read(MANIFEST_NAME)
            parse_manifest(raw)
            dst.writestr(src.getinfo(MANIFEST_NAME), raw)
            dst.writestr(SIGNATURE_NAME, signing.sign(raw, private_key_b64))
            for info in src.infolist():
                if info.filename in (MANIFEST_NAME, SIGNATURE_NAME):
                    continue
                with src.open(info) as fh_in, dst.open(info, "w") as fh_out:
                    while chunk := fh_in.read(1 << 20):
                        fh_out.write(chunk)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
