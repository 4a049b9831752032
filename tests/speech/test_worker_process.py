"""The real ``classroom-speech`` program: live captions through the hub's SSE stream,
a stream that stops mid-way, kill -9 and SIGTERM mid-job, and a missing or corrupt model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from edge.speech.audio import RATE
from tests.hub.support import SSE, HubEnv
from tests.proc import dies_with_parent

from .conftest import recording, teacher, upload
from .media import CLIP, clip_samples, write_wav

SPEECH_BIN = Path(sys.executable).with_name("classroom-speech")


class Worker:
    def __init__(self, data_dir: Path, log_path: Path, **env: str) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        full_env.update({"HUB_LOGGING_FORMAT": "json", **env})
        self.log_path = log_path
        with log_path.open("ab") as log:
            cmd = [str(SPEECH_BIN)] if SPEECH_BIN.exists() else [sys.executable, "-m", "edge.speech.worker"]
            self.proc = subprocess.Popen(dies_with_parent([*cmd, "--data-dir", str(data_dir)]), stdout=log, stderr=subprocess.STDOUT,
                                         env=full_env, start_new_session=True)

    def log(self) -> list[dict]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        w.stop()


def _wait(pred, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _status(db_path: Path) -> str | None:
    import sqlite3

    with sqlite3.connect(db_path) as conn:
        row = conn.execute("SELECT model_state FROM speech_worker_status ORDER BY updated_at DESC LIMIT 1").fetchone()
    return row[0] if row else None


def test_live_captions_reach_the_teacher_and_a_stream_that_stops_keeps_its_transcript(server_factory, workers: list[Worker], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory(workers=2, env={"HUB_SPEECH_LIVE_IDLE_TIMEOUT_S": "3"}).start()
    workers.append(Worker(srv.data_dir, tmp_path / "speech.log", HUB_SPEECH_LIVE_IDLE_TIMEOUT_S="3"))
    db_path = srv.data_dir / "hub.sqlite3"
    _wait(lambda: _status(db_path) == "ready", 90, "the worker to load its model")
    creds = srv.creds()
    login = {"username": creds["teacher_username"], "password": creds["teacher_password"]}
    token = requests.post(srv.url + "/api/v1/auth/login", json=login, timeout=10).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    classes = requests.get(srv.url + "/api/v1/classes", headers=auth, timeout=10).json()["classes"]
    sse = SSE(srv.port, auth, timeout=30)
    assert sse.status == 200
    rec = requests.post(srv.url + "/api/v1/recordings", headers=auth, timeout=10, json={
        "class_id": classes[0]["id"], "title": "直播", "source": "live", "request_id": str(uuid.uuid4())}).json()
    clip = clip_samples()
    audio = np.concatenate([clip, np.zeros(RATE, dtype=np.int16), clip]).astype("<i2").tobytes()
    chunk = RATE  # 0.5 s of 16-bit samples
    seq = 0
    for i in range(0, len(audio), chunk):
        seq += 1
        url = f"{srv.url}/api/v1/recordings/{rec['id']}/live?seq={seq}"
        r = requests.post(url, data=audio[i:i + chunk], headers={**auth, "Content-Type": "audio/L16"}, timeout=10)
        assert r.status_code == 200 and r.json()["appended"], r.text
        if seq == 3:  # the answer was lost on the Wi-Fi: the tablet sends it again
            again = requests.post(url, data=audio[i:i + chunk], headers={**auth, "Content-Type": "audio/L16"}, timeout=10)
            assert again.status_code == 200 and not again.json()["appended"]
        time.sleep(0.25)
    gap = requests.post(f"{srv.url}/api/v1/recordings/{rec['id']}/live?seq={seq + 2}", data=b"\0\0", headers={**auth, "Content-Type": "audio/L16"}, timeout=10)
    assert gap.status_code == 409 and gap.json()["expected_seq"] == seq + 1
    # The tablet goes away without finishing. Captions arrive; then the hub closes the stream.
    captions = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(c["final"] and "옆으로" in c["text"] for c in captions[1:] if c["start"] > 4):
        for frame in sse.frames(1, timeout=5):
            if frame["event"] == "speech.caption":
                captions.append(json.loads(frame["data"]))
    sse.close()
    assert any(not c["final"] for c in captions), "partial captions while speaking"
    finals = [c for c in captions if c["final"]]
    assert len(finals) >= 2 and abs(finals[0]["start"] - 0.63) < 0.3 and abs(finals[-1]["start"] - (3.888 + 1 + 0.63)) < 0.3, finals
    done = _wait(lambda: (r := requests.get(f"{srv.url}/api/v1/recordings/{rec['id']}", headers=auth, timeout=10).json())["state"] == "done" and r, 60, "done")
    assert "stopped without being finished" in done["error"]
    assert abs(done["duration_s"] - len(audio) / 2 / RATE) < 0.01
    assert len(done["segments"]) >= 2
    late = requests.post(f"{srv.url}/api/v1/recordings/{rec['id']}/live?seq={seq + 1}", data=b"\0\0", headers={**auth, "Content-Type": "audio/L16"}, timeout=10)
    assert late.status_code == 409
    media = requests.get(f"{srv.url}/api/v1/recordings/{rec['id']}/media", headers={**auth, "Range": "bytes=0-43"}, timeout=10)
    assert media.status_code == 206 and media.content[:4] == b"RIFF" and int.from_bytes(media.content[40:44], "little") == len(audio)
    rtf = [e for e in workers[0].log() if e["msg"] == "recording transcribed"]
    assert rtf and rtf[0]["rtf"] > 0


def _long_upload(hub: HubEnv, tmp_path: Path, seconds: int = 20) -> int:
    clip = clip_samples()
    reps = seconds * RATE // len(clip) + 1
    path = write_wav(tmp_path / "long.wav", np.tile(clip, reps)[: seconds * RATE])
    rec_id, resp = upload(hub, path, "audio/wav")
    assert resp.status_code == 200
    return rec_id


def test_a_worker_killed_mid_job_is_replaced_and_the_job_redone_not_lost(hub: HubEnv, workers: list[Worker], tmp_path: Path) -> None:
    rec_id = _long_upload(hub, tmp_path)
    first = Worker(hub.config.hub.data_dir, tmp_path / "w1.log")
    workers.append(first)
    _wait(lambda: hub.count("speech_segments", "recording_id = ?", (rec_id,)) >= 1, 120, "the first segments")
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait()
    assert hub.sql("SELECT state FROM speech_jobs WHERE recording_id = ?", (rec_id,))[0][0] == "running"
    second = Worker(hub.config.hub.data_dir, tmp_path / "w2.log")
    workers.append(second)
    _wait(lambda: hub.sql("SELECT state FROM speech_jobs WHERE recording_id = ?", (rec_id,))[0][0] == "done", 180, "the redone job")
    rec = recording(hub, rec_id)
    assert rec["job"]["attempts"] == 2
    starts = [s["start"] for s in rec["segments"]]
    assert starts == sorted(starts) and len(starts) == len(set(starts)), "no duplicated segments from the killed attempt"
    assert starts[-1] > 15
    assert hub.count("outbox", "type = 'speech.transcript'") == 1


def test_sigterm_returns_the_running_job_to_the_queue(hub: HubEnv, workers: list[Worker], tmp_path: Path) -> None:
    rec_id = _long_upload(hub, tmp_path, seconds=30)
    w = Worker(hub.config.hub.data_dir, tmp_path / "w.log")
    workers.append(w)
    _wait(lambda: hub.count("speech_segments", "recording_id = ?", (rec_id,)) >= 1, 120, "the first segments")
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(20) == 0
    state, attempts = hub.sql("SELECT state, attempts FROM speech_jobs WHERE recording_id = ?", (rec_id,))[0]
    assert (state, attempts) == ("queued", 0)


@pytest.mark.parametrize("kind", ["missing", "corrupt"])
def test_without_a_usable_model_the_hub_says_so_and_runs_without_speech(hub: HubEnv, workers: list[Worker], tmp_path: Path, kind: str) -> None:
    model = tmp_path / "model"
    if kind == "corrupt":
        (model / "am").mkdir(parents=True)
        (model / "conf").mkdir()
        (model / "am" / "final.mdl").write_bytes(os.urandom(4096))
        (model / "conf" / "mfcc.conf").write_text("--sample-frequency=16000\n")
    w = Worker(hub.config.hub.data_dir, tmp_path / "w.log", HUB_SPEECH_MODEL_PATH=str(model))
    workers.append(w)
    db_path = hub.config.db_path
    _wait(lambda: _status(db_path) == kind, 60, f"the worker to report {kind}")
    status = hub.client().get("/api/v1/speech/status", headers=teacher(hub)).get_json()
    assert status["model_state"] == kind and str(model) in status["detail"]
    assert w.proc.poll() is None, "the worker waits for a model instead of crash-looping"
    assert any(e["level"] == "error" and e["model_state"] == kind for e in w.log())
    # The classroom goes on: recordings are still accepted and wait in the queue for a model.
    rec_id, resp = upload(hub, CLIP, "audio/wav")
    assert resp.status_code == 200
    time.sleep(1.5)
    assert hub.sql("SELECT state FROM speech_jobs WHERE recording_id = ?", (rec_id,))[0][0] == "queued"
    assert hub.client().get("/api/v1/classes", headers=teacher(hub)).status_code == 200
