"""Which addresses the hub announces, and a wake-up when they change.

Address changes matter because a DHCP renewal, a Wi-Fi roam or an operator re-plugging
the server moves the hub; tablets must learn the new address within seconds. The kernel
tells us at once through rtnetlink; a slow periodic poll via ``ifaddr`` is the fallback
where netlink is not available (non-Linux, seccomp-restricted sandboxes).
"""

from __future__ import annotations

import ipaddress
import logging
import select
import socket
import time

import ifaddr

log = logging.getLogger(__name__)

# From <linux/rtnetlink.h>. Link events are included because an interface going down
# removes its addresses without always sending RTM_DELADDR first on every driver.
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100

# A DHCP change arrives as "delete old, add new" a few ms apart; waiting this long after
# the first event lets us announce the final state once instead of flapping.
DEBOUNCE_S = 0.15


def wanted_addresses(interfaces: list[str] | None) -> list[str]:
    """IPv4 addresses to announce, sorted.

    ``interfaces`` holds interface names (``wlan0``) or literal addresses; ``None`` means
    every interface except loopback. Loopback is announced only when asked for by name or
    when it is all there is, so a LAN tablet is never told to connect to 127.0.0.1 while
    a single-machine test or demo still works.
    """
    adapters = ifaddr.get_adapters()
    found: set[str] = set()
    loopback: set[str] = set()
    wanted = set(interfaces or [])
    for adapter in adapters:
        for ip in adapter.ips:
            if not ip.is_IPv4:
                continue
            addr = str(ip.ip)
            is_loopback = ipaddress.ip_address(addr).is_loopback
            if interfaces is None:
                (loopback if is_loopback else found).add(addr)
            elif adapter.nice_name in wanted or adapter.name in wanted or addr in wanted:
                found.add(addr)
    if interfaces is None and not found:
        found = loopback
    return sorted(found, key=lambda a: ipaddress.ip_address(a))


def _readable(socks: list[socket.socket], timeout: float) -> list[socket.socket]:
    """The sockets of ``socks`` readable within ``timeout`` s: poll(), which (unlike
    select()) also watches descriptors numbered 1024 and above."""
    poller = select.poll()
    for sock in socks:
        poller.register(sock, select.POLLIN)
    ready = {fd for fd, _ in poller.poll(max(0.0, timeout) * 1000)}
    return [sock for sock in socks if sock.fileno() in ready]


class AddressWatcher:
    """Blocks until the host's addresses may have changed, or a poll interval passes.

    Not thread-safe: one thread owns it. ``close()`` may be called from another thread
    to release the netlink socket.
    """

    def __init__(self, poll_s: float) -> None:
        self.poll_s = poll_s
        self._sock: socket.socket | None = None
        # A self-pipe so stop() does not wait for the poll interval to run out.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
            sock.setblocking(False)
            self._sock = sock
        except (AttributeError, OSError) as exc:
            log.warning(
                "netlink unavailable, polling addresses",
                extra={"error": str(exc), "poll_s": poll_s},
            )

    @property
    def uses_netlink(self) -> bool:
        """True when the kernel wakes us; False when we only poll."""
        return self._sock is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` (default: the poll interval); True if netlink reported a change."""
        timeout = self.poll_s if timeout is None else timeout
        sock = self._sock
        watched = [self._wake_r] if sock is None else [self._wake_r, sock]
        try:
            ready = _readable(watched, timeout)
        except (OSError, ValueError):
            return False  # closed under us by close()
        if self._wake_r in ready:
            self._drain(self._wake_r)
            return False
        if sock is None or not ready:
            return False
        deadline = time.monotonic() + DEBOUNCE_S
        while True:
            self._drain(sock)
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            try:
                _readable([sock], left)
            except (OSError, ValueError):
                return True

    @staticmethod
    def _drain(sock: socket.socket) -> None:
        # The message content is not parsed: any address/link event means "re-read the
        # addresses", which is cheaper to get right than decoding rtnetlink attributes.
        while True:
            try:
                sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return

    def wake(self) -> None:
        """Make a pending or the next ``wait()`` return now; safe from any thread."""
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def close(self) -> None:
        """Release the sockets; call after the owning thread stopped waiting."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._wake_r.close()
        self._wake_w.close()
