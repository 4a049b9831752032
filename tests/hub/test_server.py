"""The real server (gunicorn, subprocess, real HTTP): durability on kill -9,
clean shutdown on SIGTERM, live events across worker processes."""

from __future__ import annotations

import hashlib
import http.client
import json
import signal
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from .support import SSE, HttpHub, Server, bearer, device

pytestmark = pytest.mark.slow


def _sign_in(srv: Server, device_token: str, student_id: int, pin: str, timeout: float = 10) -> requests.Response:
    return requests.post(srv.url + "/api/v1/signin", json={"student_id": student_id, "pin": pin}, headers=device(device_token), timeout=timeout)


def _setup_tablet(srv: Server) -> tuple[HttpHub, str, list[tuple[int, str]]]:
    h = HttpHub(srv)
    teacher = h.login()
    tablet = h.enrol(teacher)
    pins = h.creds["student_pins"]
    students = [(s["id"], pins[s["number"]]) for s in h.students(tablet)]
    return h, tablet, students


def _sessions_present(db_path: Path, tokens: list[str]) -> set[str]:
    conn = sqlite3.connect(db_path)
    try:
        hashes = {r[0] for r in conn.execute("SELECT token_hash FROM sessions")}
    finally:
        conn.close()
    return {t for t in tokens if hashlib.sha256(t.encode()).hexdigest() in hashes}


def test_acknowledged_writes_survive_kill_9(server_factory: Any) -> None:
    srv = server_factory(workers=2).start()
    _, tablet, students = _setup_tablet(srv)
    outbox_before = _count(srv, "outbox")
    acked = []
    for sid, pin in students[:20]:
        r = _sign_in(srv, tablet, sid, pin)
        assert r.status_code == 201
        acked.append(r.json()["token"])
    srv.kill()  # SIGKILL to arbiter and workers, right after the last acknowledgement
    srv.start()
    assert _sessions_present(srv.data_dir / "hub.sqlite3", acked) == set(acked)
    assert _count(srv, "outbox") - outbox_before == 20
    assert _count(srv, "attendance") == 20
    # and the restarted hub serves them
    h = HttpHub(srv)
    att = requests.get(f"{srv.url}/api/v1/classes/{h.class_id(h.login())}/attendance", headers=bearer(h.login()), timeout=10).json()
    assert att["present"] == 20


def _count(srv: Server, table: str) -> int:
    conn = sqlite3.connect(srv.data_dir / "hub.sqlite3")
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def test_concurrent_acknowledged_writes_survive_kill_9_mid_stream(server_factory: Any) -> None:
    srv = server_factory(workers=2).start()
    _, tablet, students = _setup_tablet(srv)
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(offset: int) -> None:
        i = offset
        while not stop.is_set():
            sid, pin = students[i % len(students)]
            i += 4
            try:
                r = _sign_in(srv, tablet, sid, pin, timeout=5)
            except requests.RequestException:
                continue  # the server died under us: not acknowledged
            if r.status_code == 201:
                with lock:
                    acked.append(r.json()["token"])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.kill()  # mid-stream: requests are in flight
    stop.set()
    for t in threads:
        t.join(10)
    with lock:
        snapshot = list(acked)
    assert len(snapshot) >= 40
    srv.start()
    missing = set(snapshot) - _sessions_present(srv.data_dir / "hub.sqlite3", snapshot)
    assert not missing, f"{len(missing)} of {len(snapshot)} acknowledged sign-ins were lost"
    assert _count(srv, "outbox") >= len(snapshot)
    conn = sqlite3.connect(srv.data_dir / "hub.sqlite3")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _sse(srv: Server, token: str, cookie: bool = False, **extra: str) -> SSE:
    headers = {"Cookie": f"hub_session={token}"} if cookie else bearer(token)
    s = SSE(srv.port, {**headers, **extra})
    assert s.status == 200
    assert s.resp.getheader("Content-Type", "").startswith("text/event-stream")
    assert s.first_line() == b"retry: 1000"  # headers and the first frame are flushed at once
    return s


def test_sigterm_exits_cleanly_with_open_streams_ten_times(server_factory: Any) -> None:
    srv = server_factory(workers=2)
    token = ""
    for cycle in range(10):
        srv.start()
        token = token or HttpHub(srv).login()  # the session survives restarts
        streams = [_sse(srv, token, cookie=(i % 2 == 0)) for i in range(3)]
        idle = []
        for _ in range(2):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
            conn.request("GET", "/healthz")
            conn.getresponse().read()  # the connection stays open (HTTP/1.1 keep-alive)
            idle.append(conn)
        procs = srv.processes()
        assert len(procs) == 3, [p.name() for p in procs]  # arbiter + 2 workers
        t0 = time.monotonic()
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGTERM)
        # Open streams are ended by the hub (not cut) within a couple of seconds.
        ended = [s.read_to_end(timeout=3) for s in streams]
        assert all(ended), f"cycle {cycle}: streams still open 3 s after SIGTERM: {ended}"
        for s in streams:
            s.close()
        if cycle not in (0, 9):
            # Tablets that go away. In the other cycles idle keep-alive connections stay
            # open, and the worker waits for them at most gunicorn's short linger.
            for c in idle:
                c.close()
        code = srv.proc.wait(10)
        took = time.monotonic() - t0
        assert code == 0, f"cycle {cycle}: exit code {code}\n{srv.log()[-2000:]}"
        assert took < 10
        _, alive = psutil.wait_procs(procs, timeout=2)
        assert not alive, f"cycle {cycle}: left behind {alive}"
        for c in idle:
            c.close()
    assert "Traceback" not in srv.log()


def test_live_events_reach_streams_on_every_worker_and_resume(server_factory: Any) -> None:
    srv = server_factory(workers=2).start()
    h, tablet, students = _setup_tablet(srv)
    teacher = h.login()
    # Which worker accepts a connection is the kernel's choice: open streams until both
    # workers hold some, so that delivery has to cross processes.
    workers = srv.processes()[1:]
    streams: list[Any] = []
    serving: set[int] = set()
    while len(serving) < 2 and len(streams) < 60:
        streams += [_sse(srv, teacher) for _ in range(5)]
        serving = {w.pid for w in workers if any(c.status == psutil.CONN_ESTABLISHED and c.laddr.port == srv.port for c in w.net_connections("tcp"))}
    assert len(serving) == 2, f"{len(streams)} streams all landed on one worker ({serving}); cross-worker delivery untested"

    sid, pin = students[0]
    assert _sign_in(srv, tablet, sid, pin).status_code == 201
    results = [s.frames(1, timeout=5) for s in streams]
    for i, got in enumerate(results):
        assert got, f"stream {i} received nothing"
        assert got[0]["event"] == "student.signed_in"
        assert json.loads(got[0]["data"])["student_id"] == sid
    assert len({r[0]["id"] for r in results}) == 1
    first_id = int(results[0][0]["id"])
    for s in streams:
        s.close()

    # while nobody listens, two more students sign in; a reconnect with Last-Event-ID gets both
    for sid2, pin2 in students[1:3]:
        assert _sign_in(srv, tablet, sid2, pin2).status_code == 201
    resumed = _sse(srv, teacher, **{"Last-Event-ID": str(first_id)})
    missed = resumed.frames(2, timeout=5)
    resumed.close()
    assert [json.loads(e["data"])["student_id"] for e in missed] == [s[0] for s in students[1:3]]
    assert all(int(e["id"]) > first_id for e in missed)


def test_a_student_stream_carries_no_staff_events(server_factory: Any) -> None:
    srv = server_factory(workers=1).start()
    h, tablet, students = _setup_tablet(srv)
    sid, pin = students[0]
    token = _sign_in(srv, tablet, sid, pin).json()["token"]
    s = SSE(srv.port, {**bearer(token), **device(tablet), "Last-Event-ID": "0"})
    assert s.status == 200
    events = s.frames(50, timeout=1.5)
    s.close()
    assert events, "the class channel's events should replay from id 0"
    assert {e["event"] for e in events} <= {"student.signed_in", "device.enrolled"}
    # a student stream needs its tablet's token too
    s = SSE(srv.port, bearer(token))
    assert s.status == 401
    s.close()


def test_metrics_over_the_network_from_loopback(server_factory: Any) -> None:
    srv = server_factory(workers=2).start()
    body = requests.get(srv.url + "/metrics", timeout=5).text
    assert "hub_http_requests_total" in body and "hub_outbox_depth" in body
    # a hub secret is never printed in the server log
    conn = sqlite3.connect(srv.data_dir / "hub.sqlite3")
    secret = conn.execute("SELECT value FROM hub_meta WHERE key = 'hub_secret'").fetchone()[0]
    assert secret not in srv.log()


def test_port_is_released_after_shutdown(server_factory: Any) -> None:
    srv = server_factory(workers=1).start()
    port = srv.port
    assert srv.terminate() == 0
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_the_main_process_reports_ready_watchdog_and_stopping_to_systemd(server_factory: Any, tmp_path: Any) -> None:
    notify_path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(0.2)
        srv = server_factory(workers=2, env={"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "1000000"})
        srv.start()
        heard: list[tuple[float, str]] = []

        def listen(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    data, _ = notify.recvfrom(4096)
                except TimeoutError:
                    continue
                heard.extend((time.monotonic(), line) for line in data.decode().split("\n"))

        listen(3.0)
        lines = [line for _, line in heard]
        assert "READY=1" in lines, lines
        pings = [t for t, line in heard if line == "WATCHDOG=1"]
        assert len(pings) >= 3, lines  # every half of WATCHDOG_USEC
        # A worker that is gone stops the pings until the server has started it again.
        worker = srv.processes()[1]
        worker.kill()
        assert srv.proc is not None and srv.proc.poll() is None
        deadline = time.monotonic() + 15

        def workers() -> list[int]:
            return [p.pid for p in srv.processes()[1:] if p.pid != worker.pid and p.status() != psutil.STATUS_ZOMBIE]

        while len(workers()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(workers()) == 2, "the dead worker was not started again"
        assert requests.get(srv.url + "/healthz", timeout=5).status_code == 200
        heard.clear()
        srv.proc.send_signal(signal.SIGTERM)
        listen(2.0)
        assert "STOPPING=1" in [line for _, line in heard]
        assert srv.proc.wait(10) == 0
        assert "READY=1" not in [line for _, line in heard]  # ready once per start, not again


def test_sign_ins_leave_no_argon2_block_resident_in_the_worker(server_factory: Any) -> None:
    # Each sign-in's argon2 hash takes 19 MiB; with glibc's dynamic mmap threshold every worker
    # that handled a sign-in kept that block resident (edge/runtime/malloc.py).
    srv = server_factory(workers=1).start()
    worker = srv.processes()[1]
    assert requests.get(srv.url + "/readyz", timeout=5).status_code == 200
    before = worker.memory_full_info().uss
    h = HttpHub(srv)
    for _ in range(6):
        h.login()
    growth_mb = (worker.memory_full_info().uss - before) / 2**20
    assert growth_mb < 10, growth_mb
