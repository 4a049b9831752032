"""Recording a lesson from the teacher's browser, in real Chromium: a fake microphone
fed from the reference clip, the page's AudioWorklet turning it into 16 kHz PCM sent to
the hub's live ingest in numbered chunks, live captions on the page, stop, and the
hub's transcript of what was recorded. Also a Wi-Fi that drops answers and goes away
for a few seconds: the hub still gets every second of audio exactly once; away for
longer than the hub waits: the rest of the lesson becomes a second part; and the tab
closed while offline: its audio, kept in IndexedDB, is offered on the next visit and
sent as the next part."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests

from edge.config import load_config
from edge.speech.audio import RATE
from edge.speech.recognizer import SpeechModel
from edge.speech.worker import SpeechWorker
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

from .media import clip_samples, write_wav

LEAD_S, TAIL_S = 0.5, 1.1  # silence around the clip in the microphone's file (it loops)
# A name for the hub as tablets on the LAN reach it over plain HTTP (not a secure context).
# Chromium maps it to loopback itself, so no DNS query leaves the machine.
LAN_NAME = "hub.classroom.test"


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Chromium's fake capture reads 16-bit PCM WAV; built here, not committed.
    silence = np.zeros(int(LEAD_S * RATE), dtype=np.int16)
    tail = np.zeros(int(TAIL_S * RATE), dtype=np.int16)
    return write_wav(tmp_path_factory.mktemp("mic") / "teacher-mic.wav", np.concatenate([silence, clip_samples(), tail]))


@pytest.fixture(scope="module")
def mic_browser(mic_wav: Path) -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is not installed: sh tests/run.sh installs Debian chromium; the recorder is tested in a real browser")
    from playwright.sync_api import sync_playwright

    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={mic_wav}",
            f"--host-resolver-rules=MAP {LAN_NAME} 127.0.0.1"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
        yield browser
        browser.close()


@contextmanager
def running_worker(data_dir: Path, model: SpeechModel, live_idle_timeout_s: float = 30) -> Iterator[SpeechWorker]:
    """The worker's job loop on the shared model, against the server's database (captions go through the live bus)."""
    overrides = {"hub": {"data_dir": str(data_dir)}, "speech": {"live_idle_timeout_s": live_idle_timeout_s}}
    config = load_config(environ={}, overrides=overrides)
    worker = SpeechWorker(config, name="browser-recording-test", model=model)

    def loop() -> None:
        while not worker.stop.is_set():
            if not worker.process_one():
                worker.stop.wait(0.2)

    thread = threading.Thread(target=loop, name="speech-test-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop.set()
        thread.join(60)


class Teacher:
    """A signed-in teacher's page on /speech, with every request and console error watched."""

    def __init__(self, browser: object, url: str, creds: dict, page_url: str | None = None) -> None:
        """Signs in at ``url``; the page is opened at ``page_url`` (default ``url``), which must be the same host."""
        self.url = page_url or url
        self.context = browser.new_context(base_url=self.url, viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
        self.context.set_default_timeout(20000)
        login = {"username": creds["teacher_username"], "password": creds["teacher_password"]}
        # Sign in from the test (not the browser's request API, which does its own DNS) and hand the cookie over.
        answer = requests.post(url + "/api/v1/auth/login", json=login, timeout=10)
        assert answer.status_code == 201, answer.text
        self.context.add_cookies([{"name": c.name, "value": c.value or "", "url": self.url} for c in answer.cookies])
        url = self.url
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.live_posts: list[tuple[str, int]] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda msg: self.errors.append(f"{msg.text} @{msg.location.get('url', '')}") if msg.type == "error" else None)
        origin = urlsplit(url).netloc
        def note_foreign(req) -> None:  # type: ignore[no-untyped-def]
            if urlsplit(req.url).netloc != origin and not req.url.startswith(("data:", "blob:")):
                self.foreign.append(req.url)

        self.page.on("request", note_foreign)
        self.page.on("response", lambda resp: self.live_posts.append((resp.url, resp.status)) if "/live?seq=" in resp.url else None)
        self.page.goto("/speech")
        self.page.wait_for_selector("body[data-ready='1']")

    def start(self, title: str) -> float:
        """Press record; returns when the page is live (the microphone opened a little earlier)."""
        self.page.fill("#rec-title", title)
        self.clicked = time.monotonic()
        self.page.click("#rec-start")
        self.page.wait_for_selector("#recorder[data-state='live']")
        self.live = time.monotonic()
        return self.live

    def stop(self) -> None:
        self.stopped = time.monotonic()
        self.page.click("#rec-stop")
        self.page.wait_for_selector("#recorder[data-state='saved']", timeout=60000)

    def captured_s(self) -> float:
        """Audio the page captured, by its own count of 16 kHz samples."""
        return int(self.page.get_attribute("#recorder", "data-captured-samples") or 0) / RATE

    def check_duration(self, rec: dict) -> None:
        # Every captured sample reached the hub exactly once (the hub reports duration to 0.01 s;
        # a chunk sent twice or lost would be 1 s, a lost worklet block 0.1 s) ...
        assert abs(rec["duration_s"] - self.captured_s()) <= 0.005 + 1 / RATE, (rec["duration_s"], self.captured_s())
        # ... and the page captured as much audio as time passed (the worklet's 16 kHz is true):
        # at least from "live" to "stop", at most from pressing record to pressing stop, give or take.
        assert self.stopped - self.live - 0.3 < rec["duration_s"] < self.stopped - self.clicked + 0.5, (rec["duration_s"], self.live - self.clicked)

    def recording_id(self) -> int:
        return int(self.page.get_attribute("#recorder", "data-recording-id") or 0)

    def close(self) -> None:
        self.context.close()


def _wait_done(url: str, auth: dict, rec_id: int, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = requests.get(f"{url}/api/v1/recordings/{rec_id}", headers=auth, timeout=10).json()
        if rec["state"] in ("done", "failed"):
            return rec
        time.sleep(0.3)
    raise AssertionError(f"recording {rec_id} not transcribed in {timeout} s: {rec}")


def _auth(url: str, creds: dict) -> dict[str, str]:
    login = {"username": creds["teacher_username"], "password": creds["teacher_password"]}
    return {"Authorization": "Bearer " + requests.post(url + "/api/v1/auth/login", json=login, timeout=10).json()["token"]}


def _text(rec: dict) -> str:
    return "".join(seg["text"] for seg in rec["segments"]).replace(" ", "")


def test_a_lesson_recorded_in_the_browser_is_transcribed_with_live_captions(server_factory, mic_browser, speech_model: SpeechModel) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory(workers=2).start()
    creds = srv.creds()
    teacher = Teacher(mic_browser, srv.url, creds)
    try:
        with running_worker(srv.data_dir, speech_model):
            # Two passes of the microphone's file (it loops): at least one whole clip whatever the phase.
            record_s = 2 * (LEAD_S + len(clip_samples()) / RATE + TAIL_S)
            t0 = teacher.start("韩语朗读（浏览器录制）")
            assert teacher.page.get_attribute("#recorder", "data-input-rate") in ("44100", "48000", "16000")
            # Live captions of what is being said appear on the page while recording.
            teacher.page.wait_for_function("() => document.getElementById('caption-final').textContent.replace(/ /g, '').includes('옆으로')", timeout=30000)
            assert time.monotonic() - t0 < 30
            teacher.page.wait_for_selector("#recordings li:has-text('韩语朗读（浏览器录制）') .state-receiving")
            levels = []
            while time.monotonic() - t0 < record_s:
                levels.append(float(teacher.page.eval_on_selector("#rec-level", "m => m.value")))
                time.sleep(0.1)
            elapsed_shown = teacher.page.inner_text("#rec-time")
            recorded_s = time.monotonic() - t0
            teacher.stop()
            rec_id = teacher.recording_id()
            auth = _auth(srv.url, creds)
            rec = _wait_done(srv.url, auth, rec_id)
        assert rec["state"] == "done" and rec["source"] == "live" and rec["error"] is None, rec
        teacher.check_duration(rec)
        text = _text(rec)
        for word in ("옆으로", "하면서"):
            assert word in text, text
        assert all(status == 200 for _, status in teacher.live_posts), teacher.live_posts
        assert len(teacher.live_posts) >= int(recorded_s) - 1
        # The meter follows the voice: loud while the clip plays, near zero in its silences.
        assert max(levels) > 0.6 and min(levels) < 0.2, levels
        minutes, seconds = elapsed_shown.split(":")
        assert abs(int(minutes) * 60 + int(seconds) - recorded_s) <= 1.5, (elapsed_shown, recorded_s)
        # The page lists it, and the player can open it.
        teacher.page.wait_for_selector("#recordings li:has-text('韩语朗读（浏览器录制）')")
        assert not teacher.foreign, teacher.foreign
        assert not teacher.errors, teacher.errors
    finally:
        teacher.close()


def test_lost_answers_and_a_wifi_drop_neither_duplicate_nor_lose_audio(server_factory, mic_browser, speech_model: SpeechModel) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory(workers=2).start()
    creds = srv.creds()
    teacher = Teacher(mic_browser, srv.url, creds)
    dropped: list[str] = []

    def lose_answer(route) -> None:  # type: ignore[no-untyped-def]
        # The hub gets the chunk and stores it, but its answer never reaches the tablet.
        if len(dropped) < 2 and route.request.url.endswith(("seq=3", "seq=4")):
            route.fetch()
            dropped.append(route.request.url)
            route.abort("connectionreset")
        else:
            route.continue_()

    teacher.page.route("**/live?seq=*", lose_answer)
    try:
        with running_worker(srv.data_dir, speech_model):
            t0 = teacher.start("断网测试")
            time.sleep(5.5)
            teacher.context.set_offline(True)
            teacher.page.wait_for_selector("#recorder[data-state='behind']", timeout=15000)
            time.sleep(4)
            pending = teacher.page.inner_text("#rec-msg")
            teacher.context.set_offline(False)
            teacher.page.wait_for_selector("#recorder[data-state='live']", timeout=20000)
            time.sleep(max(0.0, 14 - (time.monotonic() - t0)))
            teacher.stop()
            rec_id = teacher.recording_id()
            rec = _wait_done(srv.url, _auth(srv.url, creds), rec_id)
        assert len(dropped) == 2, dropped
        assert "0:0" in pending, pending  # the page said how much audio it was holding
        assert rec["state"] == "done" and rec["error"] is None, rec
        teacher.check_duration(rec)
        assert "옆으로" in _text(rec)
        # Resent chunks were acknowledged without being appended twice (the duration says so too).
        seqs = [int(url.rsplit("=", 1)[1]) for url, status in teacher.live_posts if status == 200]
        assert seqs == sorted(seqs) and set(range(1, max(seqs) + 1)) == set(seqs)
        # While offline the browser logs failed requests; nothing else may be logged.
        unexpected = [e for e in teacher.errors if "ERR_INTERNET_DISCONNECTED" not in e and "ERR_CONNECTION_RESET" not in e]
        assert not unexpected, unexpected
        assert not teacher.foreign, teacher.foreign
    finally:
        teacher.close()


@contextmanager
def offline_after_4_s(server_factory, mic_browser, speech_model: SpeechModel, title: str) -> Iterator[tuple[object, Teacher, dict, int, float]]:  # type: ignore[no-untyped-def]
    """A teacher records ``title`` for 4 s with the hub closing quiet streams after 2 s, then the
    tablet goes offline: yields (server, teacher, auth, part 1's id, the moment recording went live)."""
    srv = server_factory(workers=2).start()
    creds = srv.creds()
    teacher = Teacher(mic_browser, srv.url, creds)
    auth = _auth(srv.url, creds)
    try:
        with running_worker(srv.data_dir, speech_model, live_idle_timeout_s=2):
            t0 = teacher.start(title)
            time.sleep(4)
            first = teacher.recording_id()
            teacher.context.set_offline(True)
            yield srv, teacher, auth, first, t0
    finally:
        teacher.close()


def test_audio_held_while_the_hub_closed_the_stream_becomes_a_second_part(server_factory, mic_browser, speech_model: SpeechModel) -> None:  # type: ignore[no-untyped-def]
    with offline_after_4_s(server_factory, mic_browser, speech_model, "分段测试") as (srv, teacher, auth, first, t0):
        # The hub hears nothing for longer than its idle timeout and closes part 1.
        deadline = time.monotonic() + 20
        while requests.get(f"{srv.url}/api/v1/recordings/{first}", headers=auth, timeout=10).json()["state"] == "receiving":
            assert time.monotonic() < deadline, "the hub did not close the quiet stream"
            time.sleep(0.2)
        time.sleep(1)
        teacher.context.set_offline(False)
        teacher.page.wait_for_function(f"() => Number(document.getElementById('recorder').dataset.recordingId) > {first}", timeout=20000)
        time.sleep(max(0.0, 15 - (time.monotonic() - t0)))
        teacher.stop()
        second = teacher.recording_id()
        parts = [_wait_done(srv.url, auth, first), _wait_done(srv.url, auth, second)]
        assert [p["title"] for p in parts] == ["分段测试", "分段测试 (2)"]
        assert "stopped without being finished" in parts[0]["error"] and parts[1]["error"] is None
        # Together the parts hold every captured sample once, and part 2 starts where part 1 ends.
        assert abs(parts[0]["duration_s"] + parts[1]["duration_s"] - teacher.captured_s()) <= 0.01, ([p["duration_s"] for p in parts], teacher.captured_s())
        assert abs(parts[1]["started_at"] - (parts[0]["started_at"] + parts[0]["duration_s"])) < 0.01
        assert parts[1]["duration_s"] > 5
        assert "옆으로" in _text(parts[0]) + _text(parts[1])
        assert "2" in teacher.page.inner_text("#rec-msg")
        # Offline failures, and the hub's 409 "recording closed" that started part 2, are logged by Chromium itself.
        unexpected = [e for e in teacher.errors if "ERR_INTERNET_DISCONNECTED" not in e and not ("409" in e and "/live?seq=" in e)]
        assert not unexpected, unexpected


def test_audio_of_a_page_closed_while_offline_is_offered_again_and_sent_as_the_next_part(server_factory, mic_browser, speech_model: SpeechModel) -> None:  # type: ignore[no-untyped-def]
    with offline_after_4_s(server_factory, mic_browser, speech_model, "关页测试") as (srv, teacher, auth, first, _):
        teacher.page.wait_for_selector("#recorder[data-state='behind']", timeout=15000)
        time.sleep(5)
        captured = teacher.captured_s()
        # The tab is closed (no "leave this page?" prompt answered): the microphone stops with it.
        teacher.page.close(run_before_unload=False)
        teacher.context.set_offline(False)
        page = teacher.context.new_page()
        page.on("pageerror", lambda exc: teacher.errors.append(str(exc)))
        page.goto("/speech")
        page.wait_for_selector("body[data-ready='1']")
        # Offered once the closed page's lesson is stale (a few seconds), in the page's language.
        page.wait_for_selector("#rec-leftover:not([hidden])", timeout=20000)
        offer = page.inner_text("#rec-leftover-msg")
        assert "关页测试" in offer and "0:0" in offer, offer
        page.click("#rec-leftover-send")
        page.wait_for_selector("#recorder[data-state='saved']", timeout=60000)
        second = int(page.get_attribute("#recorder", "data-recording-id") or 0)
        assert second > first
        parts = [_wait_done(srv.url, auth, first), _wait_done(srv.url, auth, second)]
        # Sent: nothing is left to offer, on this page or after a reload.
        page.reload()
        page.wait_for_selector("body[data-ready='1']")
        time.sleep(7)
        assert page.is_hidden("#rec-leftover")
        assert [p["title"] for p in parts] == ["关页测试", "关页测试 (2)"]
        # Part 2 starts where part 1 ends and together they hold what was captured, but for the
        # partial last second that was never cut into a chunk before the tab closed.
        assert abs(parts[1]["started_at"] - (parts[0]["started_at"] + parts[0]["duration_s"])) < 0.01
        total = parts[0]["duration_s"] + parts[1]["duration_s"]
        assert captured - 1.01 <= total <= captured + 0.3, ([p["duration_s"] for p in parts], captured)
        assert parts[1]["duration_s"] >= 4, parts[1]["duration_s"]
        unexpected = [e for e in teacher.errors if "ERR_INTERNET_DISCONNECTED" not in e and not ("409" in e and "/live?seq=" in e)]
        assert not unexpected, unexpected


def test_over_plain_http_on_the_lan_the_page_says_the_microphone_needs_https(server_factory, mic_browser) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory().start()
    lan_url = f"http://{LAN_NAME}:{urlsplit(srv.url).port}"
    teacher = Teacher(mic_browser, srv.url, srv.creds(), page_url=lan_url)
    try:
        assert teacher.page.evaluate("() => window.isSecureContext") is False
        teacher.page.click("#rec-start")
        msg = teacher.page.locator("#rec-msg")
        msg.filter(has_text="HTTPS").wait_for()
        assert "麦克风" in msg.inner_text()
        teacher.page.click("#lang")
        msg.filter(has_text="secure connection").wait_for()
        assert teacher.page.is_visible("#rec-start") and not teacher.page.is_visible("#rec-stop")
        recordings = requests.get(srv.url + "/api/v1/recordings", headers=_auth(srv.url, srv.creds()), timeout=10).json()["recordings"]
        assert not [r for r in recordings if r["source"] == "live"], "no recording is created without a microphone"
        assert not teacher.errors, teacher.errors
        assert not teacher.foreign, teacher.foreign
    finally:
        teacher.close()
