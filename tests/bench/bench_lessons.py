"""Lesson file serving, hub vs nginx on the same files, and page-push latency.

    .venv/bin/python tests/bench/bench_lessons.py            # ~2 minutes; needs wrk and nginx (apt-get install -y wrk nginx)

1. Throughput: 50 concurrent clients (wrk -c50, 3 alternating rounds of 10 s, medians) downloading (a) the same 50 MB file,
   (b) 50 different 5 MB files, from ``classroom-hub serve`` (its gthread workers,
   authenticated GET /api/v1/content/sha256/<hash>, sendfile) and from nginx (2
   worker processes, sendfile on, no auth) serving the very same blob files of the
   hub's content store. Aggregate bytes/s, ratio hub/nginx, hub RSS growth
   (summed over arbiter + workers, peak during the run minus before).
2. Page push: 55 tablet streams on GET /api/v1/events (45 signed-in students on
   their own enrolled tablets + 10 staff streams, all on class:<id>); the teacher
   POSTs /classes/<id>/page; latency from sending the POST to the lesson.page
   event arriving at each stream. Baseline: the POST's own acknowledgement time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _benchlib as b

SAME_MB = 50
DIFF_N, DIFF_MB = 50, 5
CLIENTS = 50
_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def build_lesson(work: Path, private_key: str) -> Path:
    from edge.lessons.build import build_package

    src = work / "lesson-src"
    src.mkdir()
    (src / "big.mp4").write_bytes(os.urandom(SAME_MB * 2**20))
    for i in range(DIFF_N):
        (src / f"part{i:02d}.mp4").write_bytes(os.urandom(DIFF_MB * 2**20))
    pages = "\n".join(f'[[pages]]\ntitle = "p{i}"\nfile = "part{i:02d}.mp4"' for i in range(DIFF_N))
    (src / "lesson.toml").write_text(
        'id = "bench-video"\nversion = 1\ntitle = "bench"\nsubject = "bench"\ngrade = 3\n[[pages]]\ntitle = "big"\nfile = "big.mp4"\n' + pages + "\n",
        encoding="utf-8",
    )
    out = work / "bench.zip"
    build_package(src, out, private_key)
    shutil.rmtree(src)
    return out


def start_nginx(root: Path, port: int, work: Path) -> b.Server:
    conf = work / "nginx.conf"
    (work / "nginx-tmp").mkdir()
    conf.write_text(f"""
worker_processes 2;
# the hub's data dir is 0700 root-owned here; nginx workers must read the same files
user root;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path {work}/nginx-tmp/body;
  proxy_temp_path {work}/nginx-tmp/proxy;
  fastcgi_temp_path {work}/nginx-tmp/fastcgi;
  uwsgi_temp_path {work}/nginx-tmp/uwsgi;
  scgi_temp_path {work}/nginx-tmp/scgi;
  server {{
    listen {b.HOST}:{port};
    location /c/ {{ alias {root}/; default_type application/octet-stream; }}
    location = /readyz {{ return 200 "ok"; }}
  }}
}}
""")
    return b.Server(["/usr/sbin/nginx", "-c", str(conf), "-p", str(work)], dict(os.environ), port, work / "nginx.log", name="nginx")


def wrk(port: int, paths: list[str], headers: dict[str, str], duration: int, work: Path) -> dict:
    script = work / f"paths-{len(paths)}.lua"
    script.write_text(
        "paths = {" + ",".join(json.dumps(p) for p in paths) + "}\n"
        "local n = 0\nfunction setup(thread) thread:set('id', n); n = n + 1 end\n"
        "function init(args) counter = id * 25 end\n"
        "function request() counter = counter + 1; return wrk.format(nil, paths[(counter % #paths) + 1]) end\n"
    )
    argv = ["wrk", f"-c{CLIENTS}", "-t2", f"-d{duration}s", "--timeout=30s", "-s", str(script)]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    out = subprocess.run([*argv, f"http://{b.HOST}:{port}"], capture_output=True, text=True, timeout=duration + 60).stdout
    m = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB|TB)", out)
    reqs = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "bps": float(m.group(1)) * _UNITS[m.group(2)] if m else 0.0,
        "requests": int(reqs.group(1)) if reqs else 0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in errs.groups()) if errs else 0,
        "raw": out,
    }


def cpu_s(srv: b.Server) -> float:
    """CPU seconds (user + system) used so far by the server's process tree."""
    total = 0.0
    for pid in srv.pids():
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return total


def rss_mb(srv: b.Server) -> float:
    total = 0
    for pid in srv.pids():
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


class RssWatch:
    def __init__(self, srv: b.Server) -> None:
        self.srv, self.peak, self._stop = srv, 0.0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        # RSS only (/proc/<pid>/statm): cheap, so the watcher does not slow the hub it watches.
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.srv))
            time.sleep(0.2)

    def __enter__(self) -> RssWatch:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def page_push(room: b.Classroom, port: int, lesson: int, pushes: int) -> list[str]:
    auth = {"Authorization": f"Bearer {room.teacher_token}"}
    st, data = b.api(port, "POST", "/api/v1/pairing-codes", {"class_id": room.class_id, "kind": "student", "max_uses": 60}, headers=auth)
    assert st == 201, data
    code = data["code"]
    pools = []
    for i, (sid, pin) in enumerate(room.students[:45]):
        st, dev = b.api(port, "POST", "/api/v1/devices/enrol", {"code": code, "name": f"bench-push-{i:02d}"})
        assert st == 201, dev
        st, ses = b.api(port, "POST", "/api/v1/signin", {"student_id": sid, "pin": pin}, headers={"X-Device-Token": dev["device_token"]})
        assert st == 201, ses
        pools.append(b.SSEPool(port, {"Authorization": f"Bearer {ses['token']}", "X-Device-Token": dev["device_token"]}, 1))
    pools.append(b.SSEPool(port, auth, 55 - len(pools)))
    up = sum(p.open(wait_s=10) for p in pools)
    conns = [c for p in pools for c in p.conns]
    lat_all: list[float] = []
    lat_max: list[float] = []
    acks: list[float] = []
    try:
        for i in range(pushes):
            before = [b_count(c) for c in conns]
            t0 = time.monotonic()
            st, _ = b.api(port, "POST", f"/api/v1/classes/{room.class_id}/page", {"lesson": lesson, "page": i % 50 + 1}, headers=auth)
            acks.append((time.monotonic() - t0) * 1000)
            assert st == 200
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(b_count(c) <= n for c, n in zip(conns, before, strict=True)):
                time.sleep(0.002)
            arrivals = [next((e[2] for e in c.events[before_i:] if e[1] == "lesson.page"), None) for c, before_i in zip(conns, before, strict=True)]
            got = [(a - t0) * 1000 for a in arrivals if a is not None]
            lat_all += got
            lat_max.append(max(got) if len(got) == len(conns) else float("inf"))
            time.sleep(0.05)
    finally:
        for p in pools:
            p.close()
    missing = sum(1 for v in lat_max if v == float("inf"))
    return [
        f"page push to {up} SSE streams (45 students on their own tablets + 10 staff), {pushes} pushes:",
        f"  per stream: p50 {b.pct(lat_all, 50):.1f} ms, p99 {b.pct(lat_all, 99):.1f} ms; slowest stream per push: p50 {b.pct(lat_max, 50):.1f} ms, "
        f"p99 {b.pct(lat_max, 99):.1f} ms; pushes not delivered to every stream: {missing}",
        f"  baseline (same run): the push POST's own acknowledgement p50 {b.pct(acks, 50):.1f} ms, p99 {b.pct(acks, 99):.1f} ms; "
        f"delivery/ack p99 {b.ratio(b.pct(lat_all, 99), b.pct(acks, 99))}; target p99 <= 200 ms: {'met' if b.pct(lat_all, 99) <= 200 else 'NOT met'}",
    ]


def b_count(c: b.SSEConn) -> int:
    return len(c.events)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--pushes", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3, help="alternating hub/nginx runs per case; medians are reported")
    args = ap.parse_args()
    for tool in ("wrk", "/usr/sbin/nginx"):
        if not shutil.which(tool):
            print(f"{tool} is not installed: apt-get install -y wrk nginx")
            return 2
    from edge import signing
    from edge.config import load_config
    from edge.lessons.importer import import_package
    from edge.storage.db import connect

    print(f"machine: {b.machine()}")
    work = b.tmpdir("bench-lessons-")
    logs = work / "logs"
    logs.mkdir()
    room = b.seed_classroom(work / "data")
    private, public = signing.generate_key()
    t0 = time.monotonic()
    pkg = build_lesson(work, private)
    t_build = time.monotonic() - t0
    config = load_config(environ={}, overrides={"hub": {"data_dir": str(room.data_dir)}, "discovery": {"enabled": False},
                                                "district": {"public_key": public}, "storage": {"disk_reserve_mb": 1}})
    t0 = time.monotonic()
    result = import_package(config, connect(config.db_path), pkg)
    t_import = time.monotonic() - t0
    size_mb = pkg.stat().st_size / 2**20
    pkg.unlink()
    print(f"package {size_mb:.0f} MB: built+signed in {t_build:.1f} s, verified+imported in {t_import:.1f} s ({size_mb / t_import:.0f} MB/s)")
    db = connect(config.db_path)
    rows = dict(db.execute("SELECT path, sha256 FROM lesson_files WHERE lesson = ?", (result.lesson,)).fetchall())
    same = rows["big.mp4"]
    diff = [rows[f"part{i:02d}.mp4"] for i in range(DIFF_N)]

    port, nport = b.free_port(), b.free_port()
    hub = b.start_hub_cli(room.data_dir, port, logs, HUB_DISTRICT_PUBLIC_KEY=public)
    nginx = start_nginx(room.data_dir / "content" / "sha256", nport, work)
    load = os.getloadavg()[0]
    lines = [f"machine: {b.machine()}; load average at start {load:.1f}",
             f"load: wrk -c{CLIENTS} -t2 -d{args.duration}s x {args.rounds} alternating rounds (medians) on the same machine; "
             "hub = classroom-hub serve (its gthread workers)"]
    try:
        hub.wait_ready()
        nginx.wait_ready()
        b.login_and_enrol(room, port)
        auth = {"Authorization": f"Bearer {room.teacher_token}"}
        hub_path = lambda sha: f"/api/v1/content/sha256/{sha}"  # noqa: E731
        nginx_path = lambda sha: f"/c/{sha[:2]}/{sha}"  # noqa: E731
        cases = [(f"same {SAME_MB} MB file", [same]), (f"{DIFF_N} different {DIFF_MB} MB files", diff)]
        lines.append(f"  {'case':28} {'hub GB/s':>9} {'nginx GB/s':>11} {'ratio':>7} {'hub RSS growth':>15} {'hub req':>8} {'errors':>7}")
        for name, shas in cases:
            # warm the page cache for both equally
            wrk(nport, [nginx_path(s) for s in shas], {}, 2, work)
            hub_runs, nginx_runs, growths, reqs, errors = [], [], [], 0, 0
            hub_cpu: list[float] = []
            nginx_cpu: list[float] = []
            for rnd in range(args.rounds):
                # alternate who goes first: on a shared machine the background load drifts
                order = ["hub", "nginx"] if rnd % 2 == 0 else ["nginx", "hub"]
                for who in order:
                    if who == "hub":
                        rss_before, cpu_before = rss_mb(hub), cpu_s(hub)
                        with RssWatch(hub) as watch:
                            h = wrk(port, [hub_path(s) for s in shas], auth, args.duration, work)
                        hub_runs.append(h["bps"])
                        hub_cpu.append((cpu_s(hub) - cpu_before) / max(h["bps"] * args.duration / 1e9, 1e-9))
                        growths.append(watch.peak - rss_before)
                        reqs += h["requests"]
                        errors += h["non2xx"] + h["socket_errors"]
                    else:
                        cpu_before = cpu_s(nginx)
                        n = wrk(nport, [nginx_path(s) for s in shas], {}, args.duration, work)
                        nginx_runs.append(n["bps"])
                        nginx_cpu.append((cpu_s(nginx) - cpu_before) / max(n["bps"] * args.duration / 1e9, 1e-9))
            hb, nb, growth = b.pct(hub_runs, 50), b.pct(nginx_runs, 50), max(growths)
            r = hb / nb if nb else float("nan")
            lines.append(
                f"  {name:28} {hb / 1e9:9.2f} {nb / 1e9:11.2f} {r:6.2f}x {growth:12.1f} MB {reqs:8d} {errors:7d}   "
                f"target ratio >= 0.70: {'met' if r >= 0.7 else 'NOT met'}, RSS growth <= 50 MB: {'met' if growth <= 50 else 'NOT met'}"
            )
            lines.append(f"  {'':28} runs hub {', '.join(f'{x / 1e9:.2f}' for x in hub_runs)} / nginx {', '.join(f'{x / 1e9:.2f}' for x in nginx_runs)} GB/s; "
                         f"server CPU per GB served: hub {b.pct(hub_cpu, 50):.2f} s, nginx {b.pct(nginx_cpu, 50):.2f} s")
            print(lines[-2], lines[-1], sep="\n", flush=True)
        nginx.stop()
        lines += page_push(room, port, result.lesson, args.pushes)
    finally:
        hub.stop()
        nginx.stop()
    b.summary(lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
