"""District sync: one classroom's school day, the naive baseline, and a fleet.

    .venv/bin/python tests/bench/bench_sync.py [--fleet-hubs 311] [--fleet-scale 0.1] [--skip-fleet]

Everything real and on this machine: Mosquitto with the repository's district
configuration (mutual TLS, ACL), ``district-ingest`` processes writing to SQLite,
the hub's uplink agent reading a real hub database.

1. School day (tests/sync/schoolday.py: 55 students x 8 periods x 20 answers as
   xAPI statements, sign-ins, tablet + cart telemetry every minute, 6 h of
   transcript): time from agent start until the district acked everything, and
   bytes on the wire (MQTT PUBLISH packets of the batches, plus their PUBACKs)
   against the same events as uncompressed JSON (the body lines).
2. Naive baseline, same run, same events, same broker and TLS: one MQTT message
   per event (its JSON line), QoS 1, no batching, into a consumer that writes
   each event to SQLite. The consumer commits every 500 events (kinder to the
   baseline than a commit per event), so the comparison isolates the messaging.
3. Fleet: N hubs, each with its own certificate and a day of data (``--fleet-scale``
   scales the students per class: 1.0 is the full day above), all starting at
   once against one Mosquitto and two ingest instances sharing the load. Checks
   that every event arrived exactly once; reports total time and events/s, and
   the CPU seconds of the broker, each ingest and the hub agents.
4. ``--only-store HUBS``: the district's write path alone (decode + the SQLite
   store), HUBS x a full day, the batches of all hubs interleaved as they arrive:
   group commit (16 batches per transaction, as district-ingest does under load)
   against one commit per batch, in the same run, each into a fresh database.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402
import psutil  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from edge import outbox  # noqa: E402
from edge.storage.db import connect  # noqa: E402
from sync.district.store import open_store  # noqa: E402
from sync.wire.batch import event_line  # noqa: E402
from tests.sync.broker import Broker  # noqa: E402
from tests.sync.pki import Pki  # noqa: E402
from tests.sync.schoolday import write_day  # noqa: E402
from tests.sync.support import DISTRICT, IngestProc, make_hub, wait_for  # noqa: E402


def publish_packet_bytes(topic: str, payload_len: int) -> int:
    """Size of an MQTT v5 QoS 1 PUBLISH (no properties) plus its 4-byte PUBACK."""
    remaining = 2 + len(topic.encode()) + 2 + 1 + payload_len
    varint = 1 if remaining < 128 else 2 if remaining < 16384 else 3 if remaining < 2097152 else 4
    return 1 + varint + remaining + 4


def raw_json_bytes(db) -> tuple[int, int]:
    rows = outbox.read_after(db, 0, 10**9)
    return len(rows), sum(len(event_line(*r)) for r in rows)


def school_day(root: Path, pki: Pki) -> dict:
    broker = Broker(root / "broker", pki).start()
    url = f"sqlite:///{root / 'district.sqlite3'}"
    store = open_store(url)
    hub = make_hub(root, broker, pki, register=store, sync={"ack_timeout_s": 30.0})
    write_day(hub.db, hub.hub_id)
    n, raw = raw_json_bytes(hub.db)
    ing = IngestProc(broker, pki, url).start()
    try:
        agent = hub.agent()
        t0 = time.monotonic()
        agent.uplink.enable("bench")
        agent.uplink.start()
        wait_for(agent.uplink.drained, 300, "the day to be acked")
        elapsed = time.monotonic() - t0
        agent.uplink.stop()
        p = agent.uplink.progress
        wire = p.sent_bytes + p.sent_batches * publish_packet_bytes(agent.uplink.topics.batch, 0)
        seqs = store.event_seqs(hub.hub_id)
        assert seqs == list(range(1, n + 1)), "not exactly once"
    finally:
        ing.stop()
        broker.stop()
    return {"events": n, "raw_json": raw, "seconds": elapsed, "wire": wire, "batches": p.sent_batches, "resent": p.resent_batches}


def naive(root: Path, pki: Pki) -> dict:
    """One message per event, QoS 1, into a consumer writing SQLite."""
    broker = Broker(root / "broker-naive", pki).start()
    hub = make_hub(root, broker, pki)
    write_day(hub.db, hub.hub_id)
    rows = outbox.read_after(hub.db, 0, 10**9)
    topic = f"edu/{DISTRICT}/{hub.school}/{hub.hub_id}/up/batch"
    db = sqlite3.connect(root / "naive.sqlite3", isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, body BLOB)")
    got = 0
    pending: list[tuple[int, bytes]] = []
    done = threading.Event()
    lock = threading.Lock()

    def on_message(c, u, m):
        nonlocal got
        with lock:
            pending.append((got, m.payload))
            got += 1
            if len(pending) >= 500 or got == len(rows):
                db.execute("BEGIN")
                db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?)", pending)
                db.execute("COMMIT")
                pending.clear()
            if got == len(rows):
                done.set()

    def client(cn: str):
        cert, key = pki.issue(cn)
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"naive-{cn}", protocol=mqtt.MQTTv5)
        c.tls_set(ca_certs=str(pki.ca_file), certfile=str(cert), keyfile=str(key))
        c.max_inflight_messages_set(64)
        c.max_queued_messages_set(0)
        return c

    consumer = client("district-ingest")
    consumer.on_message = on_message
    subscribed = threading.Event()
    consumer.on_subscribe = lambda *a: subscribed.set()
    consumer.connect("127.0.0.1", broker.port)
    consumer.loop_start()
    consumer.subscribe(f"edu/{DISTRICT}/+/+/up/batch", qos=1)
    subscribed.wait(10)
    producer = client(hub.hub_id)
    producer.connect("127.0.0.1", broker.port)
    producer.loop_start()
    wire = 0
    t0 = time.monotonic()
    for r in rows:
        line = event_line(*r)
        wire += publish_packet_bytes(topic, len(line))
        producer.publish(topic, line, qos=1)
    ok = done.wait(600)
    elapsed = time.monotonic() - t0
    producer.loop_stop()
    consumer.loop_stop()
    broker.stop()
    assert ok, f"naive consumer got {got} of {len(rows)}"
    return {"events": len(rows), "seconds": elapsed, "wire": wire}


def _cpu(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


class CpuSampler:
    """Where the machine's cores went during the run, sampled once a second from /proc.

    Per named process group: CPU seconds, and seconds its threads were runnable but
    waiting for a core (``schedstat`` run delay: wanted CPU, did not get it). Whatever
    else ran on the machine (other users of this shared VM, kernel threads) is
    "others", named by its heaviest processes; what was left is idle.
    """

    def __init__(self, groups: dict[str, list[int]], interval: float = 1.0) -> None:
        self.groups = groups
        self.interval = interval
        self.rows: list[tuple[float, dict[str, float], dict[str, float], float, float]] = []  # t, cpu, run delay, machine busy, idle
        self.others: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ticks = os.sysconf("SC_CLK_TCK")
        self._mine = {pid for pids in groups.values() for pid in pids} | {os.getpid()}

    @staticmethod
    def _machine() -> tuple[float, float]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
        return user + nice + system + irq + softirq + steal, idle + iowait

    def _stat(self, pid: int | str) -> tuple[str, float]:
        with open(f"/proc/{pid}/stat") as f:
            head, _, tail = f.read().rpartition(")")
        parts = tail.split()
        return head.partition("(")[2], (int(parts[11]) + int(parts[12])) / self._ticks

    @staticmethod
    def _delays(pid: int, into: dict[int, float]) -> None:
        """Run delay so far of each thread of ``pid``, by thread id (threads come and go: compare per thread)."""
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    into[int(tid)] = int(f.read().split()[1]) / 1e9
            except (OSError, IndexError):
                pass

    def _snapshot(self) -> tuple[dict[str, float], dict[str, dict[int, float]], dict[int, tuple[str, float]], tuple[float, float]]:
        cpu: dict[str, float] = {}
        delay: dict[str, dict[int, float]] = {}
        for name, pids in self.groups.items():
            cpu[name], delay[name] = 0.0, {}
            for pid in pids:
                try:
                    cpu[name] += self._stat(pid)[1]
                    self._delays(pid, delay[name])
                except OSError:
                    pass
        rest = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) not in self._mine:
                try:
                    rest[int(entry)] = self._stat(entry)
                except OSError:
                    pass
        return cpu, delay, rest, self._machine()

    def start(self) -> CpuSampler:
        self._t0 = time.monotonic()
        self._last = self._snapshot()
        self._thread.start()
        return self

    def _sample(self) -> None:
        now = self._snapshot()
        (c0, d0, r0, m0), (c1, d1, r1, m1) = self._last, now
        self._last = now
        for pid, (comm, used) in r1.items():
            if pid in r0:
                self.others[comm] = self.others.get(comm, 0.0) + used - r0[pid][1]
        waited = {k: sum(d - d0[k].get(tid, 0.0) for tid, d in d1[k].items()) for k in d1}
        self.rows.append((time.monotonic() - self._t0, {k: c1[k] - c0[k] for k in c1}, waited,
                          (m1[0] - m0[0]) / self._ticks, (m1[1] - m0[1]) / self._ticks))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()

    def report(self, elapsed: float, buckets: int = 10) -> str:
        """The run cut into ``buckets`` slices: cores used per group (and runnable-but-waiting), others, idle."""
        rows = [r for r in self.rows if r[0] <= elapsed + self.interval]
        if not rows:
            return "  (no CPU samples)"
        cores = os.cpu_count() or 1
        names = list(self.groups)
        lines = [f"  cores in use per slice of the run ({cores} cores; [waiting]: runnable, no core free; others: the rest of the machine):",
                 "    " + f"{'seconds':>11} " + " ".join(f"{n:>16}" for n in names) + f" {'others':>7} {'idle':>5}"]
        size = max(1, len(rows) // buckets + (len(rows) % buckets > 0))
        for i in range(0, len(rows), size):
            chunk = rows[i:i + size]
            start = rows[i - 1][0] if i else 0.0
            span = chunk[-1][0] - start
            use = {n: sum(r[1][n] for r in chunk) / span for n in names}
            wait = {n: sum(r[2][n] for r in chunk) / span for n in names}
            busy, idle = sum(r[3] for r in chunk) / span, sum(r[4] for r in chunk) / span
            lines.append("    " + f"{start:5.0f}-{chunk[-1][0]:5.0f} " + " ".join(f"{use[n]:8.2f} [{wait[n]:5.2f}]" for n in names)
                         + f" {max(0.0, busy - sum(use.values())):7.2f} {idle:5.2f}")
        top = sorted(self.others.items(), key=lambda kv: -kv[1])[:3]
        lines.append("    others, heaviest: " + ", ".join(f"{comm} {used:.1f} s" for comm, used in top))
        return "\n".join(lines)


def _fleet_worker(configs: list, go, results) -> None:
    from sync.agent.service import build_agent

    agents = [build_agent(c) for c in configs]
    results.put("ready")
    go.wait()
    cpu0 = time.process_time()
    for a in agents:
        a.uplink.enable("bench")
        a.uplink.start()
    # Only agents not yet drained are asked again: the harness's own polling stays small.
    waiting = list(agents)
    while waiting:
        waiting = [a for a in waiting if not a.uplink.drained()]
        time.sleep(0.2)
    results.put((time.monotonic(), time.process_time() - cpu0, sum(a.uplink.progress.resent_batches for a in agents),
                 sum(a.uplink.progress.sent_batches for a in agents)))
    for a in agents:
        a.uplink.stop()


def fleet(root: Path, pki: Pki, hubs: int, scale: float, slices: int = 10, per_process: int = 40, inflight: int = 4) -> dict:
    broker = Broker(root / "broker-fleet", pki).start()
    url = f"sqlite:///{root / 'fleet.sqlite3'}"
    store = open_store(url)
    # One day written once, copied per hub with ids made unique (writing 311 days
    # one by one would take longer than the sync being measured).
    (root / "template").mkdir(parents=True)
    (root / "fleet").mkdir()
    template = make_hub(root / "template", broker, pki)
    n_per_hub = write_day(template.db, template.hub_id, scale=scale)
    template.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    made = []
    t_setup = time.monotonic()
    for i in range(hubs):
        # 311 hubs x 4 batches in flight queue for minutes at the district: a 30 s ack
        # time-out would re-send batches that are merely waiting their turn.
        h = make_hub(root / "fleet", broker, pki, sync={"inflight_batches": inflight, "ack_timeout_s": 300.0})
        h.db.conn.close()
        shutil.copy(template.config.db_path, h.config.db_path)
        for suffix in ("-wal", "-shm"):
            Path(str(h.config.db_path) + suffix).unlink(missing_ok=True)
        db = connect(h.config.db_path)
        db.conn.execute("UPDATE hub_meta SET value = ? WHERE key = 'hub_id'", (h.hub_id,))
        prefix = f"{i:08x}"
        db.conn.execute(
            "UPDATE outbox SET payload = replace(payload, '\"id\":\"' || event_id, '\"id\":\"' || ? || substr(event_id, 9)), "
            "event_id = ? || substr(event_id, 9)", (prefix, prefix),
        )
        h.db = db
        store.register_hub(h.hub_id, DISTRICT, h.school)
        made.append(h)
    setup_s = time.monotonic() - t_setup
    for h in made:
        h.db.conn.close()
    ingests = [IngestProc(broker, pki, url, str(i)).start() for i in (1, 2)]
    # The hubs run in worker processes of ~40 each: one process holding 311 MQTT
    # sockets and hub databases passes fd 1024, which paho's select() cannot watch.
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    results = ctx.Queue()
    groups = [made[i:i + per_process] for i in range(0, len(made), per_process)]
    workers = [ctx.Process(target=_fleet_worker, args=([h.config for h in g], go, results), daemon=True) for g in groups]
    for w in workers:
        w.start()
    try:
        for _ in workers:
            assert results.get(timeout=300) == "ready"
        cpu0 = {"broker": _cpu(broker.proc.pid), **{f"ingest {i + 1}": _cpu(ing.proc.pid) for i, ing in enumerate(ingests)}}
        load0 = os.getloadavg()
        sampler = CpuSampler({"agents": [w.pid for w in workers], **{f"ingest {i + 1}": [ing.proc.pid] for i, ing in enumerate(ingests)},
                              "broker": [broker.proc.pid]})
        t0 = time.monotonic()
        sampler.start()
        go.set()
        finished = [results.get(timeout=3600) for _ in workers]
        elapsed = max(f[0] for f in finished) - t0  # CLOCK_MONOTONIC is one clock for every process
        sampler.stop()
        cpu = {k: _cpu(p) - cpu0[k] for k, p in [("broker", broker.proc.pid), *[(f"ingest {i + 1}", ing.proc.pid) for i, ing in enumerate(ingests)]]}
        cpu["hub agents"] = sum(f[1] for f in finished)
        resent, sent = sum(f[2] for f in finished), sum(f[3] for f in finished)
        load1 = os.getloadavg()
    finally:
        for w in workers:
            w.join(30)
            if w.is_alive():
                w.kill()
        for ing in ingests:
            ing.stop()
        broker.stop()
    db_bytes = sum(Path(str(root / "fleet.sqlite3") + suffix).stat().st_size for suffix in ("", "-wal") if Path(str(root / "fleet.sqlite3") + suffix).exists())
    counts = store.counts()
    total = n_per_hub * hubs
    exact = counts["events"] == total and counts["duplicate_events"] == 0 and counts["batches"] > 0
    return {"hubs": hubs, "events": total, "per_hub": n_per_hub, "seconds": elapsed, "exactly_once": exact, "setup_s": setup_s,
            "district_events": counts["events"], "cpu": cpu, "load": (load0[0], load1[0]), "sent": sent, "resent": resent, "db_bytes": db_bytes,
            "timeline": sampler.report(elapsed, slices)}


def _fleet_line(fl: dict) -> str:
    cpu = ", ".join(f"{k} {v:.1f}" for k, v in fl["cpu"].items())
    return (f"fleet: {fl['hubs']} hubs x {fl['per_hub']} events = {fl['events']} in {fl['seconds']:.1f} s "
            f"({fl['events'] / fl['seconds']:.0f} events/s), exactly once: {fl['exactly_once']} ({fl['district_events']} in the district), "
            f"setup {fl['setup_s']:.0f} s, {fl['sent']} batches sent ({fl['resent']} re-sent), district SQLite + WAL {fl['db_bytes'] / 1e9:.1f} GB\n"
            f"  CPU seconds during the sync: {cpu} (sum {sum(fl['cpu'].values()):.1f} on {os.cpu_count()} cores: "
            f"{sum(fl['cpu'].values()) / fl['seconds']:.2f} cores busy on average, "
            f"{1e6 * sum(fl['cpu'].values()) / fl['events']:.1f} us per event); "
            f"load average 1 min {fl['load'][0]:.1f} before, {fl['load'][1]:.1f} after\n{fl['timeline']}")


def store_path(root: Path, hubs: int) -> dict:
    """District write path alone: decode + ingest_many, grouped vs one commit per batch."""
    from sync.district.ingest import no_gc
    from sync.wire.batch import decode, encode

    root.mkdir(parents=True)
    pki = Pki(root / "pki")
    template = make_hub(root, Broker(root / "unused-broker", pki), pki, identity=False)
    write_day(template.db, template.hub_id)
    rows = outbox.read_after(template.db, 0, 10**9)
    messages = []
    for h in range(hubs):
        # Each hub its own event ids: statement ids are a district-wide key.
        prefix = f"{h:08x}"
        hub_id = f"{prefix}-0000-4000-8000-000000000000"
        mine = [(seq, prefix + eid[8:], *rest) for seq, eid, *rest in rows]
        batches = []
        for i in range(0, len(mine), 1900):  # what the agent's limits cut a day into
            chunk = mine[i:i + 1900]
            raw = b"".join(event_line(*r) for r in chunk)
            batches.append(encode(DISTRICT, "school-1", hub_id, chunk[0][0], chunk[-1][0], len(chunk), raw, 0.0))
        messages.append(batches)
    # Batches interleaved across hubs, as they reach the district.
    order = [m for group in zip(*messages, strict=True) for m in group]
    out = {}
    for label, group_size in (("one commit per batch", 1), ("group commit (16)", 16)):
        store = open_store(f"sqlite:///{root / (str(group_size) + '.sqlite3')}")
        t0, c0 = time.monotonic(), time.process_time()
        n = 0
        for i in range(0, len(order), group_size):
            with no_gc():  # as district-ingest does around a group
                batches = [decode(m, 8 * 1_048_576, 20_000) for m in order[i:i + group_size]]
                store.ingest_many([(b.header, b.events) for b in batches], time.time())
                n += sum(b.header.count for b in batches)
        wall, cpu = time.monotonic() - t0, time.process_time() - c0
        counts = store.counts()
        store.close()
        out[label] = {"events": n, "wall": wall, "cpu_us": cpu / n * 1e6, "stored": counts["events"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fleet-hubs", type=int, default=311)
    ap.add_argument("--fleet-scale", type=float, default=0.1)
    ap.add_argument("--skip-fleet", action="store_true")
    ap.add_argument("--only-fleet", action="store_true", help="Skip the school day and the baseline.")
    ap.add_argument("--hubs-per-process", type=int, default=40, help="Fleet: simulated hubs per agent process.")
    ap.add_argument("--fleet-inflight", type=int, default=4, help="Fleet: batches each hub keeps in flight.")
    ap.add_argument("--slices", type=int, default=10, help="Fleet: the per-second CPU samples summed into this many slices.")
    ap.add_argument("--only-store", type=int, metavar="HUBS", help="Only the district write path, HUBS x a full day.")
    args = ap.parse_args()
    # run_all.py stops a benchmark with SIGINT/SIGTERM: unwind so brokers and ingests are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    try:
        if args.only_store:
            res = store_path(root / "store", args.only_store)
            for label, r in res.items():
                print(f"district store, {label}: {r['events']} events in {r['wall']:.1f} s = {r['events'] / r['wall']:.0f} events/s, "
                      f"{r['cpu_us']:.1f} us CPU per event (decode + store), {r['stored']} stored")
            a, b = res.values()
            print(f"group commit vs one commit per batch: {a['wall'] / b['wall']:.2f}x faster; load average {os.getloadavg()[0]:.1f}")
            return
        pki = Pki(root / "pki")
        if args.only_fleet:
            fl = fleet(root / "fleet-run", pki, args.fleet_hubs, args.fleet_scale, args.slices, args.hubs_per_process, args.fleet_inflight)
            print(_fleet_line(fl))
            return
        day = school_day(root / "day", pki)
        print(f"school day: {day['events']} events, {day['raw_json'] / 1e6:.2f} MB JSON -> {day['wire'] / 1e6:.2f} MB on the wire "
              f"in {day['batches']} batches ({day['resent']} re-sent), all acked in {day['seconds']:.2f} s")
        base = naive(root / "naive", pki)
        print(f"naive baseline: {base['events']} messages, {base['wire'] / 1e6:.2f} MB on the wire, {base['seconds']:.2f} s")
        fl = None
        if not args.skip_fleet:
            fl = fleet(root / "fleet-run", pki, args.fleet_hubs, args.fleet_scale, args.slices, args.hubs_per_process, args.fleet_inflight)
            print(_fleet_line(fl))
        print("=== SUMMARY ===")
        print(f"school day to all acked       {day['seconds']:8.2f} s     (target <= 5 s)")
        print(f"wire / uncompressed JSON      {100 * day['wire'] / day['raw_json']:8.1f} %     (target <= 20 %)")
        print(f"naive baseline time           {base['seconds']:8.2f} s     ratio {base['seconds'] / day['seconds']:.1f}x (target >= 5x)")
        print(f"naive baseline bytes          {base['wire'] / 1e6:8.2f} MB    ratio {base['wire'] / day['wire']:.1f}x (target >= 10x)")
        if fl:
            print(f"fleet {fl['hubs']} hubs x {fl['per_hub']} events  {fl['seconds']:8.1f} s     {fl['events'] / fl['seconds']:.0f} events/s, "
                  f"exactly once: {fl['exactly_once']} (target <= 120 s; day scale {args.fleet_scale})")
        print("=== END SUMMARY ===")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
