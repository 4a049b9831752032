"""The hub's gunicorn worker (edge/server/worker.py) under a real gunicorn, over real sockets.

A thread that answered a kept-alive connection waits for that connection's next request
itself, but only while the worker has threads to spare; otherwise connections go back to
gthread's poller. Either way every connection is answered, and a stop is prompt.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.server.worker import RESERVE_THREADS
from tests.hub.support import free_port
from tests.proc import dies_with_parent

ROOT = Path(__file__).resolve().parents[2]


class Gunicorn:
    def __init__(self, threads: int, keepalive: int = 30, graceful: int = 5) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            dies_with_parent([sys.executable, "-m", "gunicorn", "-k", "edge.server.worker.LingeringThreadWorker", "--threads", str(threads),
                              "--workers", "1", "--keep-alive", str(keepalive), "--graceful-timeout", str(graceful),
                              "-b", f"127.0.0.1:{self.port}", "tests.server.thread_app:app"]),
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    if s.recv(100).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("gunicorn did not start")

    def connect(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        assert self.proc.stderr is not None
        self.proc.stderr.close()


@pytest.fixture
def gunicorn() -> Iterator[type[Gunicorn]]:
    started: list[Gunicorn] = []

    class Started(Gunicorn):
        def __init__(self, *args: int, **kwargs: int) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    yield Started
    for g in started:
        g.stop()


_leftover: dict[int, bytes] = {}  # bytes read past a response (pipelined ones), per socket


def _read_response(s: socket.socket) -> bytes:
    buf = _leftover.pop(s.fileno(), b"")
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed after {buf!r}")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += s.recv(4096)
    if len(body) > length:
        _leftover[s.fileno()] = body[length:]
    assert head.startswith(b"HTTP/1.1 200"), head
    return body[:length]


def ask(s: socket.socket, body: bytes = b"", path: str = "/") -> tuple[int, int, int]:
    """(pid, thread, body bytes the app read) of the thread that answered."""
    method = "POST" if body else "GET"
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    pid, thread, n = _read_response(s).split()
    return int(pid), int(thread), int(n)


def test_each_kept_alive_connection_keeps_the_thread_that_answered_it(gunicorn: type[Gunicorn]) -> None:
    g = gunicorn(threads=RESERVE_THREADS + 8)
    conns = [g.connect() for _ in range(3)]
    first = [ask(c)[1] for c in conns]
    assert len(set(first)) == 3
    for _ in range(20):  # interleaved: in gthread any idle pool thread would take the next request
        for c, thread in zip(conns, first):
            assert ask(c)[1] == thread
    # bodies read or left unread by the app do not confuse the next request on the connection
    assert ask(conns[0], b"x" * 5000) == (ask(conns[0])[0], first[0], 5000)
    assert ask(conns[1], b"y" * 300, path="/ignore-body")[1:] == (first[1], 0)
    assert ask(conns[1])[1] == first[1]
    for c in conns:
        c.close()


def test_pipelined_requests_are_all_answered(gunicorn: type[Gunicorn]) -> None:
    g = gunicorn(threads=RESERVE_THREADS + 8)
    with g.connect() as s:
        ask(s)
        s.sendall(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n" * 3)
        threads = {int(_read_response(s).split()[1]) for _ in range(3)}
        assert len(threads) == 1


def test_connections_beyond_the_spare_threads_are_still_answered_at_once(gunicorn: type[Gunicorn]) -> None:
    # 18 threads, 16 kept in reserve: at most 2 connections linger. 40 idle kept-alive
    # connections would hold every thread for the whole keep-alive if they all lingered.
    g = gunicorn(threads=RESERVE_THREADS + 2, keepalive=60)
    idle = [g.connect() for _ in range(40)]
    for c in idle:
        ask(c)
    t0 = time.monotonic()
    with g.connect() as s:
        for _ in range(5):
            ask(s)
    assert time.monotonic() - t0 < 2.0
    for c in idle:  # and the idle ones, back in the poller, are answered when they speak again
        ask(c)
        c.close()


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(gunicorn: type[Gunicorn]) -> None:
    g = gunicorn(threads=RESERVE_THREADS + 8, keepalive=1)
    with g.connect() as s:
        ask(s)
        t0 = time.monotonic()
        s.settimeout(5)
        assert s.recv(10) == b""  # closed by the server
        assert 0.8 < time.monotonic() - t0 < 3.0


def test_sigterm_with_lingering_connections_stops_well_inside_the_graceful_timeout(gunicorn: type[Gunicorn]) -> None:
    g = gunicorn(threads=RESERVE_THREADS + 8, keepalive=60, graceful=10)
    conns = [g.connect() for _ in range(5)]
    for c in conns:
        ask(c)
    t0 = time.monotonic()
    g.proc.send_signal(signal.SIGTERM)
    g.proc.wait(timeout=10)
    # a lingering thread looks up every LOOK_UP_S; gthread then keeps the connection ~2 s
    assert time.monotonic() - t0 < 5.0
    assert g.proc.returncode == 0
    for c in conns:
        c.close()
