"""Shared helpers for the hub benchmarks (not a benchmark: run_all.py runs bench_*.py only).

Servers run in their own process group and are killed with it on exit, Ctrl-C or failure.
Everything binds and connects to 127.0.0.1 only.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parents[1]
VENV_BIN = Path(sys.executable).parent
LAUNCH = BENCH_DIR / "_launch.py"

_servers: list[Server] = []
_tmpdirs: list[str] = []


def _cleanup_all() -> None:
    for s in list(_servers):
        s.stop()
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


def _on_term(signum, frame):
    raise SystemExit(128 + signum)


atexit.register(_cleanup_all)
signal.signal(signal.SIGTERM, _on_term)
# Ctrl-C must reach our finally blocks even when started with SIGINT ignored (e.g. `cmd &`).
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGHUP, _on_term)


def tmpdir(prefix: str) -> Path:
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return Path(d)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def hub_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    """A clean environment for a hub process: loopback only, no mDNS, no stray HUB_* vars."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_") and k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "PROMETHEUS_MULTIPROC_DIR")}
    env.update(
        HUB_HUB_DATA_DIR=str(data_dir),
        HUB_HTTP_HOST=HOST,
        HUB_HTTP_PORT=str(port),
        HUB_DISCOVERY_ENABLED="false",
    )
    env.update(extra)
    return env


class Server:
    """A server process (and its children) in its own session/process group."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int, log_path: Path, name: str = "") -> None:
        self.port = port
        self.name = name or argv[0]
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.t_spawn = time.monotonic()
        self.proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        _servers.append(self)

    def wait_ready(self, path: str = "/readyz", timeout: float = 30.0, interval: float = 0.01) -> float:
        """Poll until ``path`` answers 200; returns seconds since spawn."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=1)
                conn.request("GET", path)
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    return time.monotonic() - self.t_spawn
            except OSError:
                pass
            time.sleep(interval)
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def pids(self) -> list[int]:
        try:
            root = psutil.Process(self.proc.pid)
            return [root.pid] + [c.pid for c in root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def worker_pids(self) -> list[int]:
        try:
            return [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def memory(self) -> tuple[float, float, int]:
        """(sum of RSS MB, sum of PSS MB, process count) over the process tree."""
        return tree_memory(self.pids())

    def stop(self) -> None:
        if self in _servers:
            _servers.remove(self)
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                pass
        try:  # anything left in the group (workers of a killed arbiter)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


def start_hub_cli(data_dir: Path, port: int, log_dir: Path, **env_extra: str) -> Server:
    """The hub exactly as deployed: ``classroom-hub serve`` configured by HUB_* variables."""
    argv = [str(VENV_BIN / "classroom-hub"), "serve"]
    return Server(argv, hub_env(data_dir, port, **env_extra), port, log_dir / f"hub-{port}.log", name="classroom-hub serve")


def start_variant(variant: str, data_dir: Path, port: int, log_dir: Path, workers: int | None = None, threads: int | None = None) -> Server:
    argv = [sys.executable, str(LAUNCH), "--variant", variant]
    if workers:
        argv += ["--workers", str(workers)]
    if threads:
        argv += ["--threads", str(threads)]
    return Server(argv, hub_env(data_dir, port), port, log_dir / f"{variant}-{port}.log", name=variant)


def tree_memory(pids: list[int]) -> tuple[float, float, int]:
    rss = pss = 0
    n = 0
    for pid in pids:
        try:
            rss += psutil.Process(pid).memory_info().rss
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
                        break
            n += 1
        except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
            pass
    return rss / 2**20, pss / 2**20, n


# -- the demo classroom and credentials -------------------------------------------------


@dataclass
class Classroom:
    data_dir: Path
    teacher_user: str
    teacher_password: str
    class_id: int = 0
    teacher_token: str = ""
    device_token: str = ""
    students: list[tuple[int, str]] = field(default_factory=list)  # (student id, PIN)


def seed_classroom(data_dir: Path) -> Classroom:
    """Migrate and seed the demo classroom into ``data_dir`` (in this process, no server)."""
    from edge.config import load_config
    from edge.demo.classroom import seed_demo
    from edge.storage.setup import prepare_storage

    config = load_config(environ={}, overrides={"hub": {"data_dir": str(data_dir)}, "discovery": {"enabled": False}})
    prepare_storage(config)
    creds = seed_demo(config)
    return Classroom(data_dir, creds.teacher_username, creds.teacher_password)


def api(port: int, method: str, path: str, body: object | None = None, headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=payload, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {"raw": raw[:200].decode(errors="replace")}
        return resp.status, data
    finally:
        conn.close()


def login_and_enrol(room: Classroom, port: int, need_device: bool = True) -> Classroom:
    """Teacher login; on first use also enrol one student tablet and learn student ids."""
    st, data = api(port, "POST", "/api/v1/auth/login", {"username": room.teacher_user, "password": room.teacher_password})
    assert st == 201, (st, data)
    room.teacher_token = data["token"]
    auth = {"Authorization": f"Bearer {room.teacher_token}"}
    if not room.class_id:
        st, data = api(port, "GET", "/api/v1/classes", headers=auth)
        assert st == 200, (st, data)
        room.class_id = data["classes"][0]["id"]
    if need_device and not room.device_token:
        st, data = api(port, "POST", "/api/v1/pairing-codes", {"class_id": room.class_id, "kind": "student", "max_uses": 60}, headers=auth)
        assert st == 201, (st, data)
        code = data["code"]
        st, data = api(port, "POST", "/api/v1/devices/enrol", {"code": code, "name": "bench-tablet-01"})
        assert st == 201, (st, data)
        room.device_token = data["device_token"]
        st, data = api(port, "GET", f"/api/v1/classes/{room.class_id}/students", headers=auth)
        assert st == 200, (st, data)
        creds = json.loads((room.data_dir / "demo-credentials.json").read_text(encoding="utf-8"))
        pins = creds["student_pins"]
        room.students = [(s["id"], pins[s["number"]]) for s in data["students"] if s["number"] in pins]
    return room


class SignIn:
    """Student sign-ins (each publishes ``student.signed_in`` on the class channel) over one keep-alive connection."""

    def __init__(self, room: Classroom, port: int, timeout: float = 10.0) -> None:
        self.room = room
        self.port = port
        self.timeout = timeout
        self.n = 0
        self.conn: http.client.HTTPConnection | None = None

    def connect(self) -> tuple[int, int]:
        """Open the connection (returns its (local, remote) ports, to find the worker holding it)."""
        self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        self.conn.connect()
        return self.conn.sock.getsockname()[1], self.port

    def once(self) -> tuple[int, float, float]:
        """One sign-in: (status, t_sent, t_ack) with time.monotonic() stamps."""
        if self.conn is None:
            self.connect()
        sid, pin = self.room.students[self.n % len(self.room.students)]
        self.n += 1
        body = json.dumps({"student_id": sid, "pin": pin}).encode()
        hdrs = {"Content-Type": "application/json", "X-Device-Token": self.room.device_token}
        t0 = time.monotonic()
        try:
            self.conn.request("POST", "/api/v1/signin", body=body, headers=hdrs)
            resp = self.conn.getresponse()
            resp.read()
            status = resp.status
        except OSError:
            self.conn.close()
            self.conn = None
            status = 0
        return status, t0, time.monotonic()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


# -- SSE listeners: one selector thread for all of them, so arrival stamps are not delayed by the GIL


@dataclass
class SSEConn:
    sock: socket.socket
    local_port: int
    buf: bytes = b""
    status: int | None = None
    chunked: bool = False
    body: bytes = b""
    connected_at: float | None = None
    closed_at: float | None = None
    events: list[tuple[int, str, float]] = field(default_factory=list)  # (id, type, arrival)


class SSEPool:
    def __init__(self, port: int, headers: dict[str, str], n: int, path: str = "/api/v1/events") -> None:
        self.port = port
        self.headers = headers
        self.n = n
        self.path = path
        self.conns: list[SSEConn] = []
        self._sel = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sse-pool", daemon=True)
        self.connect_errors = 0

    def open(self, wait_s: float = 10.0) -> int:
        """Open n streams; returns how many answered 200 within wait_s."""
        req = f"GET {self.path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"
        req += "".join(f"{k}: {v}\r\n" for k, v in self.headers.items()) + "\r\n"
        for _ in range(self.n):
            s = socket.socket()
            s.settimeout(5)
            try:
                s.connect((HOST, self.port))
                s.sendall(req.encode())
            except OSError:
                self.connect_errors += 1
                s.close()
                continue
            s.setblocking(False)
            c = SSEConn(s, s.getsockname()[1])
            with self._lock:
                self.conns.append(c)
                self._sel.register(s, selectors.EVENT_READ, c)
        self._thread.start()
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and self.connected() < self.n:
            time.sleep(0.02)
        return self.connected()

    def connected(self) -> int:
        return sum(1 for c in self.conns if c.connected_at is not None and c.closed_at is None)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                ready = self._sel.select(timeout=0.2) if self._sel.get_map() else []
            now = time.monotonic()
            for key, _ in ready:
                c: SSEConn = key.data
                try:
                    data = c.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    c.closed_at = now
                    with self._lock:
                        self._sel.unregister(c.sock)
                    c.sock.close()
                    continue
                self._feed(c, data, now)

    def _feed(self, c: SSEConn, data: bytes, now: float) -> None:
        c.buf += data
        if c.status is None:
            end = c.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, c.buf = c.buf[:end].decode("latin-1"), c.buf[end + 4:]
            c.status = int(head.split(" ", 2)[1])
            c.chunked = "transfer-encoding: chunked" in head.lower()
            if c.status == 200:
                c.connected_at = now
        if c.chunked:
            while True:
                nl = c.buf.find(b"\r\n")
                if nl < 0:
                    break
                size = int(c.buf[:nl].split(b";")[0] or b"0", 16)
                if len(c.buf) < nl + 2 + size + 2:
                    break
                c.body += c.buf[nl + 2:nl + 2 + size]
                c.buf = c.buf[nl + 2 + size + 2:]
        else:
            c.body += c.buf
            c.buf = b""
        while b"\n\n" in c.body:
            frame, c.body = c.body.split(b"\n\n", 1)
            ev_id, ev_type = 0, "message"
            has_data = False
            for line in frame.decode("utf-8", errors="replace").split("\n"):
                if line.startswith("id:"):
                    ev_id = int(line[3:].strip() or 0)
                elif line.startswith("event:"):
                    ev_type = line[6:].strip()
                elif line.startswith("data:"):
                    has_data = True
            if has_data:
                c.events.append((ev_id, ev_type, now))

    def count(self, c: SSEConn, type_: str) -> int:
        return sum(1 for e in c.events if e[1] == type_)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for c in self.conns:
            try:
                c.sock.close()
            except OSError:
                pass


def owner_of_ports(worker_pids: list[int], server_port: int, client_ports: list[int]) -> dict[int, int]:
    """Map client local ports to the pid of the worker process holding the accepted socket."""
    wanted = set(client_ports)
    found: dict[int, int] = {}
    for pid in worker_pids:
        try:
            for conn in psutil.Process(pid).net_connections(kind="tcp"):
                if conn.laddr and conn.laddr.port == server_port and conn.raddr and conn.raddr.port in wanted:
                    found[conn.raddr.port] = pid
        except psutil.NoSuchProcess:
            pass
    return found


# -- wrk ------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        return float("nan")
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass
class WrkResult:
    rps: float = 0.0
    p50: float = float("nan")
    p90: float = float("nan")
    p99: float = float("nan")
    requests: int = 0
    errors: int = 0  # socket errors (connect/read/write/timeout) + non-2xx/3xx
    non2xx: int = 0
    timeouts: int = 0
    raw: str = ""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(port: int, path: str, headers: dict[str, str], connections: int = 55, threads: int = 2, duration_s: int = 10, timeout_s: int = 5) -> WrkResult:
    if not wrk_available():
        raise RuntimeError("wrk is not installed (Debian: apt-get install -y wrk)")
    argv = ["wrk", "--latency", f"-c{connections}", f"-t{threads}", f"-d{duration_s}s", f"--timeout={timeout_s}s"]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    argv.append(f"http://{HOST}:{port}{path}")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=duration_s + timeout_s + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    r = WrkResult(raw=out)
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        r.rps = float(m.group(1))
    if m := re.search(r"(\d+) requests in", out):
        r.requests = int(m.group(1))
    for pct, attr in (("50", "p50"), ("90", "p90"), ("99", "p99")):
        if m := re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M):
            setattr(r, attr, _ms(m.group(1)))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        r.timeouts = int(m.group(4))
        r.errors += sum(int(x) for x in m.groups())
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        r.non2xx = int(m.group(1))
        r.errors += r.non2xx
    return r


# -- reporting -------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if q < 100 else max(values)


def ratio(a: float, b: float) -> str:
    if not b or b != b or a != a:
        return "n/a"
    return f"{a / b:.2f}x"


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return f"nproc={len(os.sched_getaffinity(0))} cpu={model!r} ram={mem:.1f}GiB python={sys.version.split()[0]}"


def summary(lines: list[str]) -> None:
    """Print the block run_all.py collects."""
    print("\n=== SUMMARY ===")
    for line in lines:
        print(line)
    print("=== END SUMMARY ===", flush=True)


class Prober:
    """Fresh-connection probes during a load run: does a newly connecting tablet get an answer?

    wrk only reports requests that complete; connections stuck behind busy workers (or
    requests that never get a thread) are invisible to it. Each probe opens a new
    connection, sends one GET and waits at most ``timeout`` seconds.
    """

    def __init__(self, port: int, path: str, headers: dict[str, str], interval: float = 0.5, timeout: float = 3.0) -> None:
        self.port, self.path, self.headers, self.interval, self.timeout = port, path, headers, interval, timeout
        self.results: list[tuple[bool, float]] = []  # (answered 200, seconds)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._driver = threading.Thread(target=self._run, name="prober", daemon=True)

    def start(self) -> None:
        self._driver.start()

    def _one(self) -> None:
        t0 = time.monotonic()
        try:
            st, _ = api(self.port, "GET", self.path, headers=self.headers, timeout=self.timeout)
            ok = st == 200
        except OSError:
            ok = False
        self.results.append((ok, time.monotonic() - t0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            t = threading.Thread(target=self._one, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self._driver.join(timeout=2)
        for t in self._threads:
            t.join(timeout=self.timeout + 1)

    def ok(self) -> int:
        return sum(1 for ok, _ in self.results if ok)

    def max_ms(self) -> float:
        return max((s for ok, s in self.results if ok), default=float("nan")) * 1000
