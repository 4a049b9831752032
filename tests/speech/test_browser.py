"""The lesson-record page in real Chromium: search, open a hit, and the recording
plays from that moment (the media element's currentTime)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import requests

from edge.config import load_config
from edge.speech.recognizer import SpeechModel
from edge.speech.worker import SpeechWorker
from tests.web.conftest import CHROMIUM_ARGS, browser  # noqa: F401

from .media import lesson, write_wav

OFFSET = 20.0  # the clip starts 20 s into the recording


def test_opening_a_search_hit_plays_the_recording_from_that_moment(server_factory, browser, speech_model: SpeechModel, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    srv = server_factory(workers=1).start()
    creds = srv.creds()
    login = {"username": creds["teacher_username"], "password": creds["teacher_password"]}
    token = requests.post(srv.url + "/api/v1/auth/login", json=login, timeout=10).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    class_id = requests.get(srv.url + "/api/v1/classes", headers=auth, timeout=10).json()["classes"][0]["id"]
    rec = requests.post(srv.url + "/api/v1/recordings", headers=auth, timeout=10,
                        json={"class_id": class_id, "title": "韩语朗读课", "source": "upload", "request_id": str(uuid.uuid4())}).json()
    wav = write_wav(tmp_path / "lesson.wav", lesson(30, [OFFSET]))
    up = requests.put(f"{srv.url}/api/v1/recordings/{rec['id']}/media", data=wav.read_bytes(), headers={**auth, "Content-Type": "audio/wav"}, timeout=30)
    assert up.status_code == 200, up.text
    # Transcribe it with the worker's code on the shared model, against the server's database.
    config = load_config(environ={}, overrides={"hub": {"data_dir": str(srv.data_dir)}})
    worker = SpeechWorker(config, name="browser-test", model=speech_model)
    while worker.process_one():
        pass
    detail = requests.get(f"{srv.url}/api/v1/recordings/{rec['id']}", headers=auth, timeout=10).json()
    assert detail["state"] == "done"

    context = browser.new_context(base_url=srv.url)
    try:
        context.set_default_timeout(15000)
        assert context.request.post("/api/v1/auth/login", data=login).status == 201  # sets the session cookie
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto("/speech")
        page.wait_for_selector("body[data-ready='1']")
        assert page.locator("#status").inner_text()
        page.fill("#q", "옆으로")
        page.click("#search-form button[type=submit]")
        hit = page.locator(".speech-hit-open").first
        hit.wait_for()
        start = float(hit.get_attribute("data-start") or 0)
        assert OFFSET + 0.3 < start < OFFSET + 1.5
        assert page.locator(".speech-snippet mark").first.inner_text() == "옆으로"
        hit.click()
        page.wait_for_function("() => document.getElementById('player').currentTime > 1")
        now = page.evaluate("() => document.getElementById('player').currentTime")
        assert start - 0.05 <= now <= start + 3, (start, now)
        src = page.evaluate("() => document.getElementById('player').currentSrc")
        assert src.endswith(f"/api/v1/recordings/{rec['id']}/media")
        # The transcript and the exports are there too.
        assert page.locator(".speech-segment").count() == len(detail["segments"])
        assert page.locator("#export-vtt").get_attribute("href").endswith("transcript.vtt")
        assert not errors, errors
    finally:
        context.close()


@pytest.fixture(autouse=True)
def _chromium_args_are_the_shared_ones() -> None:
    assert "--no-sandbox" in CHROMIUM_ARGS
