"""Hub appliance figures: cold start, idle memory, request floor.

    .venv/bin/python tests/bench/bench_hub.py [--starts 5] [--duration 10]

- Cold start: spawn ``classroom-hub serve`` (the deployed command, HUB_* env, mDNS off)
  on a seeded data directory and poll ``GET /readyz`` every 10 ms until 200; median and max
  of N fresh starts. Also one first boot on an empty data directory (migrations included).
  Target: <= 3 s.
- Idle memory after 5 s idle: sum of RSS over the process tree (arbiter + workers; counts
  pages shared copy-on-write by preload once per process) and sum of PSS from
  /proc/<pid>/smaps_rollup (shared pages split between sharers, i.e. counted once).
  Target: <= 120 MB.
- Request floor: ``wrk -c55 -t2 -d10s --latency`` on ``GET /api/v1/me`` with a teacher
  Bearer token.

Baseline, same run: the same gunicorn arbiter and settings (HubApplication) serving a bare
WSGI function that answers 200 (tests/bench/_launch.py --variant trivial-gthread). The
ratio shows what Flask/APIFlask + session auth + SQLite cost on top of the server.
"""

from __future__ import annotations

import argparse
import statistics
import time

import _benchlib as b


def cold_starts(n: int, start, log_dir) -> list[float]:
    times = []
    for _ in range(n):
        port = b.free_port()
        srv = start(port)
        try:
            times.append(srv.wait_ready())
        finally:
            srv.stop()
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10, help="wrk seconds")
    ap.add_argument("--idle", type=float, default=5.0, help="seconds idle before measuring memory")
    args = ap.parse_args()

    print(f"machine: {b.machine()}")
    print("load generator: wrk (C, 2 threads) on the same machine")
    work = b.tmpdir("bench-hub-")
    logs = work / "logs"
    logs.mkdir()
    data = work / "data"
    room = b.seed_classroom(data)

    # -- cold start ----------------------------------------------------------------------
    hub_starts = cold_starts(args.starts, lambda port: b.start_hub_cli(data, port, logs), logs)
    first_boot = cold_starts(1, lambda port: b.start_hub_cli(work / f"empty-{port}", port, logs), logs)[0]
    triv_starts = cold_starts(args.starts, lambda port: b.start_variant("trivial-gthread", data, port, logs), logs)
    hub_med, triv_med = statistics.median(hub_starts), statistics.median(triv_starts)
    print(f"cold start hub:     {', '.join(f'{t:.2f}' for t in hub_starts)} s")
    print(f"cold start trivial: {', '.join(f'{t:.2f}' for t in triv_starts)} s")
    print(f"first boot (empty data dir, migrations): {first_boot:.2f} s")

    # -- idle memory + request floor: the hub ---------------------------------------------
    port = b.free_port()
    hub = b.start_hub_cli(data, port, logs)
    try:
        hub.wait_ready()
        b.login_and_enrol(room, port, need_device=False)
        time.sleep(args.idle)
        hub_rss, hub_pss, hub_n = hub.memory()
        auth = {"Authorization": f"Bearer {room.teacher_token}"}
        st, me = b.api(port, "GET", "/api/v1/me", headers=auth)
        assert st == 200, (st, me)
        hub_w = b.run_wrk(port, "/api/v1/me", auth, duration_s=args.duration)
        hub_rss_load, hub_pss_load, _ = hub.memory()
    finally:
        hub.stop()

    # -- baseline: trivial WSGI app under the same gunicorn config ----------------------------
    port = b.free_port()
    triv = b.start_variant("trivial-gthread", data, port, logs)
    try:
        triv.wait_ready()
        time.sleep(args.idle)
        triv_rss, triv_pss, triv_n = triv.memory()
        triv_w = b.run_wrk(port, "/api/v1/me", auth, duration_s=args.duration)
    finally:
        triv.stop()

    ok_start = "OK" if hub_med <= 3.0 and max(hub_starts) <= 3.0 else "OVER TARGET"
    ok_mem = "OK" if hub_rss <= 120 else ("OK by PSS, over by RSS sum" if hub_pss <= 120 else "OVER TARGET")
    def row(label: str, hub_v: float, base_v: float, fmt_: str = ".2f", note: str = "") -> str:
        return f"{label:44} {hub_v:12{fmt_}} {base_v:12{fmt_}} {b.ratio(hub_v, base_v):>7}   {note}".rstrip()

    n = args.starts
    lines = [
        f"machine: {b.machine()}",
        f"load generator: wrk -c55 -t2 -d{args.duration}s --latency (same machine)",
        f"{'figure':44} {'hub':>12} {'baseline':>12} {'ratio':>7}   (baseline = trivial WSGI app, same gunicorn gthread config)",
        row(f"cold start to /readyz, median of {n} (s)", hub_med, triv_med, note=f"target <= 3 s: {ok_start}"),
        row(f"cold start to /readyz, max of {n} (s)", max(hub_starts), max(triv_starts)),
        f"{'first boot, empty data dir (s)':44} {first_boot:12.2f}",
        row(f"idle RSS sum, {hub_n} processes (MB)", hub_rss, triv_rss, ".1f", f"target <= 120 MB: {ok_mem}"),
        row("idle PSS sum (MB, shared pages counted once)", hub_pss, triv_pss, ".1f"),
        f"{'RSS / PSS sum after the load run (MB)':44} {f'{hub_rss_load:.1f}/{hub_pss_load:.1f}':>12}",
        row("GET /api/v1/me, 55 clients: req/s", hub_w.rps, triv_w.rps, ".0f"),
        row("  p50 latency (ms)", hub_w.p50, triv_w.p50),
        row("  p99 latency (ms)", hub_w.p99, triv_w.p99),
        f"{'  errors (socket + non-2xx)':44} {hub_w.errors:12d} {triv_w.errors:12d}",
    ]
    if hub_n != triv_n:
        lines.append(f"note: process counts differ (hub {hub_n}, baseline {triv_n})")
    b.summary(lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
