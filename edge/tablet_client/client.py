"""HTTP client of a tablet: find and verify the hub, enrol, sign a student in, call the API.

Failure policy, so fifty tablets do not hammer a hub that is restarting:
- connection errors, 502/503/504 and 429 are retried with exponential backoff and jitter;
  ``Retry-After`` is honoured when the hub sends it;
- any other 4xx is the caller's mistake or a refusal and is never retried;
- after a connection failure the hub is looked up again by its id, because a DHCP
  renewal may have moved it;
- the hub's identity (``GET /api/v1/hub``) must match the id it advertised or the one
  remembered; a different hub on that address is refused.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from edge.tablet_client.discover import HubEndpoint, HubNotFound, resolve_hub
from edge.tablet_client.state import TabletState, load_state, save_state

log = logging.getLogger(__name__)

API = "/api/v1"
RETRY_STATUSES = frozenset({502, 503, 504})


class HubError(RuntimeError):
    """The hub answered with an error (a problem+json document when it could)."""

    def __init__(self, status: int, title: str, detail: str = "", type_: str = "about:blank") -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_

    @classmethod
    def from_response(cls, resp: requests.Response) -> HubError:
        """Read RFC 9457 fields when present, else fall back to the status line."""
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        return cls(
            resp.status_code,
            str(body.get("title") or resp.reason or "error"),
            str(body.get("detail") or ""),
            str(body.get("type") or "about:blank"),
        )


class HubUnreachable(RuntimeError):
    """No hub could be reached (after retries and re-discovery)."""


class HubIdentityMismatch(RuntimeError):
    """The server at the hub's address is not the hub we expected (wrong or spoofed)."""

    def __init__(self, url: str, expected: str, actual: str) -> None:
        super().__init__(
            f"refusing {url}: it says it is hub {actual!r} but hub {expected!r} was expected "
            "(another hub took this address, or something is impersonating the hub)"
        )
        self.url = url
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff for transient failures: attempt n waits in [d/2, d], d = min(cap, base * 2**n)."""

    attempts: int = 6
    base_s: float = 0.25
    cap_s: float = 8.0
    # A Retry-After longer than this is not waited out inside one call: the caller (or
    # the user) should decide, e.g. a sign-in lockout of several minutes.
    max_retry_after_s: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based); "equal jitter"."""
        d = min(self.cap_s, self.base_s * (2**attempt))
        # Jitter spreads out the tablets of a whole cart that failed at the same moment.
        return d / 2 + random.uniform(0, d / 2)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse a Retry-After header (delta-seconds or HTTP-date); None if absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class TabletClient:
    """One tablet's session with its hub. Not thread-safe: one per (simulated) tablet."""

    def __init__(
        self,
        *,
        state_path: Path | None = None,
        expected_hub_id: str | None = None,
        interfaces: list[str] | None = None,
        discovery_timeout: float = 5.0,
        request_timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        base_url: str | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.state_path = state_path
        self.state: TabletState = load_state(state_path)
        self.expected_hub_id = expected_hub_id or self.state.hub_id
        self.interfaces = interfaces
        self.discovery_timeout = discovery_timeout
        self.request_timeout = request_timeout
        self.retry = retry or RetryPolicy()
        self.session = session or requests.Session()
        self.session.headers["Accept"] = "application/json"
        self._sleep = sleep
        self.base_url: str | None = base_url.rstrip("/") if base_url else None
        self.hub: dict[str, Any] | None = None
        self.endpoint: HubEndpoint | None = None
        self.session_token: str | None = None

    # -- finding the hub ------------------------------------------------------------

    def connect(self) -> dict[str, Any]:
        """Find the hub, verify its identity and return its ``/api/v1/hub`` document.

        Order: an explicit ``base_url``; the remembered addresses; mDNS by the expected
        (or remembered) id; any hub when this tablet has never met one. Raises
        :class:`HubIdentityMismatch` when the only server found is a different hub and
        :class:`HubUnreachable` when nothing answers.
        """
        mismatch: HubIdentityMismatch | None = None
        candidates: list[str] = []
        if self.base_url:
            candidates.append(self.base_url)
        if self.state.knows_hub:
            candidates += [f"http://{a}:{self.state.port}" for a in self.state.addresses]
        for url in dict.fromkeys(candidates):
            try:
                return self._adopt(url, self.expected_hub_id)
            except HubIdentityMismatch as exc:
                log.warning("remembered address is another hub", extra={"url": url, "actual": exc.actual})
                mismatch = exc
            except requests.RequestException:
                continue
        try:
            endpoint = resolve_hub(self.expected_hub_id, self.discovery_timeout, interfaces=self.interfaces)
        except HubNotFound as exc:
            if mismatch is not None:
                raise mismatch from exc
            raise HubUnreachable(str(exc)) from exc
        return self._adopt_endpoint(endpoint)

    def _adopt_endpoint(self, endpoint: HubEndpoint) -> dict[str, Any]:
        last: Exception | None = None
        for address in endpoint.addresses:
            try:
                # The advertised TXT id is what the hub must prove on first contact.
                doc = self._adopt(endpoint.base_url(address), endpoint.id)
            except requests.RequestException as exc:
                last = exc
                continue
            self.endpoint = endpoint
            return doc
        raise HubUnreachable(f"hub {endpoint.id} advertised {list(endpoint.addresses)} but none answered: {last}")

    def _adopt(self, url: str, expected_id: str | None) -> dict[str, Any]:
        resp = self.session.get(f"{url}{API}/hub", timeout=self.request_timeout)
        if resp.status_code != 200:
            raise HubError.from_response(resp)
        doc = resp.json()
        actual = str(doc.get("id", ""))
        if expected_id is not None and actual != expected_id:
            raise HubIdentityMismatch(url, expected_id, actual)
        try:
            uuid.UUID(actual)
        except ValueError as exc:
            raise HubIdentityMismatch(url, expected_id or "(a hub UUID)", actual) from exc
        self.base_url = url
        self.hub = doc
        self.expected_hub_id = actual
        host, _, port = url.removeprefix("http://").rpartition(":")
        addresses = [host] + [a for a in self.state.addresses if a != host]
        if self.endpoint is not None and self.endpoint.id == actual:
            addresses += [a for a in self.endpoint.addresses if a not in addresses]
        self.state.hub_id, self.state.hub_name = actual, str(doc.get("name", ""))
        self.state.addresses, self.state.port = addresses[:4], int(port)
        save_state(self.state_path, self.state)
        log.info("hub verified", extra={"hub": actual, "url": url})
        return doc

    def _rediscover(self) -> bool:
        """Look the hub up again by id after a connection failure; True if the address changed."""
        if self.expected_hub_id is None:
            return False
        try:
            endpoint = resolve_hub(self.expected_hub_id, min(2.0, self.discovery_timeout), interfaces=self.interfaces)
        except HubNotFound:
            return False
        old = self.base_url
        try:
            self._adopt_endpoint(endpoint)
        except (HubUnreachable, HubError):
            return False
        if self.base_url != old:
            log.info("hub moved", extra={"old": old, "new": self.base_url})
        return self.base_url != old

    # -- HTTP -----------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.state.device_token:
            headers["X-Device-Token"] = self.state.device_token
        if self.session_token:
            headers["Authorization"] = f"Bearer {self.session_token}"
        return headers

    def request(self, method: str, path: str, *, json: Any = None, expect: tuple[int, ...] = ()) -> requests.Response:
        """Send ``method path`` (``path`` under ``/api/v1``) with auth headers and retries.

        Writes carry one ``Idempotency-Key`` for all their retries, so a retry after a
        lost response cannot apply the write twice on a hub that honours it.
        Raises :class:`HubError` for error responses and :class:`HubUnreachable` when
        retries are exhausted.
        """
        if self.base_url is None:
            self.connect()
        headers = self._headers()
        if method.upper() not in ("GET", "HEAD"):
            headers["Idempotency-Key"] = str(uuid.uuid4())
        last: str = ""
        checked_identity = False
        for attempt in range(self.retry.attempts):
            url_base = str(self.base_url)
            url = f"{url_base}{API}{path}"
            try:
                resp = self.session.request(method, url, json=json, headers=headers, timeout=self.request_timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"{type(exc).__name__}: {exc}"
                log.info("hub unreachable, will retry", extra={"url": url, "attempt": attempt})
                if self._rediscover():
                    continue  # the hub moved: try the new address straight away
                if attempt + 1 < self.retry.attempts:
                    self._wait(attempt, None)
                continue
            if resp.status_code == 429 or resp.status_code in RETRY_STATUSES:
                hint = retry_after_seconds(resp.headers.get("Retry-After"))
                if hint is not None and hint > self.retry.max_retry_after_s:
                    raise HubError.from_response(resp)
                last = f"HTTP {resp.status_code}"
                if attempt + 1 < self.retry.attempts:
                    self._wait(attempt, hint)
                continue
            if resp.status_code in (401, 403) and not checked_identity:
                # A refused token may mean another hub now answers at this address (the
                # hub was replaced, or DHCP gave its address to another one): say so,
                # rather than let the tablet believe its enrolment was revoked.
                checked_identity = True
                other = self._other_hub_at(url_base)
                if other is not None:
                    if self._rediscover():
                        continue  # our hub is elsewhere now: try it there
                    raise HubIdentityMismatch(url_base, str(self.expected_hub_id), other)
            if resp.status_code >= 400 or (expect and resp.status_code not in expect):
                raise HubError.from_response(resp)
            return resp
        raise HubUnreachable(f"{method} {path} failed after {self.retry.attempts} attempts ({last})")

    def _other_hub_at(self, url: str) -> str | None:
        """The id of the hub at ``url`` if it is not the expected one; None if it is, or unknown."""
        if self.expected_hub_id is None:
            return None
        try:
            # No credentials: this only asks who is there.
            resp = self.session.get(f"{url}{API}/hub", timeout=self.request_timeout)
            actual = str(resp.json().get("id", "")) if resp.status_code == 200 else None
        except (requests.RequestException, ValueError, AttributeError):
            return None
        return actual if actual is not None and actual != self.expected_hub_id else None

    def _wait(self, attempt: int, retry_after: float | None) -> None:
        delay = retry_after if retry_after is not None else self.retry.delay(attempt)
        self._sleep(delay)

    def get(self, path: str) -> Any:
        """GET ``/api/v1<path>`` and return the JSON body."""
        return self.request("GET", path).json()

    def post(self, path: str, body: Any) -> Any:
        """POST JSON to ``/api/v1<path>`` and return the JSON body."""
        return self.request("POST", path, json=body).json()

    # -- the tablet's flow ----------------------------------------------------------

    def enrol(self, code: str, name: str) -> dict[str, Any]:
        """Enrol this tablet with a pairing code; remembers the device token."""
        # request_id makes a retry after a lost 201 return the same device, not a second one.
        doc = self.post("/devices/enrol", {"code": code, "name": name, "request_id": str(uuid.uuid4())})
        if self.expected_hub_id and doc.get("hub_id") not in (None, self.expected_hub_id):
            raise HubIdentityMismatch(str(self.base_url), self.expected_hub_id, str(doc.get("hub_id")))
        self.state.device_id = doc["device_id"]
        self.state.device_token = doc["device_token"]
        self.state.kind = doc.get("kind")
        save_state(self.state_path, self.state)
        return dict(doc)

    def list_students(self) -> list[dict[str, Any]]:
        """The students who may sign in on this tablet (its class roster)."""
        return list(self.get("/signin/students")["students"])

    def sign_in(self, student_id: int, pin: str) -> dict[str, Any]:
        """Sign a student in; later requests carry the session token."""
        doc = self.post("/signin", {"student_id": student_id, "pin": pin})
        self.session_token = doc["token"]
        return dict(doc)

    def me(self) -> dict[str, Any]:
        """Who the hub thinks is signed in."""
        return dict(self.get("/me"))

    def teacher_login(self, username: str, password: str) -> dict[str, Any]:
        """Sign a teacher in (teacher device, simulator, tests)."""
        doc = self.post("/auth/login", {"username": username, "password": password})
        self.session_token = doc["token"]
        return dict(doc)

    def create_pairing_code(self, class_id: int, kind: str = "student", max_uses: int = 45) -> dict[str, Any]:
        """As a signed-in teacher: a pairing code for tablets of ``class_id``."""
        return dict(self.post("/pairing-codes", {"class_id": class_id, "kind": kind, "max_uses": max_uses}))
