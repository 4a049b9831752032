"""Which WSGI server: 60 open SSE streams + 55 clients hammering an authenticated GET.

    .venv/bin/python tests/bench/bench_wsgi.py [--duration 10] [--only gthread,gevent]

Same app (edge.app.create_app), same data directory, same machine, one server at a time:
- ``gthread``    OURS: ``classroom-hub serve`` as deployed (2 workers x 96 threads, preload).
- ``gthread-32`` our config with 32 threads per worker (is the thread count sized right?).
- ``sync``       gunicorn sync workers, 2*cores+1 = 5 (gunicorn's usual recommendation).
- ``gevent``     gunicorn gevent workers, 2 workers, 1000 connections each (preload off).
- ``waitress``   waitress, one process, 192 threads (= our 2 x 96), connection_limit 1000.
All but ``gthread`` are started by tests/bench/_launch.py with the hub's own gunicorn settings.

Per server: open 60 teacher SSE streams on ``GET /api/v1/events`` (one selector thread in
this process), run ``wrk -c55 -t2 -d10s --latency`` on ``GET /api/v1/me`` (teacher Bearer),
and half-way through sign a student in on an enrolled tablet (``POST /api/v1/signin``), which
publishes ``student.signed_in`` on the class channel. Reported: req/s, p50/p99, errors, how
many of the 60 streams connected, stayed open and received the event (and how late), the
sign-in's own latency, RSS/PSS of the process tree under load; ratios against ours.
"""

from __future__ import annotations

import argparse
import threading
import time

import _benchlib as b

VARIANTS = {
    # name: (launcher variant or "cli", workers, threads, description)
    "gthread": ("cli", None, None, "gunicorn gthread 2x96 (OURS)"),
    "gthread-32": ("gthread", None, 32, "gunicorn gthread 2x32"),
    "sync": ("sync", 5, None, "gunicorn sync x5"),
    "gevent": ("gevent", None, None, "gunicorn gevent x2"),
    "waitress": ("waitress", None, 192, "waitress 1 proc x192 thr"),
}
SSE_STREAMS = 60
CLIENTS = 55


def measure(name: str, room: b.Classroom, logs, duration: int, verbose: bool = False) -> dict:
    launcher, workers, threads, desc = VARIANTS[name]
    port = b.free_port()
    if launcher == "cli":
        srv = b.start_hub_cli(room.data_dir, port, logs)
    else:
        srv = b.start_variant(launcher, room.data_dir, port, logs, workers=workers, threads=threads)
    res: dict = {"name": name, "desc": desc}
    pool = None
    try:
        srv.wait_ready(timeout=60)
        if not room.teacher_token:
            b.login_and_enrol(room, port)
        auth = {"Authorization": f"Bearer {room.teacher_token}"}
        pool = b.SSEPool(port, auth, SSE_STREAMS)
        res["sse_connected"] = pool.open(wait_s=5.0)
        owners = b.owner_of_ports(srv.worker_pids(), port, [c.local_port for c in pool.conns]) if launcher != "waitress" else {}
        per_worker: dict[int, int] = {}
        for pid in owners.values():
            per_worker[pid] = per_worker.get(pid, 0) + 1
        res["sse_split"] = "/".join(str(v) for v in sorted(per_worker.values(), reverse=True)) or "-"

        wrk_box: dict = {}
        t = threading.Thread(target=lambda: wrk_box.setdefault("r", b.run_wrk(port, "/api/v1/me", auth, connections=CLIENTS, duration_s=duration)))
        t.start()
        prober = b.Prober(port, "/api/v1/me", auth)
        prober.start()
        time.sleep(duration / 2)
        before = [pool.count(c, "student.signed_in") for c in pool.conns]
        signer = b.SignIn(room, port, timeout=5.0)
        status, t_sent, t_ack = signer.once()
        signer.close()
        res["signin_status"] = status
        res["signin_ms"] = (t_ack - t_sent) * 1000
        time.sleep(duration * 0.3)
        res["rss"], res["pss"], res["procs"] = srv.memory()
        t.join()
        prober.stop()
        res["probe"] = f"{prober.ok()}/{len(prober.results)}"
        res["probe_max"] = prober.max_ms()
        time.sleep(1.0)  # let a late event land
        w: b.WrkResult = wrk_box["r"]
        res["wrk"] = w
        if verbose:
            print(w.raw)
        got, late = 0, []
        for c, n0 in zip(pool.conns, before, strict=True):
            new = [e for e in c.events if e[1] == "student.signed_in"][n0:]
            if new and status == 201:
                got += 1
                late.append((new[0][2] - t_ack) * 1000)
        res["sse_open_end"] = pool.connected()
        res["sse_got_event"] = got
        res["event_max_ms"] = max(late) if late else float("nan")
    except Exception as exc:  # one server failing must not hide the others
        res["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    finally:
        if pool is not None:
            pool.close()
        srv.stop()
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--only", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS))
    ap.add_argument("-v", "--verbose", action="store_true", help="print wrk's own output")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n]
    if "gthread" not in names:
        names.insert(0, "gthread")  # the reference every ratio is against

    print(f"machine: {b.machine()}")
    work = b.tmpdir("bench-wsgi-")
    logs = work / "logs"
    logs.mkdir()
    room = b.seed_classroom(work / "data")
    results = []
    for name in names:
        print(f"-- {name}: {VARIANTS[name][3]}", flush=True)
        r = measure(name, room, logs, args.duration, args.verbose)
        results.append(r)
        if "error" in r:
            print(f"   error: {r['error']}")
        else:
            w = r["wrk"]
            print(f"   {w.rps:.0f} req/s p50 {w.p50:.1f} ms p99 {w.p99:.1f} ms errors {w.errors}; SSE {r['sse_connected']}/{SSE_STREAMS} "
                  f"connected (split {r['sse_split']}), {r['sse_open_end']} open at end, {r['sse_got_event']} got the event; "
                  f"probes {r['probe']} (max {r['probe_max']:.0f} ms); sign-in {r['signin_status']} in {r['signin_ms']:.0f} ms; "
                  f"RSS {r['rss']:.0f} MB", flush=True)

    ours = results[0]
    ow = ours.get("wrk")
    lines = [
        f"machine: {b.machine()}",
        f"load: wrk -c{CLIENTS} -t2 -d{args.duration}s --latency GET /api/v1/me (teacher Bearer) + {SSE_STREAMS} SSE streams held open + 1 sign-in mid-run",
        f"{'server':26} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'SSE up':>7} {'split':>7} {'open@end':>8} {'got evt':>7} "
        f"{'evt ms':>7} {'signin ms':>9} {'probes ok':>9} {'probe max':>9} {'RSS MB':>7} {'PSS MB':>7} {'req/s vs ours':>13} {'p99 vs ours':>11}",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"{r['desc']:26} ERROR {r['error']}")
            continue
        w = r["wrk"]
        sign = f"{r['signin_ms']:.0f}" if r["signin_status"] == 201 else f"FAIL({r['signin_status']})"
        lines.append(
            f"{r['desc']:26} {w.rps:7.0f} {w.p50:8.1f} {w.p99:8.1f} {w.errors:7d} {r['sse_connected']:7d} {r['sse_split']:>7} {r['sse_open_end']:8d} "
            f"{r['sse_got_event']:7d} {r['event_max_ms']:7.1f} {sign:>9} {r['probe']:>9} {r['probe_max']:9.0f} {r['rss']:7.0f} {r['pss']:7.0f} "
            f"{b.ratio(w.rps, ow.rps) if ow else 'n/a':>13} {b.ratio(w.p99, ow.p99) if ow else 'n/a':>11}"
        )
    lines.append("SSE up = streams answered 200 within 5 s; open@end = still open after the run; got evt = received the mid-run student.signed_in;")
    lines.append("probes = GET /api/v1/me on a NEW connection every 0.5 s during the run, 3 s timeout (wrk cannot see requests that never finish);")
    lines.append("evt ms = slowest stream's arrival after the sign-in's ack; RSS/PSS = sums over the server's process tree under load.")
    b.summary(lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
