# The control loop's state and one step of it: read the sensors, decide, switch.
# The asyncio app (app.py) calls step() every period; tests call it in simulated
# time. Whatever the hub's plan says, step() keeps: the total current cap, the
# thermal limits, the start delay and the per-slot trips.
from cart import protocol
from cart.compat import ticks_diff, urandom
from cart.doorlock import DoorLock
from cart.hal import LED_FALLBACK, LED_FAULT, LED_OFF, LED_OK
from cart.safety import Limits, Thermal, allocate, fallback_order


def random_delay_ms(max_ms):
    if max_ms <= 0:
        return 0
    raw = urandom(4)
    return ((raw[0] << 24) | (raw[1] << 16) | (raw[2] << 8) | raw[3]) % (max_ms + 1)


class Controller:
    def __init__(self, hal, cfg, now_ms, start_delay_ms=None, fallback_base=None, lock_state=None):
        self.hal = hal
        self.n = hal.slots
        self.lim = Limits(cfg)
        self.thermal = Thermal(self.lim)
        self.boot_ms = now_ms
        if start_delay_ms is None:
            start_delay_ms = random_delay_ms(self.lim.start_delay_max_ms)
        self.start_delay_ms = start_delay_ms
        n = self.n
        self.present = [0] * n
        self.ma = [0] * n
        self.on = [0] * n
        self.fault = [0] * n
        self.full = [0] * n
        self._low_since = [None] * n
        self._full_at = [None] * n
        self._off_at = [None] * n
        self.plan_order = None
        self._plan_until = None
        self._hub_seen = None
        self.fallback_base = list(fallback_base or [])
        self.mode = "startup"
        self.cap_eff = 0
        self.temp = None
        self.door = 0
        self.doorlock = DoorLock(hal, lock_state, offline_lock=bool(cfg.get("offline_lock", True)))
        self.cycles = 0
        self.tripped = 0  # over-current trips since boot
        self.shed = 0  # slots shed by the measured-total check since boot
        self.main = 0
        for s in range(n):
            hal.set_switch(s, 0)
        hal.set_main(0)

    # -- inputs from the hub link ---------------------------------------------------------
    def apply_plan(self, order_1based, ttl_s, now_ms):
        self.plan_order = [s - 1 for s in order_1based]
        self._plan_until = now_ms + ttl_s * 1000
        self._hub_seen = now_ms
        self.fallback_base = list(self.plan_order)

    def hub_seen(self, now_ms):
        self._hub_seen = now_ms

    def hub_fresh(self, now_ms):
        return self._hub_seen is not None and ticks_diff(now_ms, self._hub_seen) < self.lim.hub_timeout_ms

    def hub_away(self, now_ms):
        """No hub contact for hub_timeout_ms (counted from boot before the first)."""
        since = self._hub_seen if self._hub_seen is not None else self.boot_ms
        return ticks_diff(now_ms, since) >= self.lim.hub_timeout_ms

    def lock_command(self, cmd):
        """A lock/unlock command from an authenticated hub reply, under the lock's own rules."""
        return self.doorlock.command(cmd, self.door, self.thermal.state)

    # -- one cycle ----------------------------------------------------------------------
    def sense(self):
        hal = self.hal
        self.present = [1 if p else 0 for p in hal.presence()]
        raw = hal.currents_ma()
        lim = self.lim
        for s in range(self.n):
            v = raw[s]
            if not isinstance(v, int) or v < 0 or v > protocol.MAX_SLOT_MA:
                # An impossible reading: assume the worst the slot may draw and flag it.
                self.fault[s] = protocol.FAULT_SENSOR
                self.ma[s] = lim.trip_ma
            else:
                if self.fault[s] == protocol.FAULT_SENSOR:
                    self.fault[s] = 0
                self.ma[s] = v
        self.temp = hal.temperature_c()
        self.door = 1 if hal.door_open() else 0

    def step(self, now_ms):
        self.sense()
        self.control(now_ms)
        self.cycles += 1

    def control(self, now_ms):
        lim = self.lim
        hal = self.hal
        n = self.n
        factor = self.thermal.update(self.temp)
        cap = int(lim.cap_ma * factor)
        self.cap_eff = cap
        for s in range(n):
            self._slot_faults(s, now_ms)
        committed = 0
        for s in range(n):
            if self.on[s]:
                continue
            recently_off = self._off_at[s] is not None and ticks_diff(now_ms, self._off_at[s]) < lim.settle_ms
            if recently_off or self.ma[s] > lim.stuck_ma or self.fault[s] in (protocol.FAULT_SENSOR, protocol.FAULT_STUCK_ON):
                committed += max(self.ma[s], lim.slot_limit_ma)
        if ticks_diff(now_ms, self.boot_ms) < self.start_delay_ms:
            mode, order = "startup", []
        elif factor <= 0:
            mode, order = "cutoff", []
        elif self.plan_order is not None and self.hub_fresh(now_ms) and ticks_diff(self._plan_until, now_ms) > 0:
            mode, order = "plan", self.plan_order
        else:
            window = max(1, (cap - committed) // lim.slot_limit_ma) if cap > committed else 1
            mode = "fallback"
            order = fallback_order(self.fallback_base, n, ticks_diff(now_ms, self.boot_ms), lim.rotate_ms, window)
        self.mode = mode
        eligible = [self.present[s] and not self.fault[s] and not self.full[s] for s in range(n)]
        chosen = allocate(order, eligible, committed, cap, lim.slot_limit_ma)
        want = set(chosen)
        for s in range(n):
            if self.on[s] and s not in want:
                hal.set_switch(s, 0)
                self.on[s] = 0
                self._off_at[s] = now_ms
        switched = 0
        for s in chosen:
            if not self.on[s]:
                if switched >= lim.max_on_per_cycle:
                    continue  # inrush: the rest follow in the next cycles
                hal.set_switch(s, 1)
                self.on[s] = 1
                self._low_since[s] = None
                switched += 1
        self._check_measured_total(cap, chosen, now_ms)
        self.doorlock.update(self.door, self.hub_away(now_ms))
        # The main contactor opens when nothing may flow (cut-off, start delay) or
        # when current we cannot switch off (welded relays) alone breaks the cap.
        main = 0 if mode in ("cutoff", "startup") or committed > cap else 1
        if main != self.main:
            hal.set_main(main)
            self.main = main
        hal.set_fan(self.thermal.state != "ok" or (self.temp is not None and self.temp >= lim.derate_c - lim.hyst_c))
        if mode == "cutoff" or any(self.fault):
            hal.set_led(LED_FAULT)
        elif mode == "plan":
            hal.set_led(LED_OK)
        elif mode == "fallback":
            hal.set_led(LED_FALLBACK)
        else:
            hal.set_led(LED_OFF)

    def _slot_faults(self, s, now_ms):
        lim = self.lim
        if not self.present[s]:
            # Taking the tablet out clears a latched trip and the full flag.
            if self.fault[s] == protocol.FAULT_OVERCURRENT:
                self.fault[s] = 0
            self.full[s] = 0
            self._low_since[s] = None
        if self.on[s] and self.ma[s] > lim.trip_ma and self.fault[s] != protocol.FAULT_SENSOR:
            self.fault[s] = protocol.FAULT_OVERCURRENT
            self.tripped += 1
        settled = self._off_at[s] is None or ticks_diff(now_ms, self._off_at[s]) >= lim.settle_ms
        if not self.on[s] and settled and self.fault[s] == 0 and self.ma[s] > lim.stuck_ma:
            # A welded relay: latched until service (a reboot), and budgeted at the slot
            # limit from now on, since any tablet docked there will charge.
            self.fault[s] = protocol.FAULT_STUCK_ON
        if self.on[s] and self.present[s] and self.ma[s] < lim.full_ma:
            if self._low_since[s] is None:
                self._low_since[s] = now_ms
            elif ticks_diff(now_ms, self._low_since[s]) >= lim.full_hold_ms:
                self.full[s] = 1
                self._full_at[s] = now_ms
        elif self.on[s]:
            self._low_since[s] = None
        if self.full[s] and self._full_at[s] is not None and ticks_diff(now_ms, self._full_at[s]) >= lim.top_up_ms:
            self.full[s] = 0  # top the battery up again later

    def _check_measured_total(self, cap, chosen, now_ms):
        # Budgeting at the slot limit keeps the cap by construction; this catches
        # what construction cannot (a charger drawing more than its rating before
        # its trip): shed the lowest-priority slots until the reading fits.
        total = sum(self.ma)
        for s in reversed(chosen):
            if total <= cap:
                break
            if self.on[s]:
                self.hal.set_switch(s, 0)
                self.on[s] = 0
                self._off_at[s] = now_ms
                total -= self.ma[s]
                self.shed += 1

    # -- telemetry ------------------------------------------------------------------------
    def telemetry(self, cart_id, ctr, fw, boot, uptime_s, ota):
        temp = self.temp
        if temp is not None and not (protocol.TEMP_MIN_C <= temp <= protocol.TEMP_MAX_C):
            temp = None
        msg = {
            "v": protocol.VERSION, "cart": cart_id, "ctr": ctr, "fw": fw, "boot": boot, "up": uptime_s,
            "temp": None if temp is None else round(temp, 1), "door": self.door, "lock": self.doorlock.locked,
            "mode": self.mode, "thermal": self.thermal.state, "cap": self.cap_eff, "total": sum(self.ma),
            "present": list(self.present), "on": list(self.on), "ma": list(self.ma),
            "fault": list(self.fault), "full": list(self.full), "ota": ota,
        }
        if self.doorlock.ack is not None:
            msg["ack"] = dict(self.doorlock.ack)
        return msg
