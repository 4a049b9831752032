"""Serving lesson bytes: strong ETag, immutable, 304, HEAD, Range/206/416, media
types, sandboxed content; and under the real gunicorn server, ranges work and
bytes leave through sendfile(2) (zero-copy), checked with strace."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from edge.lessons.importer import import_package
from edge.lessons.serving import parse_range
from tests.hub.support import HubEnv, bearer, make_config


def _db(config: Any):  # type: ignore[no-untyped-def]
    from edge.storage.db import connect

    return connect(config.db_path)


@pytest.fixture
def served(lesson_hub: HubEnv, package: Callable[..., Path]) -> dict[str, Any]:
    video = os.urandom(1_000_000)
    pkg = package(lesson_id="served", files={"v.mp4": video, "a.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>", "i/index.html": b"<p>hi</p>",
                                              "i/app.js": b"document.body.dataset.ok = 1;"},
                  pages=[("video", "v.mp4"), ("pic", "a.svg"), ("interactive", "i/index.html")])
    lesson = import_package(lesson_hub.config, _db(lesson_hub.config), pkg).lesson
    tablet = lesson_hub.enrol()
    headers = {**bearer(lesson_hub.sign_in(tablet, "04")), "X-Device-Token": tablet.token}
    detail = lesson_hub.client().get(f"/api/v1/lessons/{lesson}", headers=headers).get_json()
    return {"video": video, "headers": headers, "detail": detail, "url": detail["pages"][0]["url"]}


def test_whole_file_has_strong_etag_immutable_and_type(lesson_hub: HubEnv, served: dict[str, Any]) -> None:
    r = lesson_hub.client().get(served["url"], headers=served["headers"])
    assert r.status_code == 200 and r.data == served["video"]
    sha = hashlib.sha256(served["video"]).hexdigest()
    assert r.headers["ETag"] == f'"{sha}"'
    assert "immutable" in r.headers["Cache-Control"] and "max-age=31536000" in r.headers["Cache-Control"]
    assert r.headers["Content-Type"] == "video/mp4" and r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Content-Security-Policy"].startswith("sandbox")
    svg = lesson_hub.client().get(served["detail"]["pages"][1]["url"], headers=served["headers"])
    assert svg.headers["Content-Type"].startswith("image/svg+xml")


def test_if_none_match_gives_304_and_head_gives_headers_only(lesson_hub: HubEnv, served: dict[str, Any]) -> None:
    etag = lesson_hub.client().head(served["url"], headers=served["headers"]).headers["ETag"]
    r = lesson_hub.client().get(served["url"], headers={**served["headers"], "If-None-Match": etag})
    assert r.status_code == 304 and r.data == b""
    head = lesson_hub.client().head(served["url"], headers=served["headers"])
    assert head.status_code == 200 and head.data == b"" and head.headers["Content-Length"] == str(len(served["video"]))


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-99", 0, 99), ("bytes=500000-", 500000, 999999), ("bytes=-100", 999900, 999999), ("bytes=999990-2000000", 999990, 999999)],
)
def test_range_gives_206_with_exact_bytes(lesson_hub: HubEnv, served: dict[str, Any], header: str, start: int, end: int) -> None:
    r = lesson_hub.client().get(served["url"], headers={**served["headers"], "Range": header})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes {start}-{end}/1000000"
    assert r.data == served["video"][start : end + 1]
    assert r.headers["Content-Length"] == str(end - start + 1)


@pytest.mark.parametrize("header", ["bytes=1000000-", "bytes=5-1", "bytes=-0", "bytes=abc", "items=0-1", "bytes=-", "bytes=" + "9" * 40 + "-"])
def test_bad_or_unsatisfiable_range_gives_416_never_5xx(lesson_hub: HubEnv, served: dict[str, Any], header: str) -> None:
    r = lesson_hub.client().get(served["url"], headers={**served["headers"], "Range": header})
    assert r.status_code == 416, r.status_code
    assert r.headers["Content-Range"] == "bytes */1000000"
    assert r.mimetype == "application/problem+json"


def test_multi_range_and_stale_if_range_get_the_whole_file(lesson_hub: HubEnv, served: dict[str, Any]) -> None:
    multi = lesson_hub.client().get(served["url"], headers={**served["headers"], "Range": "bytes=0-1,5-6"})
    assert multi.status_code == 200 and len(multi.data) == 1_000_000
    stale = lesson_hub.client().get(served["url"], headers={**served["headers"], "Range": "bytes=0-1", "If-Range": '"other"'})
    assert stale.status_code == 200


def test_content_needs_a_session_and_unknown_hashes_are_404(lesson_hub: HubEnv, served: dict[str, Any]) -> None:
    assert lesson_hub.client().get(served["url"]).status_code == 401
    assert lesson_hub.client().get("/api/v1/content/sha256/" + "a" * 64, headers=served["headers"]).status_code == 404
    assert lesson_hub.client().get("/api/v1/content/sha256/../../hub.sqlite3", headers=served["headers"]).status_code == 404


def test_interactive_html_is_served_sandboxed_under_a_token(lesson_hub: HubEnv, served: dict[str, Any]) -> None:
    frame_url = served["detail"]["pages"][2]["frame_url"]
    r = lesson_hub.client().get(frame_url)  # no cookies: the sandboxed frame has none
    assert r.status_code == 200 and r.data == b"<p>hi</p>"
    csp = r.headers["Content-Security-Policy"]
    assert csp.startswith("sandbox allow-scripts;") and "allow-same-origin" not in csp and "connect-src 'none'" in csp
    sibling = lesson_hub.client().get(frame_url.replace("index.html", "app.js"))
    assert sibling.status_code == 200 and sibling.headers["Content-Type"].startswith("text/javascript")
    token = frame_url.split("/")[2]
    lesson, expires, mac = token.split(".")
    forged = lesson_hub.client().get(f"/lesson-frame/{int(lesson) + 1}.{expires}.{mac}/i/index.html")
    assert forged.status_code == 403
    expired = lesson_hub.client().get(f"/lesson-frame/{lesson}.{int(time.time()) - 10}.{mac}/i/index.html")
    assert expired.status_code == 403
    assert lesson_hub.client().get(frame_url.replace("index.html", "nope.html")).status_code == 404


def test_parse_range_edges() -> None:
    assert parse_range("bytes=0-0", 1) == (0, 0)
    assert parse_range("bytes=-5", 3) == (0, 2)
    with pytest.raises(ValueError):
        parse_range("bytes=0-0", 0)


# -- the real server ---------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed (tests/run.sh installs it)")
def test_gunicorn_sends_whole_files_and_ranges_with_sendfile(server_factory, package: Callable[..., Path], district_keys: tuple[str, str]) -> None:  # type: ignore[no-untyped-def]
    big = os.urandom(8 * 1_048_576)
    srv = server_factory(workers=1, env={"HUB_DISTRICT_PUBLIC_KEY": district_keys[1], "HUB_STORAGE_DISK_RESERVE_MB": "1"})
    config = make_config(srv.data_dir, district={"public_key": district_keys[1]}, storage={"disk_reserve_mb": 1})
    lesson = import_package(config, _db(config), package(lesson_id="big", files={"big.mp4": big}, pages=[("v", "big.mp4")])).lesson
    srv.start()
    creds = srv.creds()
    token = requests.post(srv.url + "/api/v1/auth/login", json={"username": creds["teacher_username"], "password": creds["teacher_password"]},
                          timeout=10).json()["token"]
    url = srv.url + requests.get(srv.url + f"/api/v1/lessons/{lesson}", headers=bearer(token), timeout=10).json()["pages"][0]["url"]
    worker = max(srv.processes()[1:], key=lambda p: p.pid)
    trace = srv.data_dir.parent / "strace.txt"
    tracer = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=sendfile", "-o", str(trace), "-p", str(worker.pid)])
    try:
        time.sleep(1.0)  # attached to every thread
        whole = requests.get(url, headers=bearer(token), timeout=30)
        part = requests.get(url, headers={**bearer(token), "Range": "bytes=1000000-1999999"}, timeout=30)
        time.sleep(0.3)
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(10)
    assert whole.status_code == 200 and whole.content == big
    assert part.status_code == 206 and part.content == big[1_000_000:2_000_000]
    calls = re.findall(r"sendfile\(\d+, \d+, \[(\d+)\] => \[(\d+)\], \d+\) = (\d+)", trace.read_text())
    sent = sum(int(n) for _, _, n in calls)
    assert sent >= len(big) + 1_000_000, trace.read_text()[-2000:]
    assert any(int(start) == 1_000_000 for start, _, _ in calls), "the range was not sent with sendfile from its offset"
