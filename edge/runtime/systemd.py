"""The service manager's notification protocol (``sd_notify``), stdlib only.

Every appliance unit is ``Type=notify``: systemd waits for ``READY=1`` before it
starts what is ordered after the unit, restarts the process when ``WATCHDOG=1``
stops arriving, and shows ``STATUS=`` text in ``systemctl status``.

What a caller may rely on:

- Outside systemd (no ``$NOTIFY_SOCKET``) every function is a no-op returning False,
  so development servers and tests need no special casing.
- No function raises because of the socket: failures are logged and reported as
  False. A notification is advisory; it must never take the hub down.
- The units use ``NotifyAccess=main``: only the main process (the gunicorn arbiter,
  or a worker's single main process) is heard. Forked children inherit
  ``$NOTIFY_SOCKET`` but must not call these functions; systemd drops their messages.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

# A wedged service manager must not stall the caller's main loop for long.
_SEND_TIMEOUT_S = 2.0

# Only repeat a failure at WARNING when it changes; the watchdog pings every few seconds.
_last_error: str | None = None


def _address(raw: str) -> str | bytes | None:
    """Turn ``$NOTIFY_SOCKET`` into a ``sendto`` address, or None if unsupported."""
    if raw.startswith("@"):
        # Abstract namespace: the leading '@' stands for a NUL byte.
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    return None


def _report(error: str) -> None:
    global _last_error
    level = logging.DEBUG if error == _last_error else logging.WARNING
    _last_error = error
    log.log(level, "sd_notify failed: %s", error)


def notify(message: str) -> bool:
    """Send one notification datagram (e.g. ``"READY=1\\nSTATUS=serving"``).

    Returns True when the datagram was handed to the service manager's socket,
    False when not running under systemd or when sending failed (logged).
    """
    raw = os.environ.get("NOTIFY_SOCKET", "")
    if not raw:
        return False
    address = _address(raw)
    if address is None:
        _report(f"unsupported NOTIFY_SOCKET address {raw!r}")
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(_SEND_TIMEOUT_S)
            sock.sendto(message.encode("utf-8"), address)
    except OSError as exc:
        _report(f"{raw}: {exc}")
        return False
    return True


def _one_line(text: str) -> str:
    # The protocol is newline-separated assignments; a newline in free text would
    # start a bogus assignment.
    return " ".join(text.splitlines())


def ready(status: str = "") -> bool:
    """Tell systemd start-up is complete (``READY=1``), optionally with a status line."""
    return notify("READY=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))


def stopping(status: str = "") -> bool:
    """Tell systemd the process is shutting down on purpose (``STOPPING=1``)."""
    return notify("STOPPING=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))


def status(text: str) -> bool:
    """Set the one-line status shown by ``systemctl status``."""
    return notify(f"STATUS={_one_line(text)}")


def watchdog() -> bool:
    """Keep-alive ping (``WATCHDOG=1``); send it every :func:`watchdog_interval_s` seconds."""
    return notify("WATCHDOG=1")


def extend_timeout(seconds: float) -> bool:
    """Ask for more start/stop time (``EXTEND_TIMEOUT_USEC``), e.g. during a long migration.

    Each call grants ``seconds`` from now; repeat it before that runs out.
    """
    return notify(f"EXTEND_TIMEOUT_USEC={max(0, int(seconds * 1_000_000))}")


def watchdog_interval_s() -> float | None:
    """Seconds between :func:`watchdog` pings this process should use, or None.

    That is half of the unit's ``WatchdogSec=`` (from ``$WATCHDOG_USEC``), so one
    late ping is not yet fatal. None when the watchdog is off, the variable is
    malformed, or ``$WATCHDOG_PID`` names another process (the variables were
    inherited by a child that is not the one being watched).
    """
    raw_usec = os.environ.get("WATCHDOG_USEC", "")
    raw_pid = os.environ.get("WATCHDOG_PID", "")
    try:
        usec = int(raw_usec)
        if raw_pid and int(raw_pid) != os.getpid():
            return None
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000
