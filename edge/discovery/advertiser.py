"""Announce the hub by mDNS/DNS-SD and keep the announcement true while the hub runs.

Lifecycle: ``start()`` probes and registers both service types and returns once the
names are ours (the caller then reports READY to systemd); a watcher thread re-announces
within a second of an address change; ``stop()`` sends goodbyes so tablets drop the hub
at once instead of waiting out the TTLs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from zeroconf import (
    DNSQuestionType,
    IPVersion,
    NonUniqueNameException,
    ServiceBrowser,
    ServiceInfo,
    Zeroconf,
)

from edge.discovery.addresses import AddressWatcher, wanted_addresses
from edge.discovery.conflicts import ConflictListener
from edge.discovery.records import (
    HTTP_SERVICE_TYPE,
    SERVICE_TYPE,
    build_txt,
    host_label,
    instance_name,
)

log = logging.getLogger(__name__)

# RFC 6762 §10 recommends 120 s for records naming a host (A, SRV) and 75 min for the
# rest. We keep those rather than shortening them: freshness after an address change
# comes from re-announcing with the cache-flush bit (clients replace the old A record
# within 1 s, §10.2) and goodbyes on shutdown, not from short TTLs that would make 50
# tablets re-query all day on a shared classroom Wi-Fi.
HOST_TTL_S = 120
OTHER_TTL_S = 4500

# Give up renaming after this many " (N)" suffixes: something is wrong on the LAN (a
# responder answering every name) and failing loudly beats probing forever.
MAX_NAME_ATTEMPTS = 20


class HubAdvertiser:
    """Advertises one hub as ``_classroom-hub._tcp`` and ``_http._tcp`` with a stable host name."""

    def __init__(
        self,
        *,
        hub_id: str,
        school: str,
        room: str,
        port: int,
        hostname: str = "",
        interfaces: list[str] | None = None,
        api_major: int = 1,
        address_poll_s: float = 2.0,
    ) -> None:
        self.hub_id = hub_id
        self.school = school
        self.room = room
        self.port = port
        # An empty list from config means "all interfaces", like None.
        self.interfaces = interfaces or None
        self.server = f"{host_label(hub_id, hostname)}.local."
        self.txt = build_txt(hub_id=hub_id, school=school, room=room, api_major=api_major)
        self.address_poll_s = address_poll_s
        self._lock = threading.RLock()
        self._zc: Zeroconf | None = None
        self._infos: list[ServiceInfo] = []
        self._addresses: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher: AddressWatcher | None = None
        self._last_tick = 0.0
        self._conflicts: set[str] = set()

    # -- public API ---------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """The registered service instance names (full DNS names), after any renaming."""
        with self._lock:
            return [info.name for info in self._infos]

    @property
    def instance_name(self) -> str:
        """The ``_classroom-hub._tcp`` instance label actually in use, e.g. "示范学校 101 (2)"."""
        with self._lock:
            if not self._infos:
                return instance_name(self.school, self.room)
            return self._infos[0].get_name()

    def start(self) -> None:
        """Probe, register both services and start watching addresses.

        Blocks until probing is done and the first announcements were sent, so the caller
        may report READY afterwards. Raises ``RuntimeError`` when no address is available
        or no unique name could be found.
        """
        with self._lock:
            if self._zc is not None:
                raise RuntimeError("HubAdvertiser already started")
            addresses = wanted_addresses(self.interfaces)
            if not addresses:
                raise RuntimeError(f"no IPv4 address on interfaces {self.interfaces or 'any'}")
            zc = self._open(addresses)
            try:
                infos = self._register_all(zc, addresses)
            except BaseException:
                zc.close()
                raise
            self._zc, self._infos, self._addresses = zc, infos, addresses
            self._watcher = AddressWatcher(self.address_poll_s)
            self._stop.clear()
            self._last_tick = time.monotonic()
            self._thread = threading.Thread(target=self._watch, name="mdns-address-watch", daemon=True)
            self._thread.start()
        log.info(
            "mdns advertised",
            extra={
                "names": [i.name for i in self._infos],
                "server": self.server,
                "addresses": addresses,
                "port": self.port,
                "netlink": self._watcher.uses_netlink,
            },
        )

    def stop(self) -> None:
        """Send goodbyes for every service, then close the sockets. Safe to call twice."""
        self._close(goodbyes=True)

    def discard(self) -> None:
        """Close without goodbyes, for an instance replaced by another announcing the same names."""
        self._close(goodbyes=False)

    def _close(self, goodbyes: bool) -> None:
        self._stop_watching()
        with self._lock:
            zc, self._zc = self._zc, None
            if zc is None:
                return
            try:
                if goodbyes:
                    zc.unregister_all_services()
                else:
                    self._forget_without_goodbye(zc)
            except Exception as exc:
                log.warning("mdns goodbyes failed" if goodbyes else "mdns discard: registry not cleared", extra={"error": str(exc)})
            zc.close()
        log.info("mdns stopped" if goodbyes else "mdns discarded without goodbyes", extra={"names": self.names})

    def _stop_watching(self) -> None:
        self._stop.set()
        watcher = self._watcher
        if watcher is not None:
            watcher.wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if watcher is not None:
            watcher.close()
            self._watcher = None

    def is_alive(self) -> bool:
        """True while announcing and the address watcher is not stuck (for a systemd watchdog)."""
        with self._lock:
            zc = self._zc
            if zc is None or zc.done or not zc.started:
                return False
        thread = self._thread
        if thread is None or not thread.is_alive():
            return False
        # The watcher loop ticks at least every address_poll_s; three missed ticks
        # (plus slack for a slow re-registration) means it is wedged.
        return time.monotonic() - self._last_tick < 3 * self.address_poll_s + 10

    def current_addresses(self) -> list[str]:
        """The IPv4 addresses currently announced."""
        with self._lock:
            return list(self._addresses)

    def refresh(self) -> bool:
        """Re-read the addresses now and re-announce if they changed; True if they did.

        The watcher thread calls this; it is public so a caller that knows the network
        changed (e.g. after reconfiguring Wi-Fi) need not wait.
        """
        with self._lock:
            if self._zc is None:
                return False
            addresses = wanted_addresses(self.interfaces)
            if addresses == self._addresses:
                return False
            if not addresses:
                # Between "address deleted" and "new address added": keep the old
                # announcement; nothing better can be said until an address appears.
                log.info("mdns no address yet", extra={"old": self._addresses})
                return False
            self._reannounce(addresses)
            return True

    # -- internals ----------------------------------------------------------------

    def _open(self, addresses: list[str]) -> Zeroconf:
        # Sockets are bound to exactly the announced addresses: binding to every
        # interface (InterfaceChoice.All) would also join loopback and announce LAN
        # addresses there, and it cannot follow an address that changes later.
        zc = Zeroconf(interfaces=list(addresses), ip_version=IPVersion.V4Only)
        zc.add_listener(ConflictListener(self.server, self._names_unlocked, self._conflict_seen), None)
        return zc

    def _names_unlocked(self) -> list[str]:
        # Called on the zeroconf loop: reading the list reference needs no lock, and
        # taking it could deadlock against a thread waiting on that loop.
        return [info.name for info in self._infos]

    def _conflict_seen(self, name: str) -> None:
        self._conflicts.add(name.lower())
        if self._watcher is not None:
            self._watcher.wake()

    def _resolve_conflicts(self) -> None:
        with self._lock:
            zc = self._zc
            if zc is None or not self._conflicts:
                return
            conflicted, self._conflicts = self._conflicts, set()
            assert zc.loop is not None
            for i, info in enumerate(self._infos):
                if info.key not in conflicted:
                    continue
                log.warning("mdns name taken by another host, renaming", extra={"instance": info.get_name()})

                async def rename(old: ServiceInfo = info) -> ServiceInfo:
                    # No goodbye for the old name: the PTR is shared with the other
                    # hub, and a goodbye would make tablets drop it too.
                    zc.registry.async_remove(old)
                    first = _attempt_of(old.get_name(), self.school, self.room) + 1
                    return await self._register_unique(zc, old.type, self._addresses, first_attempt=first)

                self._infos[i] = asyncio.run_coroutine_threadsafe(rename(), zc.loop).result(timeout=60)
                log.info("mdns renamed", extra={"names": self._names_unlocked()})

    def _info(self, type_: str, label: str, addresses: list[str]) -> ServiceInfo:
        return ServiceInfo(
            type_,
            f"{label}.{type_}",
            port=self.port,
            properties=self.txt,
            server=self.server,
            host_ttl=HOST_TTL_S,
            other_ttl=OTHER_TTL_S,
            parsed_addresses=addresses,
        )

    def _register_all(self, zc: Zeroconf, addresses: list[str]) -> list[ServiceInfo]:
        # Browsing our own types while probing fills the cache with hubs already using
        # our name. zeroconf's probe only looks at the cache, and the defender answers a
        # probe by unicast to port 5353 - which, when several responders share a host
        # (SO_REUSEPORT: two hubs on a dev laptop, or our tests), the kernel may hand to
        # the wrong socket. QM questions are answered by multicast, which every
        # socket receives.
        browser = ServiceBrowser(
            zc,
            [SERVICE_TYPE, HTTP_SERVICE_TYPE],
            handlers=[_ignore],
            question_type=DNSQuestionType.QM,
        )
        try:
            assert zc.loop is not None

            async def both() -> list[ServiceInfo]:
                # Concurrently: each probe takes ~1.7 s and they are independent names.
                return list(
                    await asyncio.gather(
                        self._register_unique(zc, SERVICE_TYPE, addresses),
                        self._register_unique(zc, HTTP_SERVICE_TYPE, addresses),
                    )
                )

            return asyncio.run_coroutine_threadsafe(both(), zc.loop).result(timeout=60)
        finally:
            browser.cancel()

    async def _register_unique(
        self, zc: Zeroconf, type_: str, addresses: list[str], first_attempt: int = 1
    ) -> ServiceInfo:
        # Our own renaming rather than zeroconf's allow_name_change: it gives the
        # "Name (2)" form users know from printers and Macs, and each attempt is logged.
        for attempt in range(first_attempt, first_attempt + MAX_NAME_ATTEMPTS):
            label = instance_name(self.school, self.room, attempt)
            info = self._info(type_, label, addresses)
            try:
                announced = await zc.async_register_service(info, allow_name_change=False)
                await announced
                return info
            except NonUniqueNameException:
                log.warning(
                    "mdns name in use, renaming",
                    extra={"type": type_, "instance": label, "attempt": attempt},
                )
        raise RuntimeError(f"no free {type_} instance name after {MAX_NAME_ATTEMPTS} attempts")

    def _reannounce(self, addresses: list[str]) -> None:
        old_zc, old_infos = self._zc, self._infos
        assert old_zc is not None
        # The instance is re-created rather than patched with update_interfaces: when an
        # interface's address is replaced, the kernel keeps the old multicast membership
        # on that interface, so joining with the new address fails (EADDRINUSE) and
        # zeroconf silently gets no responder socket for it.
        self._forget_without_goodbye(old_zc)
        old_zc.close()
        new_infos = [self._info(info.type, info.get_name(), addresses) for info in old_infos]
        zc = self._open(addresses)
        for info in new_infos:
            # cooperating_responders skips probing: the names are already ours, and
            # probing again would delay the announcement by ~2 s. The three announcements
            # carry cache-flush A/SRV/TXT records, so tablets drop the old address.
            zc.register_service(info, cooperating_responders=True)
        self._zc, self._infos, old_addresses, self._addresses = (
            zc,
            new_infos,
            self._addresses,
            addresses,
        )
        log.info("mdns re-announced", extra={"old": old_addresses, "new": addresses})

    @staticmethod
    def _forget_without_goodbye(zc: Zeroconf) -> None:
        # close() would send goodbyes; during an address change that would make every
        # tablet drop the hub and rediscover it, so the registry is emptied first.
        async def clear() -> None:
            zc.registry.async_remove(zc.registry.async_get_service_infos())

        if zc.loop is not None and zc.loop.is_running():
            asyncio.run_coroutine_threadsafe(clear(), zc.loop).result(timeout=5)

    def _watch(self) -> None:
        watcher = self._watcher
        assert watcher is not None
        while not self._stop.is_set():
            self._last_tick = time.monotonic()
            woke = watcher.wait()
            if self._stop.is_set():
                return
            try:
                self._resolve_conflicts()
                changed = self.refresh()
            except Exception:
                log.exception("mdns re-announce failed")
                continue
            if changed:
                log.debug("mdns address change handled", extra={"netlink": woke})


def _ignore(**_: object) -> None:
    """Browse handler for the pre-probe browse: only the cache it fills matters."""


def _attempt_of(label: str, school: str, room: str) -> int:
    """Which rename attempt produced ``label`` (1 for the plain name)."""
    for attempt in range(1, 1000):
        if instance_name(school, room, attempt) == label:
            return attempt
    return 1
