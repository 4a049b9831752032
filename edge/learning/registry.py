"""Which knowledge-tracing model is active, and swapping in a new one without a restart.

The active model is one row in ``learning_model`` (none: the model shipped in
``models/kt``). Every worker process keeps the model it loaded and compares its
version with that row on use, so an install by any process reaches all workers
at their next answer. A candidate is verified completely (see ``kt_model``)
before the row changes; a corrupt or mismatched file is refused and the old
model stays active. Student states computed with the old model are rebuilt
from their answer history when next used (``state.py``).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
import time
from pathlib import Path

from edge import inbox
from edge.learning.errors import ModelRejected
from edge.learning.kt_model import KTModel, bundled_manifest_path, read_manifest
from edge.storage.db import Database, transaction

log = logging.getLogger(__name__)

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_lock = threading.Lock()
_loaded: dict[str, KTModel] = {}  # manifest path -> verified model, per process
_refused: dict[str, str] = {}  # manifest path -> why it failed here (not retried on every answer)


def _load(manifest_path: Path) -> KTModel:
    key = str(manifest_path)
    if key in _refused:
        raise ModelRejected(_refused[key])
    model = _loaded.get(key)
    if model is None:
        with _lock:
            model = _loaded.get(key)
            if model is None:
                try:
                    model = KTModel(manifest_path)
                except ModelRejected as err:
                    _refused[key] = str(err)
                    raise
                _loaded.clear()  # one model per process: the old one's memory goes
                _loaded[key] = model
    return model


def active_model(db: Database) -> KTModel:
    """The model every mastery update uses now (verified, cached per process)."""
    row = db.execute("SELECT path FROM learning_model WHERE slot = 'active'").fetchone()
    path = Path(row[0]) if row else bundled_manifest_path()
    try:
        return _load(path)
    except ModelRejected as err:
        # The installed file went bad on disk after it was verified: keep the lessons going.
        log.error("active knowledge-tracing model unusable, using the bundled one", extra={"path": str(path), "error": str(err)})
        return _load(bundled_manifest_path())


def install(db: Database, data_dir: Path, manifest_path: Path) -> KTModel:
    """Verify the model described by ``manifest_path`` and make it the active one.

    Raises ``ModelRejected`` (nothing changed) when the manifest, the file or its
    behaviour does not check out.
    """
    manifest = read_manifest(manifest_path)
    version = manifest["version"]
    if not _VERSION.match(version):
        raise ModelRejected(f"model version {version!r} is not a plain name")
    candidate = KTModel(manifest_path)  # full verification of the delivered files
    current = db.execute("SELECT version, sha256 FROM learning_model WHERE slot = 'active'").fetchone()
    if current and current[0] == version:
        if current[1] == candidate.sha256:
            return active_model(db)
        raise ModelRejected(f"version {version} is already installed with different content")
    target = data_dir / "models" / "kt" / version
    staging = target.with_name(f".{version}.{time.time_ns()}")
    staging.mkdir(parents=True)
    try:
        shutil.copyfile(candidate.path, staging / candidate.path.name)
        shutil.copyfile(manifest_path, staging / "manifest.json")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    installed = KTModel(target / "manifest.json")  # the copy must verify too (disk full, torn copy)
    with transaction(db):
        db.conn.execute(
            """INSERT INTO learning_model (slot, version, path, sha256, manifest, installed_at) VALUES ('active', ?, ?, ?, ?, ?)
               ON CONFLICT(slot) DO UPDATE SET version = excluded.version, path = excluded.path, sha256 = excluded.sha256,
                 manifest = excluded.manifest, installed_at = excluded.installed_at""",
            (version, str(target / "manifest.json"), installed.sha256, json.dumps(manifest, ensure_ascii=False), time.time()),
        )
    log.info("knowledge-tracing model installed", extra={"version": version, "sha256": installed.sha256})
    return installed


def install_from_inbox(db: Database, data_dir: Path) -> list[tuple[int, str]]:
    """Install every pending model the sync agent put in the inbox (path = its manifest).

    Returns (inbox id, outcome) per file; a refused file is marked failed with the reason.
    """
    results = []
    for inbox_id, path, _sha in inbox.pending(db, "model"):
        try:
            model = install(db, data_dir, Path(path))
        except (ModelRejected, OSError) as err:
            inbox.mark_failed(db, inbox_id, str(err))
            results.append((inbox_id, f"refused: {err}"))
            log.warning("model from the district refused", extra={"inbox_id": inbox_id, "error": str(err)})
        else:
            inbox.mark_installed(db, inbox_id)
            results.append((inbox_id, f"installed {model.version}"))
    return results


def describe(db: Database) -> dict[str, object]:
    model = active_model(db)
    m = model.manifest
    return {
        "version": model.version,
        "sha256": model.sha256,
        "num_skills": model.num_skills,
        "evaluation": m.get("evaluation", {}),
        "bkt_fallback": m.get("bkt_fallback", {}),
        "bundled": db.execute("SELECT 1 FROM learning_model WHERE slot = 'active'").fetchone() is None,
    }
