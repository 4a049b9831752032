"""Would a Rust HTTP front cut the hub's per-request CPU? (a probe, not a benchmark of
what ships; granian is not a dependency of the hub).

    .venv/bin/pip install granian   # once, into the test venv only
    .venv/bin/python tests/bench/probe_granian.py [--threads 1,4,16,64] [--seconds 8]

Serves the same seeded classroom with the hub as it ships (``classroom-hub serve``:
gunicorn gthread, 2 workers) and with granian (``--interface wsgi``, 2 workers, N
blocking threads) running the same Flask app, then a bare WSGI function under granian.
Each gets ``wrk -c55 -t2`` on ``GET /api/v1/me`` (teacher Bearer token) and prints
req/s, p50/p99 and the server's CPU per request (all its processes). Why only a probe:
live streams hold a WSGI thread each for as long as a page is open, so granian with a
handful of blocking threads cannot serve the hub's SSE as it is written today.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import _benchlib as b
import psutil

ENTRY = textwrap.dedent(
    """
    from edge.app import create_app
    from edge.config import load_config
    from edge.logs import setup_logging
    from edge.server.gunicorn_app import prepare_metrics_dir
    from edge.storage.setup import prepare_storage

    config = load_config()
    setup_logging(config.logging.level, config.logging.format)
    prepare_metrics_dir(config)
    prepare_storage(config)
    app = create_app(config)


    def trivial(environ, start_response):
        body = b'{"status":"ok"}'
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    """
)


def start_granian(data: Path, port: int, logs: Path, threads: int, target: str = "probe_entry:app", **env_extra: str) -> b.Server:
    """The hub's app (or ``probe_entry:trivial``) under granian: 2 workers, ``threads`` blocking threads each."""
    granian = Path(sys.executable).with_name("granian")
    if not granian.exists():
        raise SystemExit("granian is not installed in this venv: .venv/bin/pip install granian")
    entry_dir = logs.parent / "granian-entry"
    entry_dir.mkdir(exist_ok=True)
    (entry_dir / "probe_entry.py").write_text(ENTRY)
    env = b.hub_env(data, port, PYTHONPATH=f"{b.REPO}:{entry_dir}", **env_extra)
    argv = [str(granian), "--interface", "wsgi", "--workers", "2", "--blocking-threads", str(threads), "--host", b.HOST,
            "--port", str(port), "--no-ws", "--log-level", "warning", target]
    return b.Server(argv, env, port, logs / f"granian-{threads}.log", name=f"granian {threads}")


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return out


def measure(name: str, srv: b.Server, headers: dict[str, str], seconds: int) -> str:
    before = cpu_by_pid(srv.pids())
    w = b.run_wrk(srv.port, "/api/v1/me", headers, duration_s=seconds)
    # Processes are listed again afterwards: a worker that appeared meanwhile counts from zero.
    after = cpu_by_pid(srv.pids())
    cpu_ms = sum(t - before.get(pid, 0.0) for pid, t in after.items()) / max(1, w.requests) * 1000
    return (f"{name:28s} {w.rps:8.0f} req/s  p50 {w.p50:6.1f} ms  p99 {w.p99:6.1f} ms  errors {w.errors}  "
            f"CPU {cpu_ms:.3f} ms/request ({len(after)} processes)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="1,4,16,64", help="granian blocking threads per worker to try")
    ap.add_argument("--seconds", type=int, default=8)
    args = ap.parse_args()
    print(f"machine: {b.machine()}")
    work = b.tmpdir("probe-granian-")
    logs = work / "logs"
    logs.mkdir()
    data = work / "data"
    room = b.seed_classroom(data)
    lines = []

    srv = b.start_hub_cli(data, b.free_port(), logs)
    srv.wait_ready()
    token = {"Authorization": f"Bearer {b.login_and_enrol(room, srv.port, need_device=False).teacher_token}"}
    lines.append(measure("gunicorn gthread (shipped)", srv, token, args.seconds))
    srv.stop()
    for threads in [int(t) for t in args.threads.split(",")]:
        srv = start_granian(data, b.free_port(), logs, threads)
        srv.wait_ready(timeout=60)
        lines.append(measure(f"granian, {threads} threads", srv, token, args.seconds))
        srv.stop()
    srv = start_granian(data, b.free_port(), logs, 4, "probe_entry:trivial")
    srv.wait_ready(timeout=60)
    lines.append(measure("granian, bare WSGI function", srv, {}, args.seconds))
    srv.stop()
    b.summary(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
