"""Throw-away network namespaces joined by a veth pair, for address-change tests.

Only addresses inside namespaces we create are used, so no test packet can reach the
machine's real network.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip`` with arguments; raises CalledProcessError on failure when ``check``."""
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def netns_unavailable_reason() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"cht{uuid.uuid4().hex[:8]}"
    try:
        ip("netns", "add", probe)
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"`ip netns add` failed: {getattr(exc, 'stderr', exc)}"
    ip("netns", "del", probe, check=False)
    return None


@dataclass
class NetnsPair:
    """Two namespaces: ``hub`` (veth ``hub_if``) and ``tab`` (veth ``tab_if``) on one /24."""

    hub: str
    tab: str
    hub_if: str
    tab_if: str
    subnet: str  # e.g. "10.213.7"

    def addr(self, host: int) -> str:
        """An address in the pair's /24."""
        return f"{self.subnet}.{host}"

    def exec_argv(self, ns: str, *argv: str) -> list[str]:
        """argv that runs ``argv`` inside namespace ``ns``."""
        return ["ip", "netns", "exec", ns, *argv]

    def set_hub_address(self, old: str | None, new: str) -> None:
        """Replace the hub's address the way a DHCP renewal does: delete, then add."""
        if old:
            ip("-n", self.hub, "addr", "del", f"{old}/24", "dev", self.hub_if)
        ip("-n", self.hub, "addr", "add", f"{new}/24", "dev", self.hub_if)


@contextmanager
def netns_pair() -> Iterator[NetnsPair]:
    """Create the pair with unique names; always deleted on exit, even after a failure."""
    tag = uuid.uuid4().hex[:6]
    pair = NetnsPair(
        hub=f"chh{tag}",
        tab=f"cht{tag}",
        hub_if=f"vh{tag}",
        tab_if=f"vt{tag}",
        subnet=f"10.{200 + int(tag[:2], 16) % 50}.{int(tag[2:4], 16)}",
    )
    try:
        ip("netns", "add", pair.hub)
        ip("netns", "add", pair.tab)
        ip("link", "add", pair.hub_if, "netns", pair.hub, "type", "veth", "peer", "name", pair.tab_if, "netns", pair.tab)
        for ns, dev in ((pair.hub, pair.hub_if), (pair.tab, pair.tab_if)):
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "set", dev, "up", "multicast", "on")
        ip("-n", pair.tab, "addr", "add", f"{pair.addr(200)}/24", "dev", pair.tab_if)
        yield pair
    finally:
        # Deleting a namespace removes its end of the veth and with it the peer.
        ip("netns", "del", pair.hub, check=False)
        ip("netns", "del", pair.tab, check=False)


AGENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ns_agents.py")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(AGENTS)))


class Agent:
    """A ns_agents.py process; its JSON lines are collected by a reader thread."""

    def __init__(self, argv: list[str]) -> None:
        import json
        import queue
        import threading

        env = {**os.environ, "PYTHONPATH": REPO}
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[dict[str, object]] = queue.Queue()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                try:
                    self.lines.put(json.loads(line))
                except ValueError:
                    continue

        threading.Thread(target=read, daemon=True).start()

    def wait(self, predicate: object, timeout: float) -> dict[str, object]:
        """The first line satisfying ``predicate``; AssertionError with stderr on timeout."""
        import queue
        import time

        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if predicate(line):  # type: ignore[operator]
                return line
        raise AssertionError(f"no matching line within {timeout} s; stderr: {self.stderr_tail()}")

    def stderr_tail(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read()[-2000:]

    def stop(self) -> None:
        """Close stdin (the agents exit on EOF), then make sure the process is gone."""
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def agent_argv(pair: NetnsPair, ns: str, *args: str) -> list[str]:
    """argv running ns_agents.py with ``args`` inside namespace ``ns``."""
    import sys

    return pair.exec_argv(ns, sys.executable, AGENTS, *args)
