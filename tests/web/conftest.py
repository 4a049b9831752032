"""Fixtures for the web UI tests: a real demo hub (gunicorn subprocess) and real headless Chromium.

One hub serves the whole folder (starting it and seeding 45 students costs seconds);
tests stay independent by each using their own students and tablets.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.proc import dies_with_parent

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
LANDSCAPE = {"width": 1280, "height": 800}
PORTRAIT = {"width": 800, "height": 1280}

# The UI asks "who am I / is this tablet enrolled" through GET /api/v1/session,
# which never answers 401, so no console error is expected from those questions.
PROBE_PATHS: tuple[str, ...] = ()


@dataclass
class Hub:
    url: str
    data_dir: Path
    creds: dict[str, object]
    log_path: Path

    @property
    def origin(self) -> tuple[str, str]:
        parts = urlsplit(self.url)
        return parts.scheme, parts.netloc

    def pin(self, number: str) -> str:
        return str(self.creds["student_pins"][number])  # type: ignore[index]

    def api(self, method: str, path: str, body: object = None, token: str | None = None) -> tuple[int, object]:
        """A plain HTTP call, for setting things up quickly outside the browser."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + "/api/v1" + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def teacher_token(self) -> str:
        status, answer = self.api("POST", "/auth/login", {"username": self.creds["teacher_username"], "password": self.creds["teacher_password"]})
        assert status == 201, answer
        return answer["token"]  # type: ignore[index]

    def pairing_code(self, max_uses: int = 1) -> str:
        token = self.teacher_token()
        status, classes = self.api("GET", "/classes", token=token)
        assert status == 200
        class_id = classes["classes"][0]["id"]  # type: ignore[index]
        status, answer = self.api("POST", "/pairing-codes", {"class_id": class_id, "kind": "student", "max_uses": max_uses}, token=token)
        assert status == 201, answer
        return answer["code"]  # type: ignore[index]

    def student(self, number: str) -> dict[str, object]:
        """The demo student with this 学号 (id and name), looked up through the API."""
        token = self.teacher_token()
        _, answer = self.api("GET", "/classes/1/students", token=token)
        for row in answer["students"]:  # type: ignore[index]
            if row["number"] == number:
                return row
        raise KeyError(number)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _hub_command() -> list[str]:
    script = Path(sys.executable).with_name("classroom-hub")
    return [str(script)] if script.exists() else [sys.executable, "-m", "edge.cli"]


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    data_dir = tmp_path_factory.mktemp("hub")
    port = _free_port()
    log_path = data_dir.parent / "hub.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        dies_with_parent([*_hub_command(), "--data-dir", str(data_dir), "demo", "--host", "127.0.0.1", "--port", str(port), "--no-mdns"]),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"hub exited with {proc.returncode}:\n{log_path.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"hub not ready after 30 s:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        creds = json.loads((data_dir / "demo-credentials.json").read_text(encoding="utf-8"))
        yield Hub(url, data_dir, creds, log_path)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


# Per module, not per session: Playwright's sync API keeps an asyncio loop on the
# main thread while it is open, and zeroconf's blocking calls in later modules
# (the mDNS tests) then time out. Closing it after each module costs ~1 s.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is not installed: sh tests/run.sh installs Debian chromium; browser tests need a real Chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[test])")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@dataclass
class Watched:
    """A page and everything it did that a test may want to assert on."""

    page: object
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def unexpected_console_errors(self) -> list[str]:
        out = []
        for text in self.console_errors:
            if "status of 401" in text and any(text.rstrip().endswith("@" + p) for p in PROBE_PATHS):
                continue
            out.append(text)
        return out


@pytest.fixture
def new_page(browser: object, hub: Hub) -> Iterator[Callable[..., Watched]]:
    """Open a page in a fresh browser context (a separate tablet: its own cookies and storage)."""
    contexts = []

    def make(viewport: dict[str, int] | None = None) -> Watched:
        context = browser.new_context(viewport=viewport or LANDSCAPE, base_url=hub.url, device_scale_factor=1)  # type: ignore[attr-defined]
        context.set_default_timeout(8000)
        contexts.append(context)
        page = context.new_page()
        watched = Watched(page)
        page.on("request", lambda req: watched.requests.append(req.url))
        # The location names the failed resource for "Failed to load resource" messages.
        page.on(
            "console",
            lambda msg: watched.console_errors.append(f"{msg.text} @{urlsplit(msg.location.get('url', '')).path}") if msg.type == "error" else None,
        )
        page.on("pageerror", lambda exc: watched.page_errors.append(str(exc)))
        return watched

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $WEB_SCREENSHOTS if set (to look at them), else a temp dir."""
    target = os.environ.get("WEB_SCREENSHOTS")
    path = Path(target) if target else tmp_path_factory.mktemp("screens")
    path.mkdir(parents=True, exist_ok=True)
    return path
