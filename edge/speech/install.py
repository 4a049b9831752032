"""Installing a speech model the district shipped (a Chinese model for a Chinese classroom).

The sync agent downloads, hash-checks and signature-checks the file and records it in
the inbox as kind ``model``. A speech model is a tar archive (optionally gzip) holding
``speech-model.json`` (``{"name", "language", "engine": "vosk", "tree_sha256"}``) and
the model folder ``model/``. It is unpacked with tarfile's ``data`` filter (no absolute
paths, no ``..``, no links out, no devices), its tree hash checked against the
metadata, moved into ``<data_dir>/speech/models/``, and ``current.json`` there is
replaced atomically. :func:`edge.speech.model.resolve` prefers that pointer to the
package default; ``speech.model_path`` in the configuration still wins over both.
The worker passes ``try_load``: a model whose hash is right but which vosk cannot
load is refused too, before it becomes current, so the running model stays.
Other files of kind ``model`` (the knowledge-tracing model) are left for their installer.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

from edge import inbox
from edge.config import HubConfig
from edge.speech.model import ModelPointer, ModelProblem, check
from edge.storage.db import Database

log = logging.getLogger(__name__)

META = "speech-model.json"


def models_dir(config: HubConfig) -> Path:
    return config.hub.data_dir / "speech" / "models"


def installed_pointer(config: HubConfig) -> ModelPointer | None:
    """The model installed from the district, if any."""
    try:
        data = json.loads((models_dir(config) / "current.json").read_text(encoding="utf-8"))
        return ModelPointer(str(data["name"]), Path(data["path"]), str(data["sha256"]))
    except (OSError, ValueError, KeyError):
        return None


def _meta(archive: tarfile.TarFile) -> dict | None:
    try:
        member = archive.getmember(META)
    except KeyError:
        return None
    fh = archive.extractfile(member)
    return json.loads(fh.read(65536)) if fh else None


def install_pending(config: HubConfig, db: Database, try_load: Callable[[Path], object] | None = None) -> list[str]:
    """Install every pending speech model from the inbox; returns the names installed.

    ``try_load(model_folder)``, if given, is called on the unpacked, hash-checked model
    before it is made current; if it raises, the model is refused (inbox error) and the
    current one stays.
    """
    done = []
    for inbox_id, path, sha256 in inbox.pending(db, "model"):
        try:
            archive = tarfile.open(path)
        except (OSError, tarfile.TarError):
            continue  # not an archive: another capability's model
        with archive:
            try:
                meta = _meta(archive)
            except (ValueError, tarfile.TarError):
                meta = None
            if not meta or meta.get("engine") != "vosk":
                continue
            name = str(meta.get("name", ""))[:64] or "model"
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            target = models_dir(config) / f"{safe}-{sha256[:12]}"
            staging = target.with_name(target.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            try:
                staging.mkdir(parents=True)
                archive.extractall(staging, filter="data")
                pointer = ModelPointer(name, staging / "model", str(meta.get("tree_sha256", "")))
                if not pointer.sha256:
                    raise ModelProblem("corrupt", "the model's metadata has no tree_sha256")
                check(pointer)
            except (OSError, tarfile.TarError, ModelProblem) as exc:
                shutil.rmtree(staging, ignore_errors=True)
                inbox.mark_failed(db, inbox_id, f"speech model {name} not installed: {exc}")
                log.error("speech model from the district refused", extra={"model": name, "error": str(exc)})
                continue
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
        if try_load is not None:
            try:
                try_load(target / "model")
            except Exception as exc:  # vosk raises a bare Exception for a model it cannot load
                shutil.rmtree(target, ignore_errors=True)
                inbox.mark_failed(db, inbox_id, f"speech model {name} not installed: it does not load ({exc})")
                log.error("speech model from the district refused: it does not load", extra={"model": name, "error": str(exc)})
                continue
        current = models_dir(config) / "current.json"
        tmp = current.with_suffix(".tmp")
        tmp.write_text(json.dumps({"name": name, "path": str(target / "model"), "sha256": pointer.sha256, "language": meta.get("language")}))
        os.replace(tmp, current)
        inbox.mark_installed(db, inbox_id)
        log.info("speech model installed", extra={"model": name, "path": str(target)})
        done.append(name)
    return done
