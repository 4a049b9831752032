"""Import from a URL: resumable with Range after a dropped connection, retried
with backoff, hash-checked; a download that stays truncated installs nothing."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edge.lessons.download import DownloadError, download
from edge.lessons.importer import import_package
from tests.hub.support import HubEnv


class _Flaky:
    """Serves one file; the first ``drops`` GETs send half the body then close the connection."""

    def __init__(self, data: bytes, drops: int) -> None:
        self.data, self.drops = data, drops
        self.ranges: list[str | None] = []


@pytest.fixture
def flaky_server() -> Iterator[Callable[[bytes, int], tuple[str, _Flaky]]]:
    servers: list[ThreadingHTTPServer] = []

    def start(data: bytes, drops: int) -> tuple[str, _Flaky]:
        state = _Flaky(data, drops)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                state.ranges.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                body = state.data[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(state.data) - 1}/{len(state.data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if state.drops > 0:
                    state.drops -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(srv)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{srv.server_address[1]}/lesson.zip", state

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _db(h: HubEnv):  # type: ignore[no-untyped-def]
    from edge.storage.db import connect

    return connect(h.config.db_path)


def test_dropped_download_resumes_with_range_and_installs(lesson_hub: HubEnv, package: Callable[..., Path], flaky_server) -> None:  # type: ignore[no-untyped-def]
    data = package(lesson_id="over-the-wire").read_bytes()
    url, state = flaky_server(data, 2)
    path = download(lesson_hub.config, url, expected_sha256=hashlib.sha256(data).hexdigest(), retries=4, backoff_s=0.01)
    assert path.read_bytes() == data
    assert state.ranges[0] is None
    assert state.ranges[1] is not None and state.ranges[1].startswith("bytes=") and state.ranges[1] != "bytes=0-"
    assert len(state.ranges) == 3
    assert import_package(lesson_hub.config, _db(lesson_hub), path).lesson_id == "over-the-wire"


def test_download_that_stays_truncated_is_refused_and_resumed_next_time(lesson_hub: HubEnv, package: Callable[..., Path], flaky_server) -> None:  # type: ignore[no-untyped-def]
    data = package(lesson_id="never-whole").read_bytes()
    url, state = flaky_server(data, 100)
    with pytest.raises(DownloadError, match="truncated"):
        download(lesson_hub.config, url, retries=2, backoff_s=0.01)
    assert lesson_hub.sql("SELECT COUNT(*) FROM lessons WHERE lesson_id = 'never-whole'")[0][0] == 0
    # the next sync finishes the same partial file
    state.drops = 0
    path = download(lesson_hub.config, url, retries=0)
    assert path.read_bytes() == data and state.ranges[-1] is not None


def test_a_download_with_the_wrong_hash_is_refused(lesson_hub: HubEnv, package: Callable[..., Path], flaky_server) -> None:  # type: ignore[no-untyped-def]
    url, _ = flaky_server(package().read_bytes(), 0)
    with pytest.raises(DownloadError, match="does not match"):
        download(lesson_hub.config, url, expected_sha256="0" * 64, retries=0)
