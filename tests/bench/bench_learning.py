"""Personalised learning benchmark: model quality, latency, and the recommender in a simulated class.

    .venv/bin/python tests/bench/bench_learning.py [--skip-pybkt] [--sim-seeds 3]

1. AUC on the DKT test split of ASSISTments 2009: our exported ONNX model, stepped
   one answer at a time as on the hub, against pyBKT fitted on the same training
   split in the same run (pyBKT needs numpy<2 etc., so it runs in its own virtual
   environment: ``$PYBKT_PYTHON``, else one made in ~/.cache/classroom-hub/pybkt-venv).
   Both are scored on the same rows: every next answer whose skill occurs in
   training. Also after removing consecutive duplicate rows, and on the rows where
   the skill changes from one answer to the next (no repeated row can leak there).
2. Latency on a real SQLite hub database (synchronous=FULL) with 55 students: one
   answer to updated mastery (baseline: recomputing the student from history);
   recommendations for the class (baseline: one request per student).
3. Simulation: 55 learners per run with known skill growth on a 20-point graph;
   our recommender against random practice and easiest-first; knowledge points
   truly mastered after the same number of exercises.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from edge.config import load_config  # noqa: E402
from edge.learning import graph as graph_mod  # noqa: E402
from edge.learning.kt_model import KTModel, bundled_manifest_path  # noqa: E402
from edge.learning.recommend import Policy, recommend  # noqa: E402
from edge.learning.service import Item, _rebuild, record_answer, register_items  # noqa: E402
from edge.storage.db import Database, connect, transaction  # noqa: E402
from edge.storage.setup import prepare_storage  # noqa: E402
from models.kt.dataset import DEFAULT_DIR, TEST_FILE, TRAIN_FILE, Sequence, auc, dedup_consecutive, read_split  # noqa: E402

PYBKT_REQS = ["pybkt==1.4.3", "numpy<2", "pandas<2.3", "scikit-learn<1.6"]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


# -- 1. AUC -----------------------------------------------------------------------------------


def pybkt_python() -> str:
    if os.environ.get("PYBKT_PYTHON"):
        return os.environ["PYBKT_PYTHON"]
    venv = Path.home() / ".cache" / "classroom-hub" / "pybkt-venv"
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"making a virtual environment for pyBKT in {venv} ...", flush=True)
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)  # the system Python: pyBKT's pins clash with ours
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PYBKT_REQS], check=True)
    return str(py)


def start_pybkt(out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([pybkt_python(), "-m", "models.kt.pybkt_baseline", "--out", str(out)], cwd=REPO, env=env, stderr=subprocess.DEVNULL)


def our_predictions(model: KTModel, seqs: list[Sequence]) -> dict[tuple[int, int], float]:
    """(student, step) -> predicted P(correct) of answer ``step`` given the answers before it."""
    n = max(len(s.skills) for s in seqs)
    lens = np.array([len(s.skills) for s in seqs])
    sk = np.zeros((len(seqs), n), dtype=np.int64)
    co = np.zeros((len(seqs), n), dtype=np.int64)
    for i, s in enumerate(seqs):
        sk[i, : lens[i]] = s.skills
        co[i, : lens[i]] = s.correct
    h = np.zeros((len(seqs), model.state_widths[0]), dtype=np.float32)
    c = np.zeros((len(seqs), model.state_widths[1]), dtype=np.float32)
    out: dict[tuple[int, int], float] = {}
    for t in range(n - 1):
        act = np.nonzero(lens > t + 1)[0]
        p, h2, c2 = model.step_batch(sk[act, t], co[act, t], h[act], c[act])
        h[act], c[act] = h2, c2
        nxt = p[np.arange(len(act)), sk[act, t + 1]]
        for i, v in zip(act.tolist(), nxt.tolist(), strict=True):
            out[(i, t + 1)] = v
    return out


def score(
    seqs: list[Sequence], ours: dict[tuple[int, int], float], theirs: dict[tuple[int, int], float] | None, seen: set[int], skill_change_only: bool = False
) -> dict[str, float]:
    """Both AUCs on the same rows (``theirs`` None, with ``--skip-pybkt``: ours alone, on the rows pyBKT would score)."""
    a, b, y = [], [], []
    for i, s in enumerate(seqs):
        for t in range(1, len(s.skills)):
            if int(s.skills[t]) not in seen or (theirs is not None and (i, t) not in theirs):
                continue
            if skill_change_only and s.skills[t] == s.skills[t - 1]:
                continue
            a.append(ours[(i, t)])
            if theirs is not None:
                b.append(theirs[(i, t)])
            y.append(int(s.correct[t]))
    ya = np.array(y)
    out = {"ours": auc(np.array(a), ya), "rows": len(y)}
    if theirs is not None:
        out["pybkt"] = auc(np.array(b), ya)
    return out


def bench_auc(proc: subprocess.Popen[bytes] | None, pybkt_out: Path, while_waiting: Callable[[], None]) -> dict[str, object]:
    """Our AUC now; then ``while_waiting`` (the simulation) while pyBKT fits; then pyBKT's and the comparison."""
    train = read_split(DEFAULT_DIR / TRAIN_FILE)
    test = read_split(DEFAULT_DIR / TEST_FILE)
    seen = {int(k) for s in train for k in np.unique(s.skills)}
    t0 = time.perf_counter()
    model = KTModel(bundled_manifest_path())
    ours = our_predictions(model, test)
    dedup = dedup_consecutive(test)
    ours_dedup = our_predictions(model, dedup)
    ours_s = time.perf_counter() - t0
    all_rows = [(i, t) for i, s in enumerate(test) for t in range(1, len(s.skills))]
    y_all = np.array([int(test[i].correct[t]) for i, t in all_rows])
    result: dict[str, object] = {
        "model": model.version,
        "ours_all_next_answers": auc(np.array([ours[k] for k in all_rows]), y_all),
        "ours_rows_all": len(all_rows),
        "ours_eval_s": round(ours_s, 1),
    }
    print(f"our model {model.version}: AUC {result['ours_all_next_answers']:.4f} on all {len(all_rows)} next answers ({ours_s:.0f} s)", flush=True)
    while_waiting()
    if proc is None:
        result["ours_only"] = {"same_rows": score(test, ours, None, seen), "dedup": score(dedup, ours_dedup, None, seen),
                               "skill_changes": score(test, ours, None, seen, skill_change_only=True)}
        return result
    t1 = time.perf_counter()
    rc = proc.wait()
    if rc != 0:
        raise SystemExit(f"pyBKT baseline failed with exit status {rc}")
    data = json.loads(pybkt_out.read_text())
    theirs = {(int(i), int(t)): float(p) for i, t, p in data["test"]}
    theirs_dedup = {(int(i), int(t)): float(p) for i, t, p in data["test_dedup"]}
    result["pybkt_fit_s"] = data["fit_seconds"]
    result["pybkt_wait_s"] = round(time.perf_counter() - t1, 1)
    result["same_rows"] = score(test, ours, theirs, seen)
    result["dedup"] = score(dedup, ours_dedup, theirs_dedup, seen)
    result["skill_changes"] = score(test, ours, theirs, seen, skill_change_only=True)
    return result


# -- 2. latency ---------------------------------------------------------------------------------


def make_hub(root: Path, n_students: int = 55) -> tuple[Database, list[int]]:
    config = load_config(environ={}, overrides={"hub": {"data_dir": str(root)}, "discovery": {"enabled": False}})
    prepare_storage(config)
    db = connect(config.db_path, synchronous="FULL")
    with transaction(db):
        cid = db.conn.execute("INSERT INTO classes (name, created_at) VALUES ('bench', ?)", (time.time(),)).lastrowid
        ids = []
        for i in range(n_students):
            cur = db.conn.execute(
                "INSERT INTO students (class_id, number, name, pin_hash, pseudo_id, created_at) VALUES (?, ?, ?, 'x', ?, ?)",
                (cid, f"{i:02d}", f"学生{i}", f"p-{i}-{time.time_ns()}", time.time()),
            )
            ids.append(int(cur.lastrowid or 0))
    return db, ids


# 20 knowledge points: 4 strands of 5 levels; level L needs level L-1 of its strand, and
# levels 3+ also need level 2 of the next strand. 16 are mapped to network skills, 4 use BKT.
def sim_graph() -> list[graph_mod.KnowledgePoint]:
    pts = []
    for strand in range(4):
        for level in range(5):
            req = []
            if level:
                req.append(f"s{strand}.l{level - 1}")
            if level >= 3:
                req.append(f"s{(strand + 1) % 4}.l2")
            skill = None if level == 4 else 20 + strand * 5 + level
            pts.append(graph_mod.KnowledgePoint(f"s{strand}.l{level}", f"strand {strand} level {level}", "math", skill, tuple(req)))
    return pts


def sim_items(points: list[graph_mod.KnowledgePoint], per_point: int = 8) -> list[Item]:
    items = []
    for p in points:
        for j in range(per_point):
            d = round(0.05 + 0.9 * j / (per_point - 1), 3)
            items.append(Item(f"{p.id}-q{j}", (p.id,), d, "basic" if d < 0.4 else "advanced" if d < 0.75 else "extension"))
    return items


def bench_latency(root: Path) -> dict[str, float]:
    db, sids = make_hub(root)
    pts = sim_graph()
    items = sim_items(pts)
    with transaction(db):
        graph_mod.import_points(db, pts, "package")
        register_items(db, items, source="package", create_missing=False)
    rng = random.Random(1)
    at = 1_000_000.0
    # 40 answers of history per student first.
    for _ in range(40):
        with transaction(db):
            for s in sids:
                at += 1
                record_answer(db, s, rng.choice(items).id, None, rng.random() < 0.65, at)
    step_ms, step_cpu_ms, total_ms = [], [], []
    for _ in range(2000):
        s = rng.choice(sids)
        it = rng.choice(items).id
        at += 1
        t0 = time.perf_counter()
        db.conn.execute("BEGIN IMMEDIATE")
        t1, c1 = time.perf_counter(), time.thread_time()
        record_answer(db, s, it, None, rng.random() < 0.65, at)
        t2, c2 = time.perf_counter(), time.thread_time()
        db.conn.execute("COMMIT")
        t3 = time.perf_counter()
        step_ms.append((t2 - t1) * 1000)
        step_cpu_ms.append((c2 - c1) * 1000)
        total_ms.append((t3 - t0) * 1000)
    from edge.learning.registry import active_model

    model = active_model(db)
    replay_ms = []
    for _ in range(200):
        s = rng.choice(sids)
        last = db.execute("SELECT MAX(id) FROM learning_answers WHERE student_id = ?", (s,)).fetchone()[0]
        t0 = time.perf_counter()
        _rebuild(db, s, model, last)
        replay_ms.append((time.perf_counter() - t0) * 1000)
    history = db.execute("SELECT COUNT(*) * 1.0 / COUNT(DISTINCT student_id) FROM learning_answers").fetchone()[0]
    rec_ms, rec_cpu_ms, per_student_ms = [], [], []
    for _ in range(40):
        t0, c0 = time.perf_counter(), time.thread_time()
        recs = recommend(db, sids, 5, Policy(), now=at)
        rec_ms.append((time.perf_counter() - t0) * 1000)
        rec_cpu_ms.append((time.thread_time() - c0) * 1000)
        assert all(len(v) == 5 for v in recs.values())
    for _ in range(5):
        t0 = time.perf_counter()
        for s in sids:
            recommend(db, [s], 5, Policy(), now=at)
        per_student_ms.append((time.perf_counter() - t0) * 1000)
    db.conn.close()
    return {
        "answer_p50_ms": pct(step_ms, 50),
        "answer_p99_ms": pct(step_ms, 99),
        "answer_cpu_p50_ms": pct(step_cpu_ms, 50),
        "answer_cpu_p99_ms": pct(step_cpu_ms, 99),
        "class55_recs_cpu_p50_ms": pct(rec_cpu_ms, 50),
        "class55_recs_cpu_p99_ms": pct(rec_cpu_ms, 99),
        "load_average_1m": os.getloadavg()[0],
        "answer_with_commit_p50_ms": pct(total_ms, 50),
        "answer_with_commit_p99_ms": pct(total_ms, 99),
        "replay_p50_ms": pct(replay_ms, 50),
        "replay_p99_ms": pct(replay_ms, 99),
        "history_per_student": round(history, 1),
        "class55_recs_p50_ms": pct(rec_ms, 50),
        "class55_recs_p99_ms": pct(rec_ms, 99),
        "class55_one_by_one_p50_ms": pct(per_student_ms, 50),
    }


# -- 3. simulation -----------------------------------------------------------------------------

MASTERED_THETA = math.log(0.8 / 0.2)  # P(right) on a typical (difficulty 0.5) item >= 0.8
PREREQ_KNOWN = 0.5  # a prerequisite this strong lets its dependants be learned at full speed


class Learner:
    """Known skill growth: theta per point; practice on an item teaches most when success is
    neither certain nor hopeless (4 p (1 - p)) and much less while prerequisites are unknown."""

    def __init__(self, rng: random.Random, points: list[graph_mod.KnowledgePoint]) -> None:
        self.points = {p.id: p for p in points}
        self.theta = {p.id: rng.gauss(-0.5 - 0.6 * int(p.id.split(".l")[1]), 0.6) for p in points}
        self.rate = rng.uniform(0.25, 0.55)
        self.rng = rng

    def answer(self, kp: str, difficulty: float) -> bool:
        p = 1 / (1 + math.exp(-(self.theta[kp] - 4 * (difficulty - 0.5))))
        ready = all(self.theta[r] >= PREREQ_KNOWN for r in self.points[kp].prerequisites)
        self.theta[kp] += self.rate * (1.0 if ready else 0.15) * 4 * p * (1 - p)
        return self.rng.random() < p

    def mastered(self) -> int:
        return sum(1 for t in self.theta.values() if t >= MASTERED_THETA)


def simulate(policy_name: str, seed: int, root: Path, days: int, per_day: int) -> tuple[float, float]:
    db, sids = make_hub(root)
    pts = sim_graph()
    items = sim_items(pts)
    with transaction(db):
        graph_mod.import_points(db, pts, "package")
        register_items(db, items, source="package", create_missing=False)
    learners = {s: Learner(random.Random(seed * 1000 + i), pts) for i, s in enumerate(sids)}
    start = sum(learner.mastered() for learner in learners.values()) / len(sids)
    pick_rng = random.Random(seed)
    by_id = {it.id: it for it in items}
    easiest = sorted(items, key=lambda it: (it.difficulty, it.id))
    done: dict[int, int] = {s: 0 for s in sids}
    at = 0.0
    for day in range(days):
        at = day * 86_400.0 + 8 * 3600
        if policy_name == "ours":
            plan = {s: [p.item_id for p in picks] for s, picks in recommend(db, sids, per_day, Policy(), now=at).items()}
        elif policy_name == "random":
            plan = {s: [pick_rng.choice(items).id for _ in range(per_day)] for s in sids}
        else:  # easiest-first: each student works through the catalogue from the easiest item up
            plan = {}
            for s in sids:
                plan[s] = [easiest[(done[s] + k) % len(easiest)].id for k in range(per_day)]
                done[s] += per_day
        with transaction(db):
            for s in sids:
                for k, item_id in enumerate(plan[s][:per_day]):
                    it = by_id[item_id]
                    ok = learners[s].answer(it.knowledge_points[0], it.difficulty)
                    record_answer(db, s, item_id, None, ok, at + k * 60)
    db.conn.close()
    return start, sum(learner.mastered() for learner in learners.values()) / len(sids)


def bench_simulation(root: Path, seeds: int, days: int, per_day: int) -> dict[str, object]:
    out: dict[str, object] = {"days": days, "per_day": per_day, "seeds": seeds, "learners": 55, "points": 20}
    for name in ("ours", "random", "easiest-first"):
        finals, starts = [], []
        for seed in range(seeds):
            s0, s1 = simulate(name, seed, root / f"{name}-{seed}", days, per_day)
            starts.append(s0)
            finals.append(s1)
        out[name] = {"start": statistics.mean(starts), "mastered": statistics.mean(finals), "runs": finals}
        print(f"simulation {name}: {statistics.mean(starts):.2f} -> {statistics.mean(finals):.2f} points mastered per learner", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="personalised learning benchmark")
    ap.add_argument("--skip-pybkt", action="store_true", help="our AUC only (pyBKT takes ~12 minutes to fit)")
    ap.add_argument("--sim-seeds", type=int, default=3)
    ap.add_argument("--days", type=int, default=12)
    ap.add_argument("--per-day", type=int, default=5)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-learning-hub-"))
    t0 = time.time()
    # pyBKT's fit is the long pole (~12 min on 2 idle cores): it starts first, the simulation
    # runs while it fits, and the latency figures are taken after it has finished.
    proc = None if args.skip_pybkt else start_pybkt(root / "pybkt.json")
    sim: dict[str, object] = {}
    try:
        quality = bench_auc(proc, root / "pybkt.json", lambda: sim.update(bench_simulation(root, args.sim_seeds, args.days, args.per_day)))
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
    lat = bench_latency(root / "latency")
    print(json.dumps(lat), flush=True)
    print("=== SUMMARY ===")
    if "same_rows" in quality:
        for key, label in (("same_rows", "DKT test split"), ("dedup", "consecutive duplicates removed"), ("skill_changes", "skill changes only")):
            r = quality[key]  # type: ignore[index]
            print(f"AUC {label:32s} ours {r['ours']:.4f}  pyBKT {r['pybkt']:.4f}  diff {r['ours'] - r['pybkt']:+.4f}  ({r['rows']} rows)")
        print(f"pyBKT fit {quality['pybkt_fit_s']} s (same run); targets: ours >= 0.86 and >= pyBKT + 0.10")
    if "ours_only" in quality:
        for key, label in (("same_rows", "DKT test split, skill seen"), ("dedup", "consecutive duplicates removed"), ("skill_changes", "skill changes only")):
            r = quality["ours_only"][key]  # type: ignore[index]
            print(f"AUC {label:32s} ours {r['ours']:.4f}  (pyBKT skipped; {r['rows']} rows)")
    print(f"AUC all next answers (ours, {quality['model']}): {quality['ours_all_next_answers']:.4f} on {quality['ours_rows_all']} rows")
    print(
        f"answer -> mastery: p50 {lat['answer_p50_ms']:.3f} ms p99 {lat['answer_p99_ms']:.3f} ms (target p99 <= 2 ms), "
        f"CPU time p50 {lat['answer_cpu_p50_ms']:.3f} p99 {lat['answer_cpu_p99_ms']:.3f} ms (load average {lat['load_average_1m']:.1f} on 2 cores); "
        f"with COMMIT (fsync) p99 {lat['answer_with_commit_p99_ms']:.2f} ms; "
        f"baseline recompute from history ({lat['history_per_student']:.0f} answers) p50 {lat['replay_p50_ms']:.2f} ms"
        f" = {lat['replay_p50_ms'] / lat['answer_p50_ms']:.0f}x"
    )
    print(
        f"recommendations, class of 55: p50 {lat['class55_recs_p50_ms']:.1f} ms p99 {lat['class55_recs_p99_ms']:.1f} ms (target <= 50 ms), "
        f"CPU time p50 {lat['class55_recs_cpu_p50_ms']:.1f} p99 {lat['class55_recs_cpu_p99_ms']:.1f} ms; "
        f"baseline one request per student {lat['class55_one_by_one_p50_ms']:.1f} ms = {lat['class55_one_by_one_p50_ms'] / lat['class55_recs_p50_ms']:.1f}x"
    )
    o, r, e = sim["ours"], sim["random"], sim["easiest-first"]  # type: ignore[index]
    print(
        f"simulation ({sim['learners']} learners x {sim['seeds']} seeds, {sim['days']} days x {sim['per_day']} exercises, {sim['points']} points): "
        f"mastered per learner ours {o['mastered']:.2f}, random {r['mastered']:.2f} ({o['mastered'] / r['mastered']:.2f}x), "
        f"easiest-first {e['mastered']:.2f} ({o['mastered'] / e['mastered']:.2f}x); at start {o['start']:.2f}"
    )
    print(f"total {time.time() - t0:.0f} s")
    print("=== END SUMMARY ===")


if __name__ == "__main__":
    main()
