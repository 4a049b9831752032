"""Atomic, verified import of a lesson package.

Order: look at the archive's directory (paths, file types, sizes, ratio) before
reading anything; verify the manifest's Ed25519 signature with the district key;
validate the manifest; check the archive holds exactly the listed files; check
the disk; extract each file into staging while hashing and counting it; only
when every file matched, move the blobs into the store and commit the lesson in
one transaction. Any failure raises :class:`ImportRefused` naming the problem,
and leaves no lesson row and no new blob behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from edge import outbox, signing
from edge.config import HubConfig
from edge.district_key import district_public_key
from edge.lessons import store
from edge.lessons.manifest import FILES_PREFIX, MANIFEST_NAME, SIGNATURE_NAME, Manifest, ManifestError, parse_manifest
from edge.storage.db import Database, transaction

log = logging.getLogger(__name__)

# Limits against archive bombs. A real lesson is at most a few GB of video; a
# deflate ratio above 200 only happens with crafted or degenerate data.
MAX_ENTRIES = 10_000
MAX_TOTAL_BYTES = 8 * 1024**3
MAX_RATIO = 200
RATIO_FLOOR_BYTES = 1_048_576  # small files may compress well (SVG, JSON); their ratio is not checked
MAX_SIGNATURE_BYTES = 1024

ProgressFn = Callable[[int], None]


class ImportRefused(Exception):
    """The package was refused; ``str()`` says exactly why, for a person."""


@dataclass(frozen=True)
class ImportResult:
    lesson: int
    lesson_id: str
    version: int
    files: int
    new_blobs: int
    already_installed: bool = False


def _check_entry(info: zipfile.ZipInfo) -> None:
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ImportRefused(f"archive entry {name!r} is a symbolic link; lesson packages hold regular files only")
    if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise ImportRefused(f"archive entry {name!r} is a device, pipe or socket; lesson packages hold regular files only")
    if not name or name.startswith("/") or "\\" in name or "\0" in name or (len(name) > 1 and name[1] == ":"):
        raise ImportRefused(f"archive entry {name!r} has an absolute or non-portable path")
    if any(part in ("..", ".", "") for part in PurePosixPath(name.rstrip("/")).parts) or "//" in name:
        raise ImportRefused(f"archive entry {name!r} leaves the package folder ('..' or empty parts)")
    if info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise ImportRefused(
            f"archive entry {name!r} expands {info.file_size // max(info.compress_size, 1)}x "
            f"(limit {MAX_RATIO}x): refused as a possible archive bomb"
        )


def _inspect(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise ImportRefused(f"the archive has {len(infos)} entries; at most {MAX_ENTRIES} are accepted")
    total = 0
    entries: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        _check_entry(info)
        if info.is_dir():
            continue
        if info.filename in entries:
            raise ImportRefused(f"archive entry {info.filename!r} appears twice")
        total += info.file_size
        entries[info.filename] = info
    if total > MAX_TOTAL_BYTES:
        raise ImportRefused(f"the archive expands to {total} bytes; at most {MAX_TOTAL_BYTES} are accepted")
    for name in entries:
        if name not in (MANIFEST_NAME, SIGNATURE_NAME) and not name.startswith(FILES_PREFIX):
            raise ImportRefused(f"archive entry {name!r} is neither the manifest, its signature nor under files/")
    return entries


def _read_small(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    if info.file_size > limit:
        raise ImportRefused(f"{info.filename} is larger than {limit} bytes")
    try:
        with zf.open(info) as fh:
            return fh.read(limit + 1)[:limit]
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ImportRefused(f"{info.filename} is damaged in the archive: {exc}") from None


def verify_manifest(zf: zipfile.ZipFile, entries: dict[str, zipfile.ZipInfo], public_key: str) -> tuple[bytes, str, Manifest]:
    if MANIFEST_NAME not in entries:
        raise ImportRefused("the archive has no manifest.json: it is not a lesson package")
    raw = _read_small(zf, entries[MANIFEST_NAME], 1_048_576)
    if SIGNATURE_NAME not in entries:
        raise ImportRefused("the package is not signed (no manifest.json.sig); only packages signed by the district are installed")
    sig = _read_small(zf, entries[SIGNATURE_NAME], MAX_SIGNATURE_BYTES).decode("ascii", "replace").strip()
    try:
        signing.verify(raw, sig, public_key)
    except signing.SignatureError as exc:
        raise ImportRefused(f"bad signature on manifest.json: {exc}") from None
    try:
        manifest = parse_manifest(raw)
    except ManifestError as exc:
        raise ImportRefused(str(exc)) from None
    listed = {FILES_PREFIX + f.path for f in manifest.files}
    present = {n for n in entries if n.startswith(FILES_PREFIX)}
    if listed - present:
        raise ImportRefused(f"files listed in the manifest are missing from the archive: {sorted(listed - present)[:5]}")
    if present - listed:
        raise ImportRefused(f"the archive holds files the manifest does not list: {sorted(present - listed)[:5]}")
    for f in manifest.files:
        if entries[FILES_PREFIX + f.path].file_size != f.size:
            raise ImportRefused(f"{f.path}: the archive says {entries[FILES_PREFIX + f.path].file_size} bytes, the manifest {f.size}")
    return raw, sig, manifest


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, expected_sha: str, expected_size: int, target: Path, progress: ProgressFn | None) -> None:
    digest = hashlib.sha256()
    n = 0
    try:
        with zf.open(info) as src, target.open("xb") as dst:
            while chunk := src.read(1 << 20):
                n += len(chunk)
                if n > expected_size:
                    raise ImportRefused(f"{info.filename} holds more bytes than the manifest's {expected_size}")
                digest.update(chunk)
                dst.write(chunk)
                if progress:
                    progress(len(chunk))
            dst.flush()
            os.fsync(dst.fileno())
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ImportRefused(f"{info.filename} is damaged in the archive: {exc}") from None
    if n != expected_size:
        raise ImportRefused(f"{info.filename} has {n} bytes, the manifest says {expected_size}")
    if digest.hexdigest() != expected_sha:
        raise ImportRefused(f"{info.filename}: sha256 {digest.hexdigest()} does not match the manifest's {expected_sha}")


def import_package(
    config: HubConfig,
    db: Database,
    package: Path,
    progress: ProgressFn | None = None,
    on_total: Callable[[int], None] | None = None,
) -> ImportResult:
    """Install ``package`` (a path to a .zip lesson package); see the module docstring."""
    public_key = district_public_key(config)
    if not public_key:
        raise ImportRefused("no district public key is configured ([district] public_key or public_key_file): nothing can be verified")
    data_dir = config.hub.data_dir
    try:
        zf = zipfile.ZipFile(package)
    except FileNotFoundError:
        raise ImportRefused(f"{package} does not exist") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportRefused(f"{package} is not a lesson package (not a readable zip archive: {exc}); is the download complete?") from None
    with zf:
        entries = _inspect(zf)
        raw, sig, manifest = verify_manifest(zf, entries, public_key)
        manifest_sha = hashlib.sha256(raw).hexdigest()
        existing = db.execute("SELECT id, manifest_sha256 FROM lessons WHERE lesson_id = ? AND version = ?", (manifest.id, manifest.version)).fetchone()
        if existing:
            if existing[1] == manifest_sha:
                return ImportResult(existing[0], manifest.id, manifest.version, len(manifest.files), 0, already_installed=True)
            raise ImportRefused(f"lesson {manifest.id} version {manifest.version} is installed with different contents; the district must issue a new version")
        missing = {f.sha256: f.size for f in manifest.files if not store.blob_path(data_dir, f.sha256).exists()}
        # Staging and store are on one file system: each new blob is written once, then renamed.
        need = sum(missing.values())
        reserve = config.storage.disk_reserve_mb * 1_048_576
        free = store.free_bytes(data_dir)
        if free - need < reserve:
            raise ImportRefused(
                f"not enough disk: the lesson needs {need // 1_048_576} MB, {free // 1_048_576} MB are free "
                f"and {config.storage.disk_reserve_mb} MB must stay free (storage.disk_reserve_mb)"
            )
        if on_total:
            on_total(sum(f.size for f in manifest.files))
        staging = store.staging_root(data_dir) / uuid.uuid4().hex
        staging.mkdir(parents=True)
        try:
            staged: dict[str, Path] = {}
            for f in manifest.files:
                target = staging / f"{len(staged)}"
                _extract(zf, entries[FILES_PREFIX + f.path], f.sha256, f.size, target, progress)
                if f.sha256 in missing and f.sha256 not in staged:
                    staged[f.sha256] = target
                else:
                    target.unlink()
            return _commit(config, db, manifest, raw, sig, manifest_sha, staged)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _commit(config: HubConfig, db: Database, manifest: Manifest, raw: bytes, sig: str, manifest_sha: str, staged: dict[str, Path]) -> ImportResult:
    data_dir = config.hub.data_dir
    with store.store_lock(data_dir):
        placed = [sha for sha, path in staged.items() if store.place(data_dir, path, sha)]
        try:
            with transaction(db):
                cur = db.conn.execute(
                    "INSERT INTO lessons (lesson_id, version, title, subject, grade, chapter, manifest, signature, manifest_sha256, total_bytes, installed_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (manifest.id, manifest.version, manifest.title, manifest.subject, manifest.grade, manifest.chapter, raw, sig, manifest_sha,
                     sum(f.size for f in manifest.files), time.time()),
                )
                pk = int(cur.lastrowid or 0)
                db.conn.executemany(
                    "INSERT INTO lesson_files (lesson, path, sha256, size, media_type) VALUES (?, ?, ?, ?, ?)",
                    [(pk, f.path, f.sha256, f.size, f.media_type) for f in manifest.files],
                )
                outbox.append(db, "lesson.installed", {"lesson_id": manifest.id, "version": manifest.version, "manifest_sha256": manifest_sha})
        except BaseException:
            for sha in placed:
                store.blob_path(data_dir, sha).unlink(missing_ok=True)
            raise
        pruned = prune_old_versions(db, manifest.id, manifest.version)
        if pruned:
            store.collect_garbage(data_dir, db)
    log.info(
        "lesson installed",
        extra={"lesson_id": manifest.id, "version": manifest.version, "files": len(manifest.files), "new_blobs": len(placed), "pruned": pruned},
    )
    return ImportResult(pk, manifest.id, manifest.version, len(manifest.files), len(placed))


def prune_old_versions(db: Database, lesson_id: str, newest: int) -> int:
    """Remove versions older than ``newest`` that no schedule refers to. Returns how many."""
    with transaction(db):
        cur = db.conn.execute(
            "DELETE FROM lessons WHERE lesson_id = ? AND version < ? AND id NOT IN (SELECT lesson FROM lesson_schedule)",
            (lesson_id, newest),
        )
        return cur.rowcount
