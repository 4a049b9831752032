# Under the MicroPython unix port: the door lock receiving hub commands (as the
# link hands them over after the reply's MAC and check_reply passed), its own
# rules (no unlock in a thermal cut-off, no bolt into an open door), the offline
# policy, and a restart restoring the state. Prints one line per step.
import json

from cart import protocol
from cart.controller import Controller
from cart.hal_sim import SimHal, Tablet

CFG = {"cap_ma": 12000, "slot_limit_ma": 300, "start_delay_max_ms": 0, "hub_timeout_ms": 10000}
hal = SimHal(8)
for s in range(8):
    hal.insert(s, Tablet("T", 0.5))
ctl = Controller(hal, CFG, 0, start_delay_ms=0)
now = 0
trace = []


def run(ms, hub=True):
    global now
    end = now + ms
    while now < end:
        now += 250
        if hub:
            ctl.hub_seen(now)
        ctl.step(now)


def reply_cmd(op, cid):
    # the command as it arrives: inside a reply that check_reply accepts
    reply = {"v": protocol.VERSION, "cmds": [{"op": op, "id": cid}]}
    assert protocol.check_reply(reply, 8) == []
    return ctl.lock_command(reply["cmds"][0])


def note(name, executed=None):
    tele = ctl.telemetry("cart-1", 1, "1.0.0", 1, now // 1000, {"state": "idle"})
    trace.append({"step": name, "executed": executed, "hal_lock": hal.lock, "lock": tele["lock"], "door": tele["door"],
                  "ack": tele.get("ack"), "errors": protocol.check_telemetry(tele, 8)})


run(1000)
note("boot")
note("unlock", reply_cmd("unlock", 1))
run(500)
note("unlock repeated", reply_cmd("unlock", 1))
hal.door = 1
run(500)
note("lock with the door open", reply_cmd("lock", 2))
run(2000)
note("door still open")
hal.door = 0
run(500)
note("door closed")
note("unlock again", reply_cmd("unlock", 3))
hal.temp_override = 57.0
run(500)
note("lock in cut-off", reply_cmd("lock", 4))
note("unlock in cut-off", reply_cmd("unlock", 5))
hal.temp_override = 30.0
run(500)
note("cooled down")
note("unlock after cooling", reply_cmd("unlock", 6))
saved = json.loads(json.dumps(ctl.doorlock.saved()))  # through JSON, as state.json keeps it
hal.door = 1
run(12000, hub=False)
note("hub away, door open")
hal.door = 0
run(500, hub=False)
note("hub away, door closed")
hal2 = SimHal(8)
hal2.lock = 1  # whatever the pins did at power-up, the stored state is driven
ctl2 = Controller(hal2, CFG, 0, start_delay_ms=0, lock_state=saved)
trace.append({"step": "restart", "hal_lock": hal2.lock, "repeat_executed": ctl2.lock_command({"op": "lock", "id": 6}),
              "ack": ctl2.telemetry("cart-1", 2, "1.0.0", 2, 0, {"state": "idle"}).get("ack")})
ctl3 = Controller(SimHal(8), dict(CFG, offline_lock=False), 0, start_delay_ms=0)
ctl3.lock_command({"op": "unlock", "id": 1})
for t in range(1, 80):
    ctl3.step(t * 250)
trace.append({"step": "offline_lock false", "hal_lock": ctl3.hal.lock, "away": ctl3.hub_away(80 * 250)})
print("RESULT " + json.dumps(trace))
