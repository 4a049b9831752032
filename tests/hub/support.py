"""Helpers and fixtures for the hub appliance tests (re-exported by conftest.py): real data directories, real SQLite,
real HTTP (Flask test client in-process, or the real gunicorn server in a
subprocess). Nothing is mocked.

The demo classroom (45 students, a teacher, an admin) is seeded once per test
session into a template data directory; every test that needs a hub gets its
own copy of that directory (SQLite online backup), so tests never share state
and the argon2 hashing of 45 PINs happens once.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from edge.accounts import service
from edge.accounts.roster import RosterParse, RosterRow
from edge.app import create_app
from edge.config import HttpSection, HubConfig, load_config
from edge.demo.classroom import seed_demo
from edge.storage.db import connect, transaction
from edge.storage.setup import prepare_storage
from tests.proc import dies_with_parent

HUB_BIN = Path(sys.executable).with_name("classroom-hub")
OTHER_CLASS = "三年级三班"
OTHER_TEACHER = ("teacher2", "李老师", "other-teacher-pw-1")
PROBLEM = "application/problem+json"


# -- building data directories -----------------------------------------------------------


def make_config(data_dir: Path, **sections: dict[str, Any]) -> HubConfig:
    overrides: dict[str, dict[str, Any]] = {"hub": {"data_dir": str(data_dir)}, "discovery": {"enabled": False}}
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_config(environ={}, overrides=overrides)


@dataclass
class Creds:
    teacher: tuple[str, str]
    admin: tuple[str, str]
    other_teacher: tuple[str, str]
    class_name: str
    pins: dict[str, str]  # student number -> PIN (both classes; numbers are unique across them)


def _seed_template(data_dir: Path) -> Creds:
    config = make_config(data_dir)
    prepare_storage(config)
    demo = seed_demo(config)
    db = connect(config.db_path)
    try:
        uid = service.create_user(db, OTHER_TEACHER[0], OTHER_TEACHER[1], "teacher", OTHER_TEACHER[2])
        with transaction(db):
            cid = service.ensure_class(db, OTHER_CLASS)
            service.assign_teacher(db, cid, uid)
        other_pins = {f"B{i:02d}": f"{1000 + i}" for i in range(1, 6)}
        rows = [RosterRow(i + 2, f"外班学生{n}", n, OTHER_CLASS, p) for i, (n, p) in enumerate(other_pins.items())]
        service.import_roster(db, RosterParse("utf-8", rows=rows), OTHER_CLASS)
    finally:
        db.conn.close()
    return Creds(
        teacher=(demo.teacher_username, demo.teacher_password),
        admin=(demo.admin_username, demo.admin_password),
        other_teacher=(OTHER_TEACHER[0], OTHER_TEACHER[2]),
        class_name=demo.class_name,
        pins={**demo.student_pins, **other_pins},
    )


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Creds]:
    d = tmp_path_factory.mktemp("template")
    return d, _seed_template(d)


def clone_data_dir(template_dir: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(template_dir / "hub.sqlite3")
    dst = sqlite3.connect(target / "hub.sqlite3")
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    shutil.copy2(template_dir / "demo-credentials.json", target / "demo-credentials.json")
    os.chmod(target, 0o700)
    return target


# -- the in-process hub ---------------------------------------------------------------------


@dataclass
class Tablet:
    device_id: str
    token: str
    class_id: int | None


@dataclass
class HubEnv:
    """A hub built on a private copy of the seeded demo classroom."""

    app: Any
    config: HubConfig
    creds: Creds
    class_id: int
    other_class_id: int
    _tokens: dict[str, str] = field(default_factory=dict)

    # database access (a separate connection, like another process would have)
    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.config.db_path)
        try:
            return conn.execute(query, params).fetchall()
        finally:
            conn.close()

    def count(self, table: str, where: str = "1", params: tuple[Any, ...] = ()) -> int:
        return int(self.sql(f"SELECT COUNT(*) FROM {table} WHERE {where}", params)[0][0])

    def learning_applied(self, timeout: float = 5.0) -> None:
        """Wait until the answer writer has applied every queued mastery update (it runs just after the ack)."""
        deadline = time.monotonic() + timeout
        while self.count("learning_pending") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.count("learning_pending") == 0, "mastery updates still queued"

    def snapshot(self, exclude: tuple[str, ...] = ("auth_failures",)) -> dict[str, tuple[int, str]]:
        """Row count and content digest of every table (to prove a request changed nothing).

        Taken once the answer writer has applied its queued mastery updates: they follow an
        acknowledged answer asynchronously and would otherwise land between two snapshots.
        """
        if self.sql("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'learning_pending'"):
            self.learning_applied()
        out = {}
        conn = sqlite3.connect(self.config.db_path)
        try:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
            for t in tables:
                if t in exclude:
                    continue
                rows = conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                out[t] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
        finally:
            conn.close()
        return out

    def client(self, cookies: bool = False) -> Any:
        return self.app.test_client(use_cookies=cookies)

    # credentials through the real API
    def login(self, username: str, password: str) -> str:
        r = self.client().post("/api/v1/auth/login", json={"username": username, "password": password})
        assert r.status_code == 201, r.get_json()
        return r.get_json()["token"]

    def staff_token(self, who: str) -> str:
        """A cached session for 'teacher', 'admin' or 'other_teacher'."""
        if who not in self._tokens:
            self._tokens[who] = self.login(*getattr(self.creds, who))
        return self._tokens[who]

    def pairing_code(self, class_id: int | None = None, max_uses: int = 1, ttl_s: int | None = None, kind: str = "student") -> str:
        body: dict[str, Any] = {"kind": kind, "max_uses": max_uses}
        if kind == "student":
            body["class_id"] = class_id or self.class_id
        if ttl_s:
            body["ttl_s"] = ttl_s
        who = "teacher" if (class_id or self.class_id) == self.class_id else "other_teacher"
        r = self.client().post("/api/v1/pairing-codes", json=body, headers=bearer(self.staff_token(who)))
        assert r.status_code == 201, r.get_json()
        return r.get_json()["code"]

    def enrol(self, class_id: int | None = None, name: str = "tablet", request_id: str | None = None) -> Tablet:
        code = self.pairing_code(class_id)
        body: dict[str, Any] = {"code": code, "name": name}
        if request_id:
            body["request_id"] = request_id
        r = self.client().post("/api/v1/devices/enrol", json=body)
        assert r.status_code == 201, r.get_json()
        j = r.get_json()
        return Tablet(j["device_id"], j["device_token"], class_id or self.class_id)

    def student(self, number: str) -> tuple[int, str]:
        """(student id, PIN) of the student with this school number."""
        sid = self.sql("SELECT id FROM students WHERE number = ?", (number,))[0][0]
        return sid, self.creds.pins[number]

    def sign_in(self, tablet: Tablet, number: str = "01") -> str:
        sid, pin = self.student(number)
        r = self.client().post("/api/v1/signin", json={"student_id": sid, "pin": pin}, headers=device(tablet.token))
        assert r.status_code == 201, r.get_json()
        return r.get_json()["token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def device(token: str) -> dict[str, str]:
    return {"X-Device-Token": token}


def student_headers(session_token: str, device_token: str) -> dict[str, str]:
    return {**bearer(session_token), **device(device_token)}


def build_hub(template: tuple[Path, Creds], target: Path, **sections: dict[str, Any]) -> HubEnv:
    tdir, creds = template
    clone_data_dir(tdir, target)
    config = make_config(target, **sections)
    app = create_app(config)
    app.config["TESTING"] = True
    ids = dict(sqlite3.connect(config.db_path).execute("SELECT name, id FROM classes").fetchall())
    return HubEnv(app, config, creds, ids[creds.class_name], ids[OTHER_CLASS])


@pytest.fixture
def hub(template: tuple[Path, Creds], tmp_path: Path) -> HubEnv:
    return build_hub(template, tmp_path / "data")


@pytest.fixture(scope="module")
def module_hub(template: tuple[Path, Creds], tmp_path_factory: pytest.TempPathFactory) -> HubEnv:
    return build_hub(template, tmp_path_factory.mktemp("modhub") / "data")


def assert_problem(resp: Any, status: int, slug: str | None = None) -> dict[str, Any]:
    """The response is an RFC 9457 problem document with the given status."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:500])
    assert resp.mimetype == PROBLEM, resp.mimetype
    body = json.loads(resp.get_data(as_text=True))
    for key in ("type", "title", "status", "detail"):
        assert key in body and body[key] not in (None, ""), (key, body)
    assert body["status"] == status
    assert body["type"].startswith("/problems/")
    if slug is not None:
        assert body["type"] == f"/problems/{slug}", body
    return body


# -- the real server in a subprocess ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``classroom-hub --data-dir D demo --port P --no-mdns`` as a child process."""

    def __init__(self, data_dir: Path, workers: int = 1, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.workers = workers
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> Server:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env.update({"HUB_HTTP_WORKERS": str(self.workers), **self.extra_env})
        if "sse_heartbeat_s" in HttpSection.model_fields:
            env.setdefault("HUB_HTTP_SSE_HEARTBEAT_S", "1")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            dies_with_parent([str(HUB_BIN), "--data-dir", str(self.data_dir), "demo", "--host", "127.0.0.1", "--port", str(self.port), "--no-mdns"]),
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200 and len(self.processes()) > self.workers:
                    return self  # ready, and every worker has booted
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("hub did not become ready")

    def creds(self) -> dict[str, Any]:
        return json.loads((self.data_dir / "demo-credentials.json").read_text(encoding="utf-8"))

    def processes(self) -> list[psutil.Process]:
        assert self.proc is not None
        parent = psutil.Process(self.proc.pid)
        return [parent, *parent.children(recursive=True)]

    def terminate(self, timeout: float = 10) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """kill -9 the whole process group (arbiter and workers)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.terminate(10)
        except subprocess.TimeoutExpired:
            self.kill()
        else:
            self.kill()  # leftovers in the group, if any

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def server_factory(template: tuple[Path, Creds], tmp_path: Path):  # type: ignore[no-untyped-def]
    """Servers on private copies of the seeded template (the demo command finds it seeded)."""
    servers: list[Server] = []

    def make(workers: int = 1, env: dict[str, str] | None = None) -> Server:
        data_dir = clone_data_dir(template[0], tmp_path / f"srv{len(servers)}")
        srv = Server(data_dir, workers=workers, env=env)
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


class SSE:
    """A minimal Server-Sent-Events client on http.client (no read-ahead, exact timeouts)."""

    def __init__(self, port: int, headers: dict[str, str], timeout: float = 10) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", "/api/v1/events", headers={"Accept": "text/event-stream", **headers})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.buf = b""
        self.eof = False

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.eof:
            return False
        assert self.conn.sock is not None
        self.conn.sock.settimeout(remaining)
        try:
            chunk = self.resp.read1(65536)
        except (TimeoutError, OSError):
            return False
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def frames(self, want: int, timeout: float = 10) -> list[dict[str, str]]:
        """The next ``want`` frames that carry an event (comments and retry lines are skipped)."""
        deadline = time.monotonic() + timeout
        out: list[dict[str, str]] = []
        while len(out) < want:
            if b"\n\n" not in self.buf:
                if not self._fill(deadline):
                    break
                continue
            raw, self.buf = self.buf.split(b"\n\n", 1)
            frame = {}
            for line in raw.decode("utf-8").split("\n"):
                key, _, value = line.partition(": ")
                if key in ("id", "event", "data"):
                    frame[key] = value
            if "event" in frame:
                out.append(frame)
        return out

    def first_line(self, timeout: float = 5) -> bytes:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf and self._fill(deadline):
            pass
        return self.buf.split(b"\n", 1)[0]

    def read_to_end(self, timeout: float) -> bool:
        """True when the server ended the stream (cleanly) within ``timeout``."""
        deadline = time.monotonic() + timeout
        while self._fill(deadline):
            self.buf = b""
        return self.eof

    def close(self) -> None:
        self.conn.close()


class HttpHub:
    """Convenience calls against a running server."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.creds = server.creds()

    def login(self, who: str = "teacher") -> str:
        c = self.creds
        user, pw = (c["teacher_username"], c["teacher_password"]) if who == "teacher" else (c["admin_username"], c["admin_password"])
        r = requests.post(self.server.url + "/api/v1/auth/login", json={"username": user, "password": pw}, timeout=10)
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def class_id(self, token: str) -> int:
        return int(requests.get(self.server.url + "/api/v1/classes", headers=bearer(token), timeout=10).json()["classes"][0]["id"])

    def enrol(self, teacher_token: str, name: str = "tablet") -> str:
        url = self.server.url
        code = requests.post(url + "/api/v1/pairing-codes", json={"class_id": self.class_id(teacher_token)}, headers=bearer(teacher_token), timeout=10)
        assert code.status_code == 201, code.text
        r = requests.post(url + "/api/v1/devices/enrol", json={"code": code.json()["code"], "name": name, "request_id": str(uuid.uuid4())}, timeout=10)
        assert r.status_code == 201, r.text
        return r.json()["device_token"]

    def students(self, device_token: str) -> list[dict[str, Any]]:
        r = requests.get(self.server.url + "/api/v1/signin/students", headers=device(device_token), timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["students"]
