"""Fixtures for discovery tests: loopback multicast, unique hub identities, stub HTTP hubs.

Network rule: these tests use only 127.0.0.1 and namespaces they create.
"""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from edge.discovery import HubAdvertiser

LOOPBACK = ["127.0.0.1"]


@pytest.fixture(scope="session", autouse=True)
def loopback_multicast() -> None:
    """mDNS on 127.0.0.1 needs the loopback interface to accept multicast."""
    result = subprocess.run(["ip", "link", "set", "lo", "multicast", "on"], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot enable multicast on lo: {result.stderr.strip()}")


@pytest.fixture
def school() -> str:
    # A unique school per test: other hubs (other tests, other engineers' demos) may be
    # advertising on this machine's loopback at the same time.
    return f"测试学校{uuid.uuid4().hex[:6]}"


@pytest.fixture
def start_hub(school: str) -> Iterator[Callable[..., HubAdvertiser]]:
    """Start advertisers on loopback; all are stopped at teardown."""
    started: list[HubAdvertiser] = []

    def start(room: str = "101", port: int = 8080, hub_id: str | None = None, **kw: Any) -> HubAdvertiser:
        adv = HubAdvertiser(hub_id=hub_id or str(uuid.uuid4()), school=school, room=room, port=port, interfaces=["lo"], **kw)
        adv.start()
        started.append(adv)
        return adv

    yield start
    for adv in started:
        adv.stop()


@dataclass
class StubHub:
    """A tiny HTTP hub on 127.0.0.1 whose answers a test scripts in advance."""

    hub_id: str
    # Each entry: (status, headers, body) returned once for the matching path, in order;
    # when a path's script is used up the default for that path is returned.
    script: dict[str, list[tuple[int, dict[str, str], Any]]] = field(default_factory=dict)
    hits: list[tuple[float, str, str, dict[str, str]]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hits_for(self, path: str) -> list[tuple[float, str, str, dict[str, str]]]:
        return [h for h in self.hits if h[2] == path]


@pytest.fixture
def stub_hub() -> Iterator[StubHub]:
    import time

    stub = StubHub(hub_id=str(uuid.uuid4()))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            with lock:
                stub.hits.append((time.monotonic(), self.command, self.path, dict(self.headers)))
                queue = stub.script.get(self.path) or []
                scripted = queue.pop(0) if queue else None
            if scripted is None:
                if self.path == "/api/v1/hub":
                    scripted = (200, {}, {"id": stub.hub_id, "school": "s", "room": "r", "name": "s r", "api": 1})
                else:
                    scripted = (200, {}, {"ok": True})
            status, headers, body = scripted
            data = json.dumps(body).encode()
            self.send_response(status)
            ctype = "application/problem+json" if status >= 400 else "application/json"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        do_GET = _answer
        do_POST = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield stub
    server.shutdown()
    server.server_close()
