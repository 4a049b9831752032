"""Find hubs on the classroom Wi-Fi by DNS-SD: browse, resolve, and follow re-announcements.

Two ways of asking, chosen for speed and correctness:

- One-shot lookups (:func:`resolve_hub`, :func:`browse_hubs`) send their questions from
  an ephemeral port (RFC 6762 §5.1). The hub answers those by unicast at once, without
  the one-second multicast rate limit (§14) that otherwise delays an answer the hub
  multicast a moment ago, e.g. to another tablet of the same cart.
- The long-running :class:`HubWatcher` listens on port 5353 so it hears re-announcements,
  and asks QM questions (answered by multicast). zeroconf's default first question is QU
  (answered by unicast to port 5353); when another responder shares that port - another
  app, or the hub itself in a one-machine demo - the kernel may hand the answer to the
  other socket, and the tablet waits a full query interval.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from zeroconf import (
    DNSQuestionType,
    IPVersion,
    ServiceBrowser,
    ServiceInfo,
    ServiceListener,
    Zeroconf,
)

from edge.discovery.records import SERVICE_TYPE, TxtError, parse_txt

log = logging.getLogger(__name__)

# How long one SRV/TXT/A lookup may take once a PTR was seen. The hub answers a browse
# with all of them as additionals, so this is only spent when a packet was lost.
RESOLVE_TIMEOUT_MS = 1500
# How often a one-shot lookup asks again while it runs (see _iter_hubs).
REQUERY_S = 1.0


class HubNotFound(LookupError):
    """No hub (or not the expected one) answered within the timeout."""


@dataclass(frozen=True, slots=True)
class HubEndpoint:
    """A resolved hub, as announced. ``addresses`` are IPv4 strings, best first."""

    id: str
    name: str
    school: str
    room: str
    host: str
    addresses: tuple[str, ...]
    port: int
    path: str = "/"
    api: int = 1
    seen_at: float = field(default_factory=time.time, compare=False)

    def base_url(self, address: str | None = None) -> str:
        """``http://<address>:<port>`` for one of the addresses (default: the first)."""
        address = address or self.addresses[0]
        return f"http://{address}:{self.port}"

    @property
    def api_path(self) -> str:
        """Where the versioned API lives, e.g. ``/api/v1``."""
        return f"/api/v{self.api}"


def endpoint_from_info(info: ServiceInfo) -> HubEndpoint | None:
    """Build an endpoint from a resolved ServiceInfo; None if it is not a hub we can use."""
    if not info.port or info.server is None:
        return None
    addresses = tuple(info.parsed_addresses(IPVersion.V4Only))
    if not addresses:
        return None
    try:
        txt = parse_txt(info.properties)
    except (TxtError, UnicodeDecodeError) as exc:
        log.info("ignoring service with unusable TXT", extra={"service": info.name, "error": str(exc)})
        return None
    return HubEndpoint(
        id=txt.id,
        name=info.get_name(),
        school=txt.school,
        room=txt.room,
        host=info.server,
        addresses=addresses,
        port=info.port,
        path=txt.path,
        api=txt.api,
    )


def open_zeroconf(interfaces: list[str] | None = None, *, one_shot: bool = False) -> Zeroconf:
    """A Zeroconf bound to ``interfaces`` (IPv4 addresses); None means every interface.

    ``one_shot`` asks from an ephemeral port (fast unicast answers) and cannot hear
    announcements; use it for a lookup, not for watching.
    """
    if interfaces:
        return Zeroconf(interfaces=list(interfaces), ip_version=IPVersion.V4Only, unicast=one_shot)
    return Zeroconf(ip_version=IPVersion.V4Only, unicast=one_shot)


@contextmanager
def _zeroconf(zc: Zeroconf | None, interfaces: list[str] | None) -> Iterator[Zeroconf]:
    if zc is not None:
        yield zc
        return
    own = open_zeroconf(interfaces, one_shot=True)
    try:
        yield own
    finally:
        own.close()


class _Names(ServiceListener):
    """Hands (event, instance name) pairs from the browser thread to a consumer thread."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, str]] = queue.Queue()

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.events.put(("seen", name))

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.events.put(("seen", name))

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.events.put(("gone", name))


def _question_type(zc: Zeroconf) -> DNSQuestionType | None:
    # From an ephemeral port every answer is unicast anyway; on port 5353 ask for
    # multicast answers (see the module docstring).
    return None if zc.unicast else DNSQuestionType.QM


def _resolve(zc: Zeroconf, name: str, timeout_ms: int = RESOLVE_TIMEOUT_MS) -> HubEndpoint | None:
    info = ServiceInfo(SERVICE_TYPE, name)
    # request() answers from the cache first: the hub sends SRV, TXT and A as
    # additionals of the PTR answer, so this normally costs no round trip.
    if not info.request(zc, timeout_ms, question_type=_question_type(zc)):
        return None
    return endpoint_from_info(info)


def _iter_hubs(zc: Zeroconf, deadline: float) -> Iterator[HubEndpoint]:
    listener = _Names()
    qtype = _question_type(zc)
    browser = ServiceBrowser(zc, SERVICE_TYPE, listener=listener, question_type=qtype)
    # A one-shot Zeroconf cannot hear announcements, and zeroconf spaces its first
    # questions 1 s then 4 s then 9 s apart: a hub that comes up just after a lookup
    # started (a cart powered on together with its hub) would be missed for seconds.
    # So while the lookup runs, ask again every REQUERY_S with a fresh browser.
    requery_at = time.monotonic() + REQUERY_S if zc.unicast else math.inf
    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                event, name = listener.events.get(timeout=max(0.0, min(left, requery_at - time.monotonic())))
            except queue.Empty:
                if time.monotonic() >= requery_at and deadline - time.monotonic() > 0:
                    browser.cancel()
                    browser = ServiceBrowser(zc, SERVICE_TYPE, listener=listener, question_type=qtype)
                    requery_at = time.monotonic() + REQUERY_S
                continue
            if event != "seen":
                continue
            endpoint = _resolve(zc, name, min(RESOLVE_TIMEOUT_MS, max(1, int(left * 1000))))
            if endpoint is not None:
                yield endpoint
    finally:
        browser.cancel()


def browse_hubs(timeout: float, *, interfaces: list[str] | None = None, zc: Zeroconf | None = None) -> list[HubEndpoint]:
    """Every hub that answered within ``timeout`` seconds, one entry per hub id, sorted by name.

    Uses ``zc`` when given (its cache may already know the hubs), otherwise a fresh
    one-shot Zeroconf whose empty cache guarantees answers are current.
    """
    found: dict[str, HubEndpoint] = {}
    with _zeroconf(zc, interfaces) as z:
        for endpoint in _iter_hubs(z, time.monotonic() + timeout):
            found[endpoint.id] = endpoint
    return sorted(found.values(), key=lambda e: e.name)


def resolve_hub(
    expected_id: str | None,
    timeout: float,
    *,
    interfaces: list[str] | None = None,
    zc: Zeroconf | None = None,
) -> HubEndpoint:
    """The hub with ``expected_id`` (or the first hub seen when None), as soon as it resolves.

    Raises :class:`HubNotFound` after ``timeout`` seconds. Without ``zc`` a fresh
    one-shot Zeroconf is used, so a stale cached address can never be returned: this is the call
    to make after a connection to a remembered address failed.
    """
    with _zeroconf(zc, interfaces) as z:
        for endpoint in _iter_hubs(z, time.monotonic() + timeout):
            if expected_id is None or endpoint.id == expected_id:
                return endpoint
    raise HubNotFound(f"hub {expected_id or '(any)'} not found within {timeout:.1f} s")


class HubWatcher:
    """Keeps browsing and holds the latest endpoint of every hub, following re-announcements.

    The hub re-announces with cache-flush records when its address changes; the browser
    reports that as an update and the endpoint is re-read from the cache. Because a
    flushed address stays in the cache for up to one more second (RFC 6762 §10.2), known
    hubs are also re-read every ``refresh_s``.
    """

    def __init__(
        self,
        *,
        interfaces: list[str] | None = None,
        zc: Zeroconf | None = None,
        on_change: Callable[[HubEndpoint], None] | None = None,
        refresh_s: float = 0.25,
    ) -> None:
        self._own = zc is None
        self.zc = zc or open_zeroconf(interfaces)
        self._on_change = on_change
        self._refresh_s = refresh_s
        self._cond = threading.Condition()
        self._by_name: dict[str, HubEndpoint] = {}
        self._stop = threading.Event()
        self._listener = _Names()
        self._browser = ServiceBrowser(self.zc, SERVICE_TYPE, listener=self._listener, question_type=DNSQuestionType.QM)
        self._thread = threading.Thread(target=self._run, name="hub-watcher", daemon=True)
        self._thread.start()

    def hubs(self) -> list[HubEndpoint]:
        """The hubs currently known, sorted by name."""
        with self._cond:
            return sorted(self._by_name.values(), key=lambda e: e.name)

    def wait_gone(self, name: str, timeout: float) -> bool:
        """Block until the instance ``name`` (full DNS name) is no longer known; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while name in self._by_name:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def wait_for(self, predicate: Callable[[HubEndpoint], bool], timeout: float) -> HubEndpoint | None:
        """Block until a known hub satisfies ``predicate``; None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for endpoint in self._by_name.values():
                    if predicate(endpoint):
                        return endpoint
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def close(self) -> None:
        """Stop browsing; closes the Zeroconf if this watcher opened it."""
        self._stop.set()
        self._listener.events.put(("stop", ""))
        self._thread.join(timeout=5)
        self._browser.cancel()
        if self._own:
            self.zc.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                event, name = self._listener.events.get(timeout=self._refresh_s)
            except queue.Empty:
                event, name = "tick", ""
            if self._stop.is_set():
                return
            if event == "gone":
                with self._cond:
                    self._by_name.pop(name, None)
                    self._cond.notify_all()
                log.info("hub gone", extra={"service": name})
                continue
            with self._cond:
                names = set(self._by_name)
            if name:
                names.add(name)
            for each in names:
                self._reload(each, fetch=each == name)

    def _reload(self, name: str, *, fetch: bool) -> None:
        info = ServiceInfo(SERVICE_TYPE, name)
        # Known hubs are re-read from the cache only: asking the network every
        # refresh_s would be a query storm with 50 tablets.
        ok = info.request(self.zc, RESOLVE_TIMEOUT_MS, question_type=DNSQuestionType.QM) if fetch else None
        if not fetch:
            info.load_from_cache(self.zc)
            ok = bool(info.addresses) and bool(info.port)
        endpoint = endpoint_from_info(info) if ok else None
        with self._cond:
            old = self._by_name.get(name)
            if endpoint is None:
                return
            if old is not None and (old.addresses, old.port, old.id, old.host) == (
                endpoint.addresses,
                endpoint.port,
                endpoint.id,
                endpoint.host,
            ):
                return
            self._by_name[name] = endpoint
            self._cond.notify_all()
        log.info("hub endpoint changed", extra={"hub": endpoint.id, "addresses": list(endpoint.addresses)})
        if self._on_change is not None:
            self._on_change(endpoint)
