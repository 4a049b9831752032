"""Downlink: district-publish signs and announces, the agent downloads (Range
resume), verifies signature and hash, and hands the file to the inbox."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time

import pytest

from edge import inbox
from edge.config import ConfigError, load_config
from edge.district_key import district_public_key
from edge.signing import generate_key
from edge.storage.db import connect
from sync.agent.download import Downloader
from sync.district.publish import sign_notice

from .fileserver import FileServer
from .support import BIN, DISTRICT, make_hub, wait_for


@pytest.fixture
def keys():
    return generate_key()  # (private, public), base64


@pytest.fixture
def payload():
    return os.urandom(3 * 1024 * 1024 + 17)


@pytest.fixture
def server(payload):
    s = FileServer({"/pkg/lesson.zip": payload})
    yield s
    s.stop()


def _downloader(hub, public_key):
    return Downloader(connect(hub.config.db_path), threading.RLock(), hub.config.hub.data_dir / "inbox", public_key, retries=3)


def test_a_published_file_reaches_the_inbox_verified(tmp_path, broker, pki, district, keys, payload, server):
    private, public = keys
    # The one district key, given as a file in [district]: the same setting lesson packages are verified with.
    key_path = tmp_path / "district-key.pub"
    key_path.write_text(public + "\n")
    hub = make_hub(tmp_path, broker, pki, register=district[1], district={"public_key_file": str(key_path)})
    assert district_public_key(hub.config) == public
    agent = hub.agent()
    agent.downloader.start()
    agent.uplink.start()
    wait_for(lambda: agent.uplink.connected, 10, "the agent to connect")
    time.sleep(0.5)  # its subscriptions are in place
    key_file = tmp_path / "district.key"
    key_file.write_text(private)
    key_file.chmod(0o600)
    cert, key = pki.issue("district-publish")
    src = tmp_path / "lesson.zip"
    src.write_bytes(payload)
    out = subprocess.run(
        [str(BIN / "district-publish"), "--broker", "127.0.0.1", "--port", str(broker.port), "--ca", str(pki.ca_file), "--cert", str(cert),
         "--key", str(key), "--district", DISTRICT, "--school", hub.school, "--hub", hub.hub_id, "--kind", "lesson_package",
         "--url", server.url("/pkg/lesson.zip"), "--signing-key-file", str(key_file), "--id", "pkg-1", str(src)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    try:
        wait_for(lambda: agent.downloader.outcomes, 30, "the download")
    finally:
        agent.uplink.stop()
        agent.downloader.stop()
    assert agent.downloader.outcomes[0].status == "installed", agent.downloader.outcomes
    (row,) = inbox.pending(hub.db, "lesson_package")
    assert row[2] == hashlib.sha256(payload).hexdigest()
    with open(row[1], "rb") as f:
        assert f.read() == payload


def test_a_download_cut_at_half_resumes_where_it_stopped(tmp_path, broker, pki, keys, payload):
    private, public = keys
    server = FileServer({"/f": payload}, cut_first_at=0.5)
    try:
        hub = make_hub(tmp_path, broker, pki)
        src = tmp_path / "model.onnx"
        src.write_bytes(payload)
        notice = sign_notice(src, "model", server.url("/f"), private, notice_id="m1")
        outcome = _downloader(hub, public).fetch(notice)
    finally:
        server.stop()
    assert outcome.status == "installed", outcome
    assert server.requests[0] == ("/f", None)
    resumed_at = int(server.requests[1][1].removeprefix("bytes=").rstrip("-"))
    # Asked only for the rest: from what it had written (whole chunks of the half it got).
    assert 0.4 * len(payload) < resumed_at <= len(payload) // 2
    assert len(server.requests) == 2
    (row,) = inbox.pending(hub.db, "model")
    with open(row[1], "rb") as f:
        assert f.read() == payload


def test_a_file_whose_hash_does_not_match_is_refused(tmp_path, broker, pki, keys, payload, server):
    private, public = keys
    hub = make_hub(tmp_path, broker, pki)
    src = tmp_path / "fw.bin"
    src.write_bytes(payload[:-1] + bytes([payload[-1] ^ 1]))  # the district signed other bytes than the mirror serves
    notice = sign_notice(src, "firmware", server.url("/pkg/lesson.zip"), private, notice_id="fw1")
    outcome = _downloader(hub, public).fetch(notice)
    assert outcome.status == "refused" and "sha256" in outcome.detail
    assert inbox.pending(hub.db, "firmware") == []
    assert not list((hub.config.hub.data_dir / "inbox").rglob("*fw1*"))


def test_a_notice_with_a_wrong_signature_is_refused_before_downloading(tmp_path, broker, pki, keys, payload, server):
    _, public = keys
    other_private, _ = generate_key()
    hub = make_hub(tmp_path, broker, pki)
    src = tmp_path / "roster.csv"
    src.write_bytes(payload)
    notice = sign_notice(src, "roster", server.url("/pkg/lesson.zip"), other_private, notice_id="r1")
    outcome = _downloader(hub, public).fetch(notice)
    assert outcome.status == "refused" and "signature" in outcome.detail
    assert server.requests == []
    tampered = sign_notice(src, "roster", server.url("/pkg/lesson.zip"), keys[0], notice_id="r2").model_copy(update={"size": 5})
    assert _downloader(hub, public).fetch(tampered).status == "refused"
    assert inbox.pending(hub.db, "roster") == []


def test_the_district_key_is_configured_once_under_district(tmp_path, broker, pki, keys):
    _, public = keys
    hub = make_hub(tmp_path, broker, pki, district={"public_key": public})
    agent = hub.agent()
    assert agent.downloader.public_key == public == district_public_key(hub.config)
    # The old second setting is refused with a pointer to the one that replaced it.
    old = tmp_path / "old.toml"
    old.write_text(f'[sync]\ndistrict_public_key = "{public}"\n')
    with pytest.raises(ConfigError, match="sync.district_public_key is now district.public_key"):
        load_config(old, environ={})
