"""The tablet client and the simulator against the REAL hub (``classroom-hub demo``).

The hub runs as a subprocess on 127.0.0.1 and advertises by mDNS on ``lo`` only
(``HUB_DISCOVERY_INTERFACES=lo``); tablets browse from 127.0.0.1 only. Other hubs
(other tests, other engineers' demos) may be advertising on loopback at the same
time, so every lookup is by hub id and every hub gets a unique school name.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from edge.tablet_client import client as client_module
from edge.tablet_client.client import HubError, HubIdentityMismatch, RetryPolicy, TabletClient
from edge.tablet_client.state import load_state
from tests.proc import dies_with_parent

LOOPBACK = ["127.0.0.1"]
FAST = RetryPolicy(attempts=3, base_s=0.1, cap_s=0.5)
HUB_BIN = Path(sys.executable).with_name("classroom-hub")

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RealHub:
    """``classroom-hub --data-dir D demo --host 127.0.0.1 --port P`` advertising on lo only."""

    def __init__(self, data_dir: Path, port: int, school: str, workers: int = 2) -> None:
        self.data_dir, self.port, self.school, self.workers = data_dir, port, school, workers
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.notify: socket.socket | None = None
        self.id = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> RealHub:
        """Start and wait for the hub's READY=1, which it sends only once mDNS is announced.

        /readyz alone is not enough: it answers 200 as soon as a worker serves, one to two
        seconds before the advertisement is up, and test (a) is about finding a hub that is up.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        # Never advertise on this machine's real interfaces.
        env.update(HUB_DISCOVERY_INTERFACES="lo", HUB_HUB_SCHOOL=self.school, HUB_HUB_ROOM="101", HUB_HTTP_WORKERS=str(self.workers))
        notify_path = self.data_dir.parent / f"{self.data_dir.name}.notify"
        notify_path.unlink(missing_ok=True)
        self.notify = notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        notify.settimeout(0.2)
        env["NOTIFY_SOCKET"] = str(notify_path)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                dies_with_parent([str(HUB_BIN), "--data-dir", str(self.data_dir), "demo", "--host", "127.0.0.1", "--port", str(self.port)]),
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                message = notify.recv(4096).decode()
            except TimeoutError:
                continue
            if "READY=1" in message.split("\n"):
                self.id = requests.get(self.url + "/api/v1/hub", timeout=2).json()["id"]
                return self
        self.stop()
        raise RuntimeError(f"hub did not become ready in {timeout} s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM (the hub sends mDNS goodbyes), then make sure nothing of it is left."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        if self.notify is not None:
            path = self.notify.getsockname()
            self.notify.close()
            self.notify = None
            Path(path).unlink(missing_ok=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def creds(self) -> dict[str, Any]:
        return json.loads((self.data_dir / "demo-credentials.json").read_text(encoding="utf-8"))

    def teacher(self) -> tuple[dict[str, str], int]:
        """Bearer headers of a teacher session, and the demo class id."""
        c = self.creds()
        resp = requests.post(f"{self.url}/api/v1/auth/login", json={"username": c["teacher_username"], "password": c["teacher_password"]}, timeout=10)
        assert resp.status_code == 201, resp.text
        headers = {"Authorization": f"Bearer {resp.json()['token']}"}
        classes = requests.get(f"{self.url}/api/v1/classes", headers=headers, timeout=5).json()["classes"]
        return headers, next(k["id"] for k in classes if k["name"] == c["class_name"])

    def pairing_code(self, max_uses: int = 1) -> str:
        headers, class_id = self.teacher()
        resp = requests.post(
            f"{self.url}/api/v1/pairing-codes", json={"class_id": class_id, "kind": "student", "max_uses": max_uses}, headers=headers, timeout=5
        )
        assert resp.status_code == 201, resp.text
        return str(resp.json()["code"])


def school() -> str:
    return f"端到端{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, loopback_multicast: None):
    h = RealHub(tmp_path_factory.mktemp("hub") / "data", free_port(), school())
    try:
        yield h.start()
    finally:
        h.stop()


@pytest.fixture(scope="module")
def enrolled(hub: RealHub, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Scenario (a), run once: a fresh tablet finds the hub by mDNS, enrols and signs a student in."""
    state_path = tmp_path_factory.mktemp("tablet") / "tablet.json"
    tablet = TabletClient(state_path=state_path, expected_hub_id=hub.id, interfaces=LOOPBACK, discovery_timeout=5, retry=FAST)
    t0 = time.monotonic()
    doc = tablet.connect()
    found_in = time.monotonic() - t0
    enrol = tablet.enrol(hub.pairing_code(), "平板-01")
    students = tablet.list_students()
    number = "07"
    student = next(s for s in students if s["number"] == number)
    signin = tablet.sign_in(int(student["id"]), hub.creds()["student_pins"][number])
    me = tablet.me()
    return {
        "state_path": state_path, "hub_doc": doc, "endpoint": tablet.endpoint, "base_url": tablet.base_url, "found_in": found_in,
        "enrol": enrol, "students": students, "student": student, "signin": signin, "me": me,
    }


def test_a_tablet_discovers_verifies_enrols_and_signs_in(hub: RealHub, enrolled: dict[str, Any]):
    # Found by mDNS (not by a given URL), and the id it advertised is the one /hub proves.
    endpoint = enrolled["endpoint"]
    assert endpoint is not None and endpoint.id == hub.id and endpoint.port == hub.port
    assert endpoint.school == hub.school and "127.0.0.1" in endpoint.addresses
    assert enrolled["hub_doc"]["id"] == hub.id and enrolled["base_url"] == hub.url
    assert enrolled["found_in"] < 5
    assert enrolled["enrol"]["hub_id"] == hub.id and enrolled["enrol"]["kind"] == "student"
    assert enrolled["enrol"]["class"]["name"] == hub.creds()["class_name"]
    assert len(enrolled["students"]) == 45
    assert enrolled["signin"]["student"]["id"] == enrolled["student"]["id"]
    me = enrolled["me"]
    assert me["role"] == "student" and me["id"] == enrolled["student"]["id"] and me["name"] == enrolled["student"]["name"]
    state = load_state(enrolled["state_path"])
    assert (state.hub_id, state.port, state.addresses[0]) == (hub.id, hub.port, "127.0.0.1")
    assert state.device_token and state.device_id == enrolled["enrol"]["device_id"]


def test_b_state_is_remembered_no_browsing_and_the_token_still_works(hub: RealHub, enrolled: dict[str, Any], monkeypatch: pytest.MonkeyPatch):
    def no_browsing(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a tablet that remembers its hub must not browse while the hub answers")

    monkeypatch.setattr(client_module, "resolve_hub", no_browsing)
    tablet = TabletClient(state_path=enrolled["state_path"], interfaces=LOOPBACK, retry=FAST)
    assert tablet.expected_hub_id == hub.id
    assert tablet.connect()["id"] == hub.id and tablet.base_url == hub.url
    assert len(tablet.list_students()) == 45  # the remembered device token
    number = "08"
    student = next(s for s in tablet.list_students() if s["number"] == number)
    tablet.sign_in(int(student["id"]), hub.creds()["student_pins"][number])
    assert tablet.me()["role"] == "student"


def test_c_a_different_hub_on_the_same_address_is_refused(tmp_path: Path):
    port, name = free_port(), school()
    # One worker each: quicker to start and stop, and nothing here needs two.
    first = RealHub(tmp_path / "first", port, name, workers=1)
    second = RealHub(tmp_path / "second", port, name, workers=1)  # a fresh data dir: a new hub id, same address
    state_path = tmp_path / "tablet.json"
    try:
        first.start()
        running = TabletClient(state_path=state_path, expected_hub_id=first.id, interfaces=LOOPBACK, discovery_timeout=5, retry=FAST)
        running.connect()
        running.enrol(first.pairing_code(), "平板-01")
        assert len(running.list_students()) == 45
        running.discovery_timeout = 1  # its look-up by id after the swap finds nothing: keep it short
        first.stop()
        second.start()
        assert second.id != first.id and second.url == first.url

        # A tablet starting up with the remembered hub: refused, and the hub is not forgotten.
        fresh = TabletClient(state_path=state_path, interfaces=LOOPBACK, discovery_timeout=1, retry=FAST)
        with pytest.raises(HubIdentityMismatch) as err:
            fresh.connect()
        assert (err.value.expected, err.value.actual, err.value.url) == (first.id, second.id, second.url)
        assert "another hub took this address" in str(err.value)
        assert fresh.base_url is None
        state = load_state(state_path)
        assert state.hub_id == first.id and state.device_token

        # A tablet that was running across the swap: its next call is refused the same way,
        # not reported as "unauthorized" (which would look like a revoked enrolment).
        with pytest.raises(HubIdentityMismatch) as err:
            running.list_students()
        assert (err.value.expected, err.value.actual) == (first.id, second.id)
        assert load_state(state_path).hub_id == first.id
    finally:
        first.stop()
        second.stop()


def test_d_simulator_enrols_and_signs_in_ten_tablets(tmp_path: Path):
    h = RealHub(tmp_path / "data", free_port(), school())
    try:
        h.start()
        cmd = [
            sys.executable, "-m", "edge.tablet_client", "-n", "10", "--hub-id", h.id, "--interface", "127.0.0.1",
            "--credentials", str(h.data_dir / "demo-credentials.json"), "--state-dir", str(tmp_path / "tablets"),
            "--listen", "--listen-seconds", "0.5", "--timeout", "40", "--json",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, cwd=Path(__file__).resolve().parents[2])
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        summary = json.loads(proc.stdout)
        assert (summary["enrolled"], summary["signed_in"], summary["role_ok"], summary["errors"]) == (10, 10, 10, 0), summary["error_counts"]
        assert summary["hub_id"] == h.id and summary["discovery"] == "mDNS on 127.0.0.1"
        assert all(r["stream_open"] for r in summary["results"])
        assert summary["timings_ms"]["total"]["n"] == 10
        assert len(list((tmp_path / "tablets").glob("tablet-*.json"))) == 10

        # The teacher's view agrees: ten distinct students present today.
        headers, class_id = h.teacher()
        attendance = requests.get(f"{h.url}/api/v1/classes/{class_id}/attendance", headers=headers, timeout=5).json()
        assert attendance["present"] == 10 and summary["attendance_present"] == 10
        present = {s["number"] for s in attendance["students"] if s["present"]}
        assert present == {r["student_number"] for r in summary["results"]}
        devices = requests.get(f"{h.url}/api/v1/devices", headers=headers, timeout=5).json()["devices"]
        assert len(devices) == 10
    finally:
        h.stop()


def test_hub_error_is_not_an_identity_problem(hub: RealHub):
    # Sanity check of the error path against the real hub: a wrong code is a 400 problem, not retried.
    tablet = TabletClient(base_url=hub.url, retry=FAST)
    with pytest.raises(HubError) as err:
        tablet.enrol("000000", "平板-99")
    assert err.value.status == 400 and err.value.type.endswith("bad-pairing-code")
