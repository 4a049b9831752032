"""Fixtures for the speech tests: the real vosk model (loaded once per session),
real hubs (the tests/hub fixtures), and the worker run in-process on that model,
or as the real ``classroom-speech`` program where a test is about the process."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from edge.config import load_config
from edge.speech.model import check, resolve
from edge.speech.recognizer import SpeechModel
from edge.speech.worker import SpeechWorker
from tests.hub.support import HubEnv, bearer, build_hub, hub, module_hub, server_factory, template  # noqa: F401


@pytest.fixture(scope="session")
def speech_model() -> SpeechModel:
    pointer = resolve(load_config(environ={}).speech)
    model = SpeechModel(check(pointer))
    model.warm_up()
    return model


def teacher(h: HubEnv) -> dict[str, str]:
    return bearer(h.staff_token("teacher"))


def class_a(h: HubEnv) -> int:
    user = h.creds.teacher[0]
    return int(h.sql("SELECT class_id FROM class_teachers ct JOIN users u ON u.id = ct.user_id WHERE u.username = ? LIMIT 1", (user,))[0][0])


def create_recording(h: HubEnv, source: str = "upload", title: str = "测试录音", **extra: Any) -> dict[str, Any]:
    body = {"class_id": class_a(h), "title": title, "source": source, "request_id": str(uuid.uuid4()), **extra}
    resp = h.client().post("/api/v1/recordings", json=body, headers=teacher(h))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()


def upload(h: HubEnv, path: Path, content_type: str = "application/octet-stream", **extra: Any) -> tuple[int, Any]:
    rec = create_recording(h, **extra)
    resp = h.client().put(f"/api/v1/recordings/{rec['id']}/media", data=path.read_bytes(), content_type=content_type, headers=teacher(h))
    return rec["id"], resp


def run_worker(h: HubEnv, model: SpeechModel) -> SpeechWorker:
    """Drain the queue with an in-process worker on the shared model."""
    worker = SpeechWorker(h.config, name="test-worker", model=model)
    while worker.process_one():
        pass
    return worker


def recording(h: HubEnv, rec_id: int) -> dict[str, Any]:
    resp = h.client().get(f"/api/v1/recordings/{rec_id}", headers=teacher(h))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def words(rec: dict[str, Any]) -> list[dict[str, Any]]:
    return [w for seg in rec["segments"] for w in seg["words"]]
