# The HAL on the cart's ESP32 board. Slots sit behind shift-register-driven
# relays and a multiplexed current-sense ADC; pins come from cart.json ("pins").
# Only imported on the board (the unix port has no machine.Pin/ADC); the tests
# check it compiles with mpy-cross.
from cart.hal import Hal
from machine import ADC, Pin


class Esp32Hal(Hal):
    def __init__(self, cfg):
        pins = cfg.get("pins", {})
        self.slots = int(cfg["slots"])
        self.mv_per_ma = float(cfg.get("sense_mv_per_ma", 1.0))
        self._data = Pin(pins.get("sr_data", 23), Pin.OUT)
        self._clock = Pin(pins.get("sr_clock", 18), Pin.OUT)
        self._latch = Pin(pins.get("sr_latch", 5), Pin.OUT)
        self._mux = [Pin(p, Pin.OUT) for p in pins.get("mux", (25, 26, 27, 14, 12, 13))]
        self._adc = ADC(Pin(pins.get("sense", 34)), atten=ADC.ATTN_11DB)
        self._presence = Pin(pins.get("presence_in", 35), Pin.IN)
        self._door = Pin(pins.get("door", 39), Pin.IN, Pin.PULL_UP)
        self._lock = Pin(pins.get("lock", 4), Pin.OUT, value=1)
        self._fan = Pin(pins.get("fan", 2), Pin.OUT, value=0)
        self._main = Pin(pins.get("main", 15), Pin.OUT, value=0)
        self._led = [Pin(p, Pin.OUT, value=0) for p in pins.get("led", (16, 17))]
        self._therm = ADC(Pin(pins.get("therm", 36)), atten=ADC.ATTN_11DB)
        self._switch = [0] * self.slots

    def _select(self, slot):
        for bit, pin in enumerate(self._mux):
            pin.value((slot >> bit) & 1)

    def presence(self):
        out = []
        for s in range(self.slots):
            self._select(s)
            out.append(self._presence.value())
        return out

    def currents_ma(self):
        out = []
        for s in range(self.slots):
            self._select(s)
            out.append(int(self._adc.read_uv() / 1000 / self.mv_per_ma))
        return out

    def set_switch(self, slot, on):
        self._switch[slot] = 1 if on else 0
        self._latch.value(0)
        for bit in reversed(self._switch):
            self._clock.value(0)
            self._data.value(bit)
            self._clock.value(1)
        self._latch.value(1)

    def set_main(self, on):
        self._main.value(1 if on else 0)

    def temperature_c(self):
        # NTC divider: 0 or full scale means a broken or shorted sensor.
        uv = self._therm.read_uv()
        if uv < 50000 or uv > 3200000:
            return None
        return 25.0 + (1650000 - uv) / 22000.0

    def door_open(self):
        return self._door.value()

    def set_lock(self, locked):
        self._lock.value(1 if locked else 0)

    def set_fan(self, on):
        self._fan.value(1 if on else 0)

    def set_led(self, state):
        self._led[0].value(state & 1)
        self._led[1].value((state >> 1) & 1)
