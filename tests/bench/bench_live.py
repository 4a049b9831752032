"""Live-event latency across gunicorn workers (edge/live/bus.py: SQLite row + wake-up datagram).

    .venv/bin/python tests/bench/bench_live.py [--events 100] [--listeners 60] [--load-seconds 10]

The hub runs as deployed (``classroom-hub serve``, its gthread workers). 60 teacher SSE
streams (``GET /api/v1/events``) are opened and mapped to the worker holding each (by the
accepted socket in /proc), so both workers hold listeners. Writes are student sign-ins
(``POST /api/v1/signin`` on an enrolled tablet), which publish ``student.signed_in`` on
the class channel; they alternate between two keep-alive connections held by different
workers. One event at a time: the next write starts once every listener has the event
(or after 2 s, counted as missed).

Latency = arrival on a listener (stamped by one selector thread as the bytes arrive) minus
the write's acknowledgement (its HTTP response received). It can be slightly negative: the
hub publishes before it sends the response. Reported over all (event, listener) pairs, and
per event for the LAST listener (everyone has it); split into listeners on the writer's
worker (in-process fan-out: the baseline) and on the other worker (the datagram wake-up
crossing processes), with the ratio. Phase 2 repeats it while wrk drives 55 clients on
``GET /api/v1/me`` (a burst in class).
"""

from __future__ import annotations

import argparse
import threading
import time

import _benchlib as b

TYPE = "student.signed_in"


def writers_on_both(room: b.Classroom, srv: b.Server, port: int) -> list[tuple[b.SignIn, int]]:
    """Keep-alive sign-in connections, one per worker if the kernel lets us land on both."""
    by_worker: dict[int, b.SignIn] = {}
    spare = []
    for _ in range(20):
        s = b.SignIn(room, port, timeout=10)
        local, _ = s.connect()
        time.sleep(0.05)  # let a worker accept it
        owner = b.owner_of_ports(srv.worker_pids(), port, [local]).get(local)
        if owner is not None and owner not in by_worker:
            by_worker[owner] = s
        else:
            spare.append(s)
        if len(by_worker) >= 2:
            break
    for s in spare:
        s.close()
    return [(s, pid) for pid, s in by_worker.items()]


def run_events(pool: b.SSEPool, owners: dict[int, int], writers: list[tuple[b.SignIn, int]], n: int, stop_at: float | None = None) -> dict:
    r: dict = {k: [] for k in ("same", "cross", "last", "same_s", "cross_s", "last_s", "write")}
    r.update(missed=0, failed=0, done=0)
    live = [c for c in pool.conns if c.connected_at is not None and c.closed_at is None]
    for i in range(n):
        if stop_at is not None and time.monotonic() > stop_at:
            break
        signer, wpid = writers[i % len(writers)]
        before = {id(c): pool.count(c, TYPE) for c in live}
        status, t_sent, t_ack = signer.once()
        if status != 201:
            r["failed"] += 1
            continue
        r["done"] += 1
        r["write"].append((t_ack - t_sent) * 1000)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and any(pool.count(c, TYPE) <= before[id(c)] for c in live):
            time.sleep(0.001)
        arrivals = []
        for c in live:
            new = [e for e in c.events if e[1] == TYPE][before[id(c)]:]
            if not new:
                r["missed"] += 1
                continue
            arrivals.append(new[0][2])
            group = "same" if owners.get(c.local_port) == wpid else "cross"
            r[group].append((new[0][2] - t_ack) * 1000)
            r[group + "_s"].append((new[0][2] - t_sent) * 1000)
        if arrivals:
            r["last"].append((max(arrivals) - t_ack) * 1000)
            r["last_s"].append((max(arrivals) - t_sent) * 1000)
        time.sleep(0.02)
    return r


def fmt(label: str, r: dict) -> list[str]:
    p = b.pct
    rows = [
        f"{label}: {r['done']} events written ({r['failed']} failed), {r['missed']} (event, listener) deliveries missed (>2 s)",
        f"  {'latency (ms)':44} {'from ack: p50':>13} {'p99':>8} {'max':>8} {'from sent: p50':>14} {'p99':>8} {'n':>6}",
    ]
    for name, key in (
        ("listeners on the OTHER worker (cross-process)", "cross"),
        ("listeners on the writer's worker (baseline)", "same"),
        ("last listener per event (all have it)", "last"),
    ):
        v, vs = r[key], r[key + "_s"]
        rows.append(f"  {name:44} {p(v, 50):13.2f} {p(v, 99):8.2f} {max(v, default=float('nan')):8.2f} {p(vs, 50):14.2f} {p(vs, 99):8.2f} {len(v):6d}")
    w = r["write"]
    rows.append(f"  {'the write itself: sent -> ack':44} {'':13} {'':8} {'':8} {p(w, 50):14.2f} {p(w, 99):8.2f} {len(w):6d}")
    rows.append(
        f"  cross-worker vs same-worker (from sent): p50 {b.ratio(p(r['cross_s'], 50), p(r['same_s'], 50))}, "
        f"p99 {b.ratio(p(r['cross_s'], 99), p(r['same_s'], 99))}"
    )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=100)
    ap.add_argument("--listeners", type=int, default=60)
    ap.add_argument("--load-seconds", type=int, default=10, help="phase 2 (under wrk load) length; 0 skips it")
    args = ap.parse_args()

    print(f"machine: {b.machine()}")
    work = b.tmpdir("bench-live-")
    logs = work / "logs"
    logs.mkdir()
    room = b.seed_classroom(work / "data")
    port = b.free_port()
    srv = b.start_hub_cli(room.data_dir, port, logs)
    pool = None
    writers: list[tuple[b.SignIn, int]] = []
    try:
        srv.wait_ready()
        b.login_and_enrol(room, port)
        auth = {"Authorization": f"Bearer {room.teacher_token}"}
        pool = b.SSEPool(port, auth, args.listeners)
        up = pool.open(wait_s=10)
        owners = b.owner_of_ports(srv.worker_pids(), port, [c.local_port for c in pool.conns])
        split: dict[int, int] = {}
        for pid in owners.values():
            split[pid] = split.get(pid, 0) + 1
        print(f"{up}/{args.listeners} listeners up; per worker: {split}")
        writers = writers_on_both(room, srv, port)
        print(f"writer connections on workers: {[pid for _, pid in writers]}")
        if len(split) < 2:
            print("WARNING: all listeners landed on one worker; cross-worker figures will be empty")

        idle = run_events(pool, owners, writers, args.events)
        lines = [
            f"machine: {b.machine()}",
            f"hub: classroom-hub serve, gthread workers x 96 threads; {up} SSE listeners split {'/'.join(map(str, sorted(split.values(), reverse=True)))} "
            f"over {len(split)} workers; writes alternate over {len(writers)} worker(s)",
        ]
        lines += fmt(f"idle hub, {args.events} events one at a time", idle)

        if args.load_seconds > 0:
            box: dict = {}
            t = threading.Thread(target=lambda: box.setdefault("r", b.run_wrk(port, "/api/v1/me", auth, duration_s=args.load_seconds)))
            t.start()
            time.sleep(0.5)
            loaded = run_events(pool, owners, writers, args.events, stop_at=time.monotonic() + args.load_seconds - 1.0)
            t.join()
            w: b.WrkResult = box["r"]
            lines += fmt(f"under wrk -c55 GET /api/v1/me ({w.rps:.0f} req/s, p99 {w.p99:.1f} ms), events during {args.load_seconds} s", loaded)
        closed = sum(1 for c in pool.conns if c.closed_at is not None)
        lines.append(f"listeners closed during the run: {closed}")
        b.summary(lines)
    finally:
        for s, _ in writers:
            s.close()
        if pool is not None:
            pool.close()
        srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
