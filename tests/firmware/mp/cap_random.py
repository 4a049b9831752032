# Run under the MicroPython unix port: random arrivals, removals, currents,
# hub plans, temperatures and relay faults; the current that really flows (the
# simulated world's, not the controller's reading) must never exceed the cap.
import json
import random
import sys

from cart import protocol
from cart.controller import Controller
from cart.hal_sim import SimHal, Tablet

seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
# "misconfigured": the controller is told chargers draw at most half of what they
# really do, so the check below must catch the cap being broken.
misconfigured = len(sys.argv) > 3 and sys.argv[3] == "misconfigured"
random.seed(seed)
SLOTS = 60
CFG = {"cap_ma": 12000, "slot_limit_ma": 300, "start_delay_max_ms": 5000, "hub_timeout_ms": 20000,
       "rotate_ms": 60000, "full_hold_ms": 30000}
hal = SimHal(SLOTS)
ctl_cfg = dict(CFG)
if misconfigured:
    ctl_cfg["slot_limit_ma"] = CFG["slot_limit_ma"] // 2
    ctl_cfg["trip_ma"] = CFG["slot_limit_ma"] * 2
ctl = Controller(hal, ctl_cfg, 0)
cap = CFG["cap_ma"]
worst = 0
worst_eff = 0
violations = []
n_violations = 0


def violation(item):
    global n_violations
    n_violations += 1
    if len(violations) < 5:
        violations.append(item)

max_on = 0
modes = {}
now = 0
for i in range(steps):
    now += 250
    # the world changes between two control steps
    for _ in range(random.randint(0, 3)):
        s = random.randrange(SLOTS)
        if hal.tablets[s] is None:
            hal.insert(s, Tablet("T" + str(s), random.random()))
        elif random.random() < 0.5:
            hal.remove(s)
    for _ in range(random.randint(0, 6)):
        s = random.randrange(SLOTS)
        # chargers in constant-current phase draw their full rating: make that common
        hal.forced_ma[s] = CFG["slot_limit_ma"] if random.random() < 0.4 else random.randint(0, CFG["slot_limit_ma"])
    if random.random() < 0.0003:
        on_now = [s for s in range(SLOTS) if hal.switch[s]]
        if on_now:
            hal.welded.add(random.choice(on_now))
    if random.random() < 0.01:
        hal.temp_override = random.choice([None, 20.0, 44.0, 47.0, 52.0, 56.0, 60.0, 30.0])
    if random.random() < 0.02:
        order = list(range(1, SLOTS + 1))
        for j in range(len(order) - 1, 0, -1):
            k = random.randint(0, j)
            order[j], order[k] = order[k], order[j]
        ctl.apply_plan(order, random.randint(5, 60), now)
    total = hal.true_total_ma()
    worst = max(worst, total)
    if total > cap:
        violation(("between", i, total))
    ctl.step(now)
    total = hal.true_total_ma()
    worst = max(worst, total)
    worst_eff = max(worst_eff, total - ctl.cap_eff)
    if total > cap or total > ctl.cap_eff:
        violation(("after", i, total, ctl.cap_eff))
    max_on = max(max_on, sum(hal.switch))
    modes[ctl.mode] = modes.get(ctl.mode, 0) + 1
    hal.advance(0.25)
print("RESULT " + json.dumps({
    "seed": seed, "steps": steps, "cap": cap, "worst_ma": worst, "worst_over_effective": worst_eff,
    "violations": violations, "n_violations": n_violations, "max_on": max_on, "modes": modes,
    "welded": len(hal.welded), "stuck_faults": sum(1 for f in ctl.fault if f == protocol.FAULT_STUCK_ON),
}))
