"""Simulate a cart of student tablets against a hub: discover, enrol, list, sign in, listen.

One thread per tablet, each with its own :class:`TabletClient` and state file, so the
hub sees what a real class sees at the start of a lesson: N tablets switched on at once.
The teacher's part (login, one pairing code with ``max_uses=N``) is done first, by the
same client library.

Run ``python -m edge.tablet_client --help``. The whole run is bounded (``--timeout``);
Ctrl-C stops it and still prints what was done.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from edge.tablet_client.client import HubError, HubIdentityMismatch, HubUnreachable, RetryPolicy, TabletClient
from edge.tablet_client.discover import HubNotFound

log = logging.getLogger(__name__)

STEPS = ("discover", "enrol", "students", "signin", "me")


class Cancelled(Exception):
    """The run was stopped (Ctrl-C or the overall deadline) while a tablet was busy."""


class SetupError(RuntimeError):
    """The teacher's part failed: no hub, wrong credentials, no such class, ..."""


@dataclass(slots=True)
class SimConfig:
    """Everything one simulator run needs."""

    tablets: int = 45
    hub_url: str | None = None
    hub_id: str | None = None
    interfaces: list[str] | None = None
    teacher_user: str | None = None
    teacher_password: str | None = None
    pins: dict[str, str] = field(default_factory=dict)
    class_id: int | None = None
    class_name: str | None = None
    state_dir: Path | None = None
    listen: bool = False
    listen_s: float = 2.0
    timeout_s: float = 120.0
    discovery_timeout_s: float = 10.0
    request_timeout_s: float = 10.0
    ramp_s: float = 0.0


@dataclass(slots=True)
class TabletResult:
    """What happened on one simulated tablet; durations in seconds per step."""

    index: int
    name: str
    url: str | None = None
    enrolled: bool = False
    remembered: bool = False
    signed_in: bool = False
    role_ok: bool = False
    student_number: str | None = None
    stream_open: bool = False
    events: int = 0
    event_types: dict[str, int] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    total_s: float | None = None
    error: str | None = None
    error_step: str | None = None


@dataclass(slots=True)
class Summary:
    """The outcome of a run (printed as text or JSON)."""

    tablets: int
    hub_id: str | None = None
    hub_name: str = ""
    hub_url: str | None = None
    class_id: int | None = None
    class_name: str | None = None
    discovery: str = ""
    listen: bool = False
    sign_in_expected: bool = True
    results: list[TabletResult] = field(default_factory=list)
    attendance_present: int | None = None
    attendance_total: int | None = None
    attendance_day: str | None = None
    setup_error: str | None = None
    interrupted: bool = False
    timed_out: bool = False
    wall_s: float = 0.0

    @property
    def enrolled(self) -> int:
        return sum(r.enrolled for r in self.results)

    @property
    def signed_in(self) -> int:
        return sum(r.signed_in for r in self.results)

    @property
    def errors(self) -> int:
        return sum(r.error is not None for r in self.results) + (self.setup_error is not None)

    @property
    def ok(self) -> bool:
        return (
            self.setup_error is None
            and not self.interrupted
            and len(self.results) == self.tablets
            and all(r.error is None and r.enrolled and (r.signed_in or not self.sign_in_expected) for r in self.results)
        )

    def timings(self) -> dict[str, dict[str, float | int]]:
        """Per step (and ``total``): count, p50, p95, max in milliseconds."""
        out: dict[str, dict[str, float | int]] = {}
        for step in (*STEPS, "total"):
            values = [r.total_s if step == "total" else r.durations.get(step) for r in self.results]
            ms = sorted(v * 1000 for v in values if v is not None)
            if ms:
                out[step] = {"n": len(ms), "p50": percentile(ms, 50), "p95": percentile(ms, 95), "max": ms[-1]}
        return out

    def to_json(self) -> dict[str, Any]:
        doc = {k: v for k, v in asdict(self).items() if k != "results"}
        doc.update(
            enrolled=self.enrolled,
            remembered=sum(r.remembered for r in self.results),
            signed_in=self.signed_in,
            role_ok=sum(r.role_ok for r in self.results),
            errors=self.errors,
            ok=self.ok,
            timings_ms=self.timings(),
            error_counts=dict(self.error_counts()),
            results=[asdict(r) for r in self.results],
        )
        return doc

    def error_counts(self) -> Counter[str]:
        return Counter(f"{r.error_step}: {r.error}" for r in self.results if r.error is not None)


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


# -- live events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SseEvent:
    id: str | None
    type: str
    data: str


class EventStream:
    """A minimal Server-Sent Events reader over a plain socket.

    Written for the simulator rather than using ``requests``: a blocked ``requests``
    stream cannot be stopped from another thread, this one checks ``stop`` every
    ``poll_s`` without losing bytes (it owns its buffer, chunked framing included).
    """

    def __init__(self, base_url: str, path: str, headers: dict[str, str], stop: threading.Event, *, timeout: float = 10.0, poll_s: float = 0.25) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// hub URLs can be listened to, not {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.path, self.headers, self.stop = path, headers, stop
        self.timeout, self.poll_s = timeout, poll_s
        self.sock: socket.socket | None = None
        self._buf = b""

    def open(self) -> None:
        """Connect and read the response head; raises :class:`HubError` unless 200."""
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        head = [f"GET {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Accept: text/event-stream", "Cache-Control: no-cache"]
        head += [f"{k}: {v}" for k, v in self.headers.items()]
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        raw = self._read_until(b"\r\n\r\n", deadline=time.monotonic() + self.timeout)
        status_line, *header_lines = raw.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        self.response_headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
        if status != 200:
            raise HubError(status, "event stream refused", status_line)
        self.sock.settimeout(self.poll_s)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def events(self) -> Iterator[SseEvent]:
        """Events until ``stop`` is set or the hub ends the stream (comments are skipped)."""
        chunked = "chunked" in self.response_headers.get("transfer-encoding", "").lower()
        text = ""
        body = self._chunks() if chunked else self._raw()
        for piece in body:
            text += piece.decode("utf-8", errors="replace").replace("\r\n", "\n")
            while "\n\n" in text:
                block, text = text.split("\n\n", 1)
                event = _parse_block(block)
                if event is not None:
                    yield event

    def _recv(self) -> bytes | None:
        """More bytes; None when stopped; b'' at the end of the stream."""
        assert self.sock is not None
        while not self.stop.is_set():
            try:
                return self.sock.recv(65536)
            except TimeoutError:
                continue
        return None

    def _read_until(self, marker: bytes, deadline: float | None = None) -> bytes:
        while marker not in self._buf:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("no answer from the event stream")
            data = self._recv()
            if not data:
                raise EOFError("event stream closed")
            self._buf += data
        out, self._buf = self._buf.split(marker, 1)
        return out

    def _raw(self) -> Iterator[bytes]:
        if self._buf:
            yield self._buf
            self._buf = b""
        while data := self._recv():
            yield data

    def _chunks(self) -> Iterator[bytes]:
        try:
            while True:
                size = int(self._read_until(b"\r\n").split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    return
                while len(self._buf) < size + 2:
                    data = self._recv()
                    if not data:
                        return
                    self._buf += data
                chunk, self._buf = self._buf[:size], self._buf[size + 2 :]
                yield chunk
        except EOFError:
            return


def _parse_block(block: str) -> SseEvent | None:
    event_id, type_, data = None, "message", []
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            event_id = value
        elif name == "event":
            type_ = value
        elif name == "data":
            data.append(value)
    if not data:
        return None  # e.g. the "retry:" preamble
    return SseEvent(event_id, type_, "\n".join(data))


# -- the run -----------------------------------------------------------------------------


class Simulator:
    """Runs the teacher's setup, then one thread per tablet; see :func:`run`."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.stop = threading.Event()  # everything stops (Ctrl-C, deadline)
        self.stop_listening = threading.Event()
        self.summary = Summary(tablets=config.tablets, listen=config.listen, sign_in_expected=bool(config.pins))
        self._lock = threading.Lock()
        self._flows_done = 0
        self._all_done = threading.Event()
        self._code: str | None = None
        self._teacher: TabletClient | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def _sleep(self, seconds: float) -> None:
        # The clients' backoff sleeps through this, so a stop interrupts a retry loop.
        if self.stop.wait(seconds):
            raise Cancelled()

    def _client(self, state_path: Path | None = None, expected_hub_id: str | None = None) -> TabletClient:
        cfg = self.config
        return TabletClient(
            state_path=state_path,
            expected_hub_id=expected_hub_id,
            interfaces=cfg.interfaces,
            discovery_timeout=cfg.discovery_timeout_s,
            request_timeout=cfg.request_timeout_s,
            retry=RetryPolicy(attempts=6, base_s=0.25, cap_s=4.0),
            base_url=cfg.hub_url,
            sleep=self._sleep,
        )

    # The teacher: find the hub, log in, choose the class, make one pairing code.

    def setup(self) -> None:
        cfg, s = self.config, self.summary
        if not cfg.teacher_user or not cfg.teacher_password:
            raise SetupError("teacher credentials needed: --credentials FILE or --teacher-user/--teacher-password")
        teacher = self._client(expected_hub_id=cfg.hub_id)
        try:
            hub = teacher.connect()
        except (HubUnreachable, HubNotFound, HubIdentityMismatch, HubError) as exc:
            raise SetupError(f"hub not found: {exc}") from exc
        s.hub_id, s.hub_name, s.hub_url = str(hub["id"]), str(hub.get("name", "")), teacher.base_url
        try:
            teacher.teacher_login(cfg.teacher_user, cfg.teacher_password)
            classes = teacher.get("/classes")["classes"]
            klass = self._choose_class(classes)
            s.class_id, s.class_name = int(klass["id"]), str(klass["name"])
            self._code = str(teacher.create_pairing_code(s.class_id, "student", max_uses=cfg.tablets)["code"])
        except (HubError, HubUnreachable) as exc:
            raise SetupError(f"teacher setup failed: {exc}") from exc
        self._teacher = teacher

    def _choose_class(self, classes: list[dict[str, Any]]) -> dict[str, Any]:
        cfg = self.config
        if cfg.class_id is not None:
            match = [c for c in classes if c["id"] == cfg.class_id]
        elif cfg.class_name is not None:
            match = [c for c in classes if c["name"] == cfg.class_name]
        else:
            match = classes if len(classes) == 1 else []
        if len(match) != 1:
            names = ", ".join(f"{c['id']}={c['name']}" for c in classes) or "none"
            raise SetupError(f"cannot choose the class (teacher's classes: {names}); use --class-id")
        return match[0]

    # One tablet.

    def tablet(self, index: int) -> None:
        cfg = self.config
        name = f"模拟平板-{index + 1:02d}"
        result = TabletResult(index=index + 1, name=name)
        with self._lock:
            self.summary.results.append(result)
        step = "start"
        started = time.perf_counter()
        client: TabletClient | None = None
        mine: dict[str, Any] | None = None
        try:
            if cfg.ramp_s > 0 and cfg.tablets > 1:
                self._sleep(cfg.ramp_s * index / (cfg.tablets - 1))
            started = time.perf_counter()
            state_dir = cfg.state_dir or Path(self._tmp.name if self._tmp else ".")
            client = self._client(state_dir / f"tablet-{index + 1:02d}.json", expected_hub_id=self.summary.hub_id)
            for step in STEPS:
                t0 = time.perf_counter()
                if step == "discover":
                    client.connect()
                    result.url = client.base_url
                elif step == "enrol":
                    result.remembered = self._still_enrolled(client)
                    if not result.remembered:
                        assert self._code is not None
                        client.enrol(self._code, name)
                    result.enrolled = True
                elif step == "students":
                    students = sorted(client.list_students(), key=lambda st: str(st["number"]))
                    mine = self._my_student(students, index)
                    if mine is None:
                        break
                    result.student_number = str(mine["number"])
                elif step == "signin":
                    assert mine is not None
                    client.sign_in(int(mine["id"]), cfg.pins[str(mine["number"])])
                    result.signed_in = True
                elif step == "me":
                    assert mine is not None
                    me = client.me()
                    result.role_ok = me.get("role") == "student" and me.get("id") == mine["id"]
                    if not result.role_ok:
                        raise RuntimeError(f"/me says {me!r}")
                result.durations[step] = time.perf_counter() - t0
            result.total_s = time.perf_counter() - started
        except Cancelled:
            result.error_step, result.error = step, "stopped before finishing"
        except (HubError, HubUnreachable, HubIdentityMismatch, HubNotFound, requests.RequestException, RuntimeError, KeyError, ValueError) as exc:
            result.error_step, result.error = step, f"{type(exc).__name__}: {exc}"
            log.info("tablet failed", extra={"tablet": name, "step": step, "error": str(exc)})
        finally:
            self._flow_done()
        if cfg.listen and client is not None and result.signed_in and result.error is None:
            self._listen(client, result)

    def _still_enrolled(self, client: TabletClient) -> bool:
        """True when a remembered device token of this hub still works (a re-run)."""
        if not client.state.device_token or client.state.hub_id != self.summary.hub_id:
            return False
        try:
            client.list_students()
        except HubError as exc:
            if exc.status in (401, 403):
                return False
            raise
        return True

    def _my_student(self, students: list[dict[str, Any]], index: int) -> dict[str, Any] | None:
        """Tablet i signs in as the i-th student (by number) that has a known PIN."""
        with_pin = [st for st in students if str(st["number"]) in self.config.pins]
        return with_pin[index % len(with_pin)] if with_pin else None

    def _listen(self, client: TabletClient, result: TabletResult) -> None:
        assert client.base_url is not None
        stream = EventStream(client.base_url, "/api/v1/events", client._headers(), self.stop_listening, timeout=self.config.request_timeout_s)
        try:
            stream.open()
            result.stream_open = True
            for event in stream.events():
                result.events += 1
                result.event_types[event.type] = result.event_types.get(event.type, 0) + 1
        except (OSError, EOFError, HubError, ValueError) as exc:
            if not self.stop_listening.is_set():
                result.error_step, result.error = "listen", f"{type(exc).__name__}: {exc}"
        finally:
            stream.close()

    def _flow_done(self) -> None:
        with self._lock:
            self._flows_done += 1
            if self._flows_done >= self.config.tablets:
                self._all_done.set()

    # The whole run.

    def run(self, *, on_started: Callable[[], None] | None = None) -> Summary:
        cfg, s = self.config, self.summary
        began = time.perf_counter()
        deadline = time.monotonic() + cfg.timeout_s
        if not cfg.pins:
            log.warning("no student PINs (use --credentials): tablets will enrol but not sign in")
        if cfg.state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="tablet-sim-")
        threads: list[threading.Thread] = []
        try:
            try:
                self.setup()
            except SetupError as exc:
                s.setup_error = str(exc)
                return s
            finally:
                s.discovery = f"--hub-url {cfg.hub_url}" if cfg.hub_url else f"mDNS on {', '.join(cfg.interfaces or ['all interfaces'])}"
            threads = [threading.Thread(target=self.tablet, args=(i,), name=f"tablet-{i + 1:02d}", daemon=True) for i in range(cfg.tablets)]
            for t in threads:
                t.start()
            if on_started is not None:
                on_started()
            if not self._all_done.wait(max(0.0, deadline - time.monotonic())):
                s.timed_out = True
                self.stop.set()
            elif cfg.listen:
                self.stop.wait(max(0.0, min(cfg.listen_s, deadline - time.monotonic())))
            self.stop_listening.set()
            for t in threads:
                t.join(timeout=max(0.5, min(5.0, deadline + 5 - time.monotonic())))
        except KeyboardInterrupt:
            s.interrupted = True
            self.stop.set()
            self.stop_listening.set()
            for t in threads:
                t.join(timeout=2.0)
        finally:
            s.results.sort(key=lambda r: r.index)
            for r in s.results:
                if r.total_s is None and r.error is None:
                    r.error_step, r.error = "run", "did not finish (stopped or --timeout)"
            if s.setup_error is None and not s.interrupted:
                self._attendance()
            s.wall_s = time.perf_counter() - began
            if self._tmp is not None:
                self._tmp.cleanup()
        return s

    def _attendance(self) -> None:
        if self._teacher is None or self.summary.class_id is None:
            return
        try:
            doc = self._teacher.get(f"/classes/{self.summary.class_id}/attendance")
        except (HubError, HubUnreachable, Cancelled, requests.RequestException) as exc:
            log.warning("attendance not available: %s", exc)
            return
        self.summary.attendance_present, self.summary.attendance_total = int(doc["present"]), int(doc["total"])
        self.summary.attendance_day = str(doc.get("day"))


def run(config: SimConfig) -> Summary:
    """Run one simulation and return its summary."""
    return Simulator(config).run()


# -- output ------------------------------------------------------------------------------


def format_summary(s: Summary) -> str:
    """The human-readable report."""
    n = s.tablets
    lines = [f"tablet simulator: {n} tablets -> {s.hub_name or '?'} (hub {s.hub_id or '?'}) at {s.hub_url or '?'}"]
    if s.class_name:
        lines.append(f"  class:        {s.class_name} (id {s.class_id})")
    lines.append(f"  discovery:    {s.discovery}")
    if s.setup_error:
        lines.append(f"  SETUP FAILED: {s.setup_error}")
        return "\n".join(lines)
    remembered = sum(r.remembered for r in s.results)
    lines.append(f"  enrolled:     {s.enrolled}/{n}" + (f" ({remembered} remembered from an earlier run)" if remembered else ""))
    lines.append(f"  signed in:    {s.signed_in}/{n}  (/me says student: {sum(r.role_ok for r in s.results)}/{n})")
    if s.listen:
        counts = sorted(r.events for r in s.results if r.stream_open)
        kinds: Counter[str] = Counter()
        for r in s.results:
            kinds.update(r.event_types)
        spread = f"per stream min {counts[0]} / median {counts[len(counts) // 2]} / max {counts[-1]}" if counts else "none"
        lines.append(f"  live events:  {len(counts)}/{n} streams, {sum(counts)} events ({spread}); " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    if s.attendance_present is not None:
        lines.append(f"  attendance:   {s.attendance_present}/{s.attendance_total} present on {s.attendance_day} (teacher's view)")
    lines.append(f"  errors:       {s.errors}")
    for text, count in s.error_counts().most_common(10):
        lines.append(f"    {count:3d} x {text}")
    if s.timed_out:
        lines.append("  TIMED OUT: the run hit --timeout before every tablet finished")
    if s.interrupted:
        lines.append("  INTERRUPTED: partial results")
    timings = s.timings()
    if timings:
        lines.append(f"  {'timings (ms)':<14}{'n':>5}{'p50':>9}{'p95':>9}{'max':>9}")
        for step, t in timings.items():
            lines.append(f"    {step:<12}{t['n']:>5}{t['p50']:>9.1f}{t['p95']:>9.1f}{t['max']:>9.1f}")
    lines.append(f"  wall time:    {s.wall_s:.2f} s")
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m edge.tablet_client",
        description="Simulate N student tablets: discover the hub by mDNS, enrol with one pairing code, sign each student in.",
    )
    p.add_argument("-n", "--tablets", type=int, default=45, help="number of tablets (default 45)")
    p.add_argument("--hub-url", help="skip discovery and use this hub, e.g. http://127.0.0.1:8080")
    p.add_argument("--hub-id", help="the hub to look for by mDNS (default: the first hub found)")
    p.add_argument(
        "--interface", action="append", dest="interfaces", metavar="IPV4",
        help="browse mDNS only from this local IPv4 address (repeatable; default all interfaces)",
    )
    p.add_argument("--credentials", type=Path, help="a demo hub's demo-credentials.json (teacher login, class, student PINs)")
    p.add_argument("--teacher-user", help="teacher username (overrides --credentials)")
    p.add_argument("--teacher-password", help="teacher password (overrides --credentials)")
    p.add_argument("--class-id", type=int, help="the class the tablets join (default: the credentials' class, or the teacher's only class)")
    p.add_argument("--state-dir", type=Path, help="keep each tablet's state file here (re-runs reuse enrolments); default: a temporary directory")
    p.add_argument("--listen", action="store_true", help="after signing in, keep each tablet's live-event stream open")
    p.add_argument("--listen-seconds", type=float, default=2.0, help="how long streams stay open after the last tablet signed in (default 2)")
    p.add_argument("--timeout", type=float, default=120.0, help="bound on the whole run in seconds (default 120)")
    p.add_argument("--discovery-timeout", type=float, default=10.0, help="seconds each tablet may spend finding the hub (default 10)")
    p.add_argument("--request-timeout", type=float, default=10.0, help="seconds per HTTP request (default 10)")
    p.add_argument("--ramp", type=float, default=0.0, help="spread tablet start-ups over this many seconds (default 0: all at once)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="log the clients' retries and discovery")
    args = p.parse_args(argv)
    if not 1 <= args.tablets <= 500:
        p.error("--tablets must be between 1 and 500")
    return args


def config_from_args(args: argparse.Namespace) -> SimConfig:
    creds: dict[str, Any] = {}
    if args.credentials is not None:
        try:
            creds = json.loads(args.credentials.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"cannot read {args.credentials}: {exc}") from None
    return SimConfig(
        tablets=args.tablets,
        hub_url=args.hub_url,
        hub_id=args.hub_id,
        interfaces=args.interfaces,
        teacher_user=args.teacher_user or creds.get("teacher_username"),
        teacher_password=args.teacher_password or creds.get("teacher_password"),
        pins={str(k): str(v) for k, v in (creds.get("student_pins") or {}).items()},
        class_id=args.class_id,
        class_name=None if args.class_id is not None else creds.get("class_name"),
        state_dir=args.state_dir,
        listen=args.listen,
        listen_s=args.listen_seconds,
        timeout_s=args.timeout,
        discovery_timeout_s=args.discovery_timeout,
        request_timeout_s=args.request_timeout,
        ramp_s=args.ramp,
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; exit status 0 when every tablet enrolled and signed in, 1 if not, 2 on setup failure, 130 on Ctrl-C."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop ends the run like Ctrl-C
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    summary = run(config_from_args(args))
    if args.json:
        print(json.dumps(summary.to_json(), ensure_ascii=False, indent=2))
    else:
        print(format_summary(summary))
    sys.stdout.flush()
    if summary.interrupted:
        return 130
    if summary.setup_error is not None:
        return 2
    return 0 if summary.ok else 1
