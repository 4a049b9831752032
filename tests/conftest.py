"""Suite-wide: SIGTERM (a CI time-out, `kill`) ends a test run the way Ctrl-C does.

Without this pytest dies at once and the hubs, brokers, cart simulators and browsers
its fixtures started keep running; as a KeyboardInterrupt the fixtures' teardown
still stops them."""

from __future__ import annotations

import signal
from types import FrameType


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: object) -> None:
    signal.signal(signal.SIGTERM, _interrupt)
