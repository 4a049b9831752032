# Under the MicroPython unix port: derating, cut-off with hysteresis, and a lost
# sensor treated as a cut-off, on a full cart in simulated time.
import json

from cart.controller import Controller
from cart.hal_sim import SimHal, Tablet

hal = SimHal(60)
for s in range(60):
    hal.insert(s, Tablet("T", 0.3))
ctl = Controller(hal, {"cap_ma": 12000, "slot_limit_ma": 300, "start_delay_max_ms": 0}, 0, start_delay_ms=0)
trace = []
now = 0
for temp in [30, 40, 46, 50, 54, 56, 53, 51, 50, 49, 44, 41, 39, None, 30, 30]:
    hal.temp_override = temp
    hal.sensor_dead = temp is None
    for _ in range(20):  # inrush staggering needs a few cycles to reach the budget
        now += 250
        ctl.step(now)
    trace.append([temp, ctl.thermal.state, ctl.cap_eff, sum(hal.switch), hal.true_total_ma(), hal.fan, hal.main])
print("RESULT " + json.dumps(trace))
