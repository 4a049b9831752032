# The hardware abstraction layer: everything the controller reads or drives.
# hal_esp32.py implements it on the board, hal_sim.py in software for tests and
# the demo. Slots are numbered 0..slots-1 here; the protocol numbers them from 1.

LED_OFF = 0
LED_OK = 1  # green: charging by the hub's plan
LED_FALLBACK = 2  # amber: hub unreachable, local schedule
LED_FAULT = 3  # red: thermal cut-off or a fault


class Hal:
    slots = 0

    def presence(self):
        """0/1 per slot: a tablet sits in the slot."""
        raise NotImplementedError

    def currents_ma(self):
        """Measured current per slot in mA (mains side of the slot's charger)."""
        raise NotImplementedError

    def set_switch(self, slot, on):
        raise NotImplementedError

    def set_main(self, on):
        """The cart's main contactor, upstream of every slot: the last resort when a
        slot's relay has welded and the cap or a thermal cut-off must still hold."""
        raise NotImplementedError

    def temperature_c(self):
        """Cabinet temperature, or None when the sensor does not answer."""
        raise NotImplementedError

    def door_open(self):
        raise NotImplementedError

    def set_lock(self, locked):
        raise NotImplementedError

    def set_fan(self, on):
        raise NotImplementedError

    def set_led(self, state):
        raise NotImplementedError
