# Small JSON files on the cart's flash, written atomically (temp file + rename).
# cart.json: provisioning (id, key, hub address, limits); never changed by the hub.
# state.json: what must survive a reboot: the counter block, boot count, the
# fallback order.
import json

from cart.compat import exists, fsync_write

COUNTER_BLOCK = 1000  # counters reserved per flash write (flash wears; the hub only needs "larger")


def load(path, default=None):
    if not exists(path):
        return default
    with open(path) as fh:
        return json.load(fh)


def save(path, data):
    fsync_write(path, json.dumps(data).encode())


class Counter:
    """The message counter: strictly increasing across reboots. A block of values
    is reserved on flash before any of it is used, so a reboot skips ahead rather
    than repeating a value the hub has already seen."""

    def __init__(self, state, path):
        self.state = state
        self.path = path
        self.value = int(state.get("ctr_block", 0))
        self._limit = self.value
        self._reserve()

    def _reserve(self):
        self._limit = self.value + COUNTER_BLOCK
        self.state["ctr_block"] = self._limit
        save(self.path, self.state)

    def next(self):
        self.value += 1
        if self.value >= self._limit:
            self._reserve()
        return self.value
