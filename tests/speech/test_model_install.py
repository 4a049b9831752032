"""A speech model shipped by the district (inbox kind ``model``) is unpacked safely,
hash-checked, and preferred over the package default; bad archives change nothing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from edge import inbox
from edge.speech.install import install_pending, installed_pointer
from edge.speech.model import resolve, tree_hash
from edge.storage.db import connect
from tests.hub.support import HubEnv

from .conftest import teacher


def _model_folder(root: Path) -> Path:
    folder = root / "model"
    (folder / "am").mkdir(parents=True)
    (folder / "conf").mkdir()
    (folder / "am" / "final.mdl").write_bytes(os.urandom(2048))
    (folder / "conf" / "mfcc.conf").write_text("--sample-frequency=16000\n")
    (folder / "graph").mkdir()
    (folder / "graph" / "words.txt").write_text("分数 1\n加法 2\n", encoding="utf-8")
    return folder


def _archive(path: Path, folder: Path, meta: dict, extra: list[tuple[str, bytes]] = ()) -> Path:  # type: ignore[assignment]
    with tarfile.open(path, "w:gz") as tar:
        data = json.dumps(meta, ensure_ascii=False).encode()
        info = tarfile.TarInfo("speech-model.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        tar.add(folder, arcname="model")
        for name, payload in extra:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def _run(hub: HubEnv, path: Path) -> tuple[list[str], int]:
    db = connect(hub.config.db_path)
    try:
        inbox_id = inbox.add(db, "model", path, hashlib.sha256(path.read_bytes()).hexdigest())
        return install_pending(hub.config, db), inbox_id
    finally:
        db.conn.close()


def test_a_district_model_is_installed_and_preferred(hub: HubEnv, tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "src")
    path = _archive(tmp_path / "zh.tar.gz", folder, {"name": "vosk-model-small-cn", "language": "zh", "engine": "vosk", "tree_sha256": tree_hash(folder)})
    installed, inbox_id = _run(hub, path)
    assert installed == ["vosk-model-small-cn"]
    pointer = installed_pointer(hub.config)
    assert pointer is not None and pointer.path.is_dir() and tree_hash(pointer.path) == tree_hash(folder)
    assert resolve(hub.config.speech, pointer).path == pointer.path
    assert hub.sql("SELECT installed_at IS NOT NULL FROM inbox WHERE id = ?", (inbox_id,))[0][0] == 1
    status = hub.client().get("/api/v1/speech/status", headers=teacher(hub)).get_json()
    assert status["model"] == "vosk-model-small-cn"


@pytest.mark.parametrize("bad", ["tampered", "escape", "no-hash"])
def test_a_bad_model_archive_is_refused_and_changes_nothing(hub: HubEnv, tmp_path: Path, bad: str) -> None:
    folder = _model_folder(tmp_path / "src")
    meta = {"name": "zh", "language": "zh", "engine": "vosk", "tree_sha256": tree_hash(folder)}
    extra: list[tuple[str, bytes]] = []
    if bad == "tampered":
        meta["tree_sha256"] = "0" * 64
    elif bad == "escape":
        extra = [("../../escaped.txt", b"outside")]
    else:
        del meta["tree_sha256"]
    path = _archive(tmp_path / "zh.tar.gz", folder, meta, extra)
    installed, inbox_id = _run(hub, path)
    assert installed == []
    assert installed_pointer(hub.config) is None
    error = hub.sql("SELECT error, installed_at FROM inbox WHERE id = ?", (inbox_id,))[0]
    assert error[0] and error[1] is None
    assert not list(hub.config.hub.data_dir.parent.rglob("escaped.txt"))
    models = hub.config.hub.data_dir / "speech" / "models"
    assert not models.exists() or not any(p.name.endswith(".partial") for p in models.iterdir())


def test_other_kinds_of_model_file_are_left_for_their_installer(hub: HubEnv, tmp_path: Path) -> None:
    onnx = tmp_path / "kt.onnx"
    onnx.write_bytes(b"\x08\x07" + os.urandom(512))
    installed, inbox_id = _run(hub, onnx)
    assert installed == []
    assert hub.sql("SELECT error, installed_at FROM inbox WHERE id = ?", (inbox_id,))[0] == (None, None)
