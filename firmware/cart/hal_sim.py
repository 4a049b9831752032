# A simulated cart: tablets with batteries and chargers, a cabinet that warms with
# the power drawn, a door, a lock, a fan. Tests and the demo drive it; its
# physics are deliberately independent of the controller so a test can check the
# controller against what "really" flows.
from cart.hal import LED_OFF, Hal


class Tablet:
    """A tablet and its charger. Charger input power is constant (CC) up to 80 %
    state of charge, then tapers (CV) to a trickle at 100 %."""

    def __init__(self, serial, soc, capacity_wh=30.0, charger_w=30.0):
        self.serial = serial
        self.soc = soc
        self.capacity_wh = capacity_wh
        self.charger_w = charger_w

    def input_w(self):
        if self.soc >= 0.999:
            return self.charger_w * 0.02
        if self.soc < 0.8:
            return self.charger_w
        return self.charger_w * (1.0 - 0.85 * (self.soc - 0.8) / 0.2)

    def charge(self, watts, seconds, efficiency=0.85):
        self.soc = min(1.0, self.soc + watts * efficiency * seconds / 3600.0 / self.capacity_wh)

    def drain(self, watts, seconds):
        self.soc = max(0.0, self.soc - watts * seconds / 3600.0 / self.capacity_wh)


class SimHal(Hal):
    def __init__(self, slots, volts=120.0, ambient_c=25.0):
        self.slots = slots
        self.volts = volts
        self.tablets = [None] * slots
        self.switch = [0] * slots
        self.ambient_c = ambient_c
        self.temp_c = ambient_c
        self.temp_override = None  # a test forces the sensor reading
        self.sensor_dead = False
        self.door = 0
        self.lock = 1
        self.fan = 0
        self.led = LED_OFF
        # Fault injection: slot -> extra mA drawn (over-current), slots whose relay is welded,
        # slots whose current sensor reads garbage, and a bus that raises on read.
        self.extra_ma = {}
        self.welded = set()
        self.garbage = {}
        self.bus_dead = False
        self.forced_ma = {}  # slot -> mA the charger draws regardless of the battery (random-current tests)
        self.switch_events = 0
        self.main = 0

    # -- the world -------------------------------------------------------------------
    def insert(self, slot, tablet):
        self.tablets[slot] = tablet

    def remove(self, slot):
        t = self.tablets[slot]
        self.tablets[slot] = None
        return t

    def conducting(self, slot):
        return self.main and (self.switch[slot] or slot in self.welded) and self.tablets[slot] is not None

    def true_ma(self, slot):
        """What really flows through the slot now (not what the sensor says)."""
        if not self.conducting(slot):
            return 0
        if slot in self.forced_ma:
            base = self.forced_ma[slot]
        else:
            base = int(self.tablets[slot].input_w() / self.volts * 1000)
        return base + self.extra_ma.get(slot, 0)

    def true_total_ma(self):
        return sum(self.true_ma(s) for s in range(self.slots))

    def advance(self, seconds):
        """Move the physics on: batteries charge, the cabinet warms or cools."""
        watts = 0.0
        for s in range(self.slots):
            if self.conducting(s):
                w = self.true_ma(s) * self.volts / 1000.0
                watts += w
                self.tablets[s].charge(min(w, self.tablets[s].input_w()), seconds)
        # Charger losses heat the cabinet; a ventilated steel cabinet sheds ~8 W/K,
        # ~20 W/K with its fan, and holds ~20 kJ/K (air, shelves, tablets).
        loss_w = watts * 0.12
        cooling = (self.temp_c - self.ambient_c) * (20.0 if self.fan else 8.0)
        self.temp_c += (loss_w - cooling) * seconds / 20000.0

    # -- the HAL ---------------------------------------------------------------------
    def _bus(self):
        if self.bus_dead:
            raise OSError("sensor bus does not answer")

    def presence(self):
        self._bus()
        return [0 if t is None else 1 for t in self.tablets]

    def currents_ma(self):
        self._bus()
        return [self.garbage.get(s, self.true_ma(s)) for s in range(self.slots)]

    def set_switch(self, slot, on):
        on = 1 if on else 0
        if self.switch[slot] != on:
            self.switch_events += 1
        self.switch[slot] = on

    def set_main(self, on):
        self.main = 1 if on else 0

    def temperature_c(self):
        if self.sensor_dead:
            return None
        return self.temp_override if self.temp_override is not None else self.temp_c

    def door_open(self):
        return self.door

    def set_lock(self, locked):
        self.lock = 1 if locked else 0

    def set_fan(self, on):
        self.fan = 1 if on else 0

    def set_led(self, state):
        self.led = state
