"""sd_notify against a real Unix datagram socket standing in for systemd."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.runtime import systemd


def _receive_all(sock: socket.socket) -> list[bytes]:
    """Every datagram queued on ``sock`` right now, in order."""
    sock.setblocking(False)
    out = []
    while True:
        try:
            out.append(sock.recv(4096))
        except BlockingIOError:
            return out


@pytest.fixture(params=["path", "abstract"])
def manager(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A bound datagram socket and $NOTIFY_SOCKET naming it, as systemd sets it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        path = tmp_path / "notify"
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    else:
        name = f"classroom-hub-test/{uuid.uuid4()}"
        sock.bind(b"\0" + name.encode())
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    with sock:
        yield sock


def test_each_helper_sends_its_exact_datagram(manager: socket.socket) -> None:
    assert systemd.ready()
    assert systemd.ready("migrations done, advertising 101")
    assert systemd.status("serving 3 tablets")
    assert systemd.watchdog()
    assert systemd.extend_timeout(90)
    assert systemd.stopping()
    assert systemd.stopping("draining")
    assert systemd.notify("RELOADING=1")
    assert _receive_all(manager) == [
        b"READY=1",
        b"READY=1\nSTATUS=migrations done, advertising 101",
        b"STATUS=serving 3 tablets",
        b"WATCHDOG=1",
        b"EXTEND_TIMEOUT_USEC=90000000",
        b"STOPPING=1",
        b"STOPPING=1\nSTATUS=draining",
        b"RELOADING=1",
    ]


def test_status_text_cannot_inject_a_second_assignment(manager: socket.socket) -> None:
    assert systemd.status("line one\nREADY=1")
    assert systemd.status("教室 101 就绪")
    assert _receive_all(manager) == [
        b"STATUS=line one READY=1",
        "STATUS=教室 101 就绪".encode(),
    ]


def test_outside_systemd_every_helper_is_a_quiet_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    assert systemd.ready("x") is False
    assert systemd.stopping() is False
    assert systemd.status("x") is False
    assert systemd.watchdog() is False
    assert systemd.extend_timeout(1) is False


def test_unreachable_socket_is_logged_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens-here"))
    with caplog.at_level(logging.DEBUG, logger="edge.runtime.systemd"):
        assert systemd.watchdog() is False
        assert systemd.watchdog() is False
    failures = [r for r in caplog.records if "sd_notify failed" in r.getMessage()]
    assert len(failures) == 2
    # The same failure is not repeated at WARNING on every watchdog tick.
    assert [r.levelno for r in failures].count(logging.WARNING) <= 1


def test_unsupported_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/notify")
    assert systemd.notify("READY=1") is False


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 15.0),  # WatchdogSec=30s: ping every 15 s
        ("30000000", "self", 15.0),
        ("30000000", "other", None),  # inherited by a child that is not watched
        ("1000", None, 0.0005),
        (None, None, None),  # watchdog off
        ("0", None, None),
        ("not-a-number", None, None),
        ("30000000", "not-a-pid", None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec_for_the_watched_pid(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    if usec is None:
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    else:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is None:
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
    else:
        value = {"self": str(os.getpid()), "other": str(os.getpid() + 1)}.get(pid, pid)
        monkeypatch.setenv("WATCHDOG_PID", value)
    assert systemd.watchdog_interval_s() == expected
