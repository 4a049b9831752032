# The door lock: what the hub may ask of it and what the cart does on its own.
#
# The lock is fail-secure (a bolt that holds without power): a cart left in a
# classroom overnight holds 40-60 tablets, so a network fault, a hub restart or
# a brown-out must never open it. Decisions, whatever the hub says:
# - unlock is refused during a thermal cut-off: a cabinet that hot may hold a
#   battery going into thermal runaway, and opening the door feeds it air and puts
#   a hand next to it. The refusal is final (it does not unlock by surprise once
#   the cabinet cools); the mechanical key stays the override on the cart itself.
# - lock with the door open waits for the door to close, then locks: driving the
#   bolt out first would stop the door from closing.
# - with the hub unreachable for hub_timeout_ms (the same period after which the
#   charge fallback starts), an unlocked cart locks itself as soon as its door is
#   closed, since nobody could lock it from the hub any more ("offline_lock":
#   false in cart.json keeps it as it was instead).
# Every hub command carries an id; a repeated id (its reply or our ack was lost)
# is never executed twice, and the last command's outcome is reported in every
# telemetry message until a newer one replaces it.

DONE = "done"
REFUSED = "refused"
WAITING = "waiting"  # a lock waiting for the door to close


class DoorLock:
    def __init__(self, hal, saved=None, offline_lock=True):
        saved = saved or {}
        self.hal = hal
        self.locked = 0 if saved.get("locked") == 0 else 1  # never told otherwise: locked
        self.last_id = int(saved.get("last_id", 0))
        self.ack = saved.get("ack")
        self.offline_lock = offline_lock
        self.dirty = False  # the state on flash is behind
        hal.set_lock(self.locked)

    def saved(self):
        """What state.json keeps, so a reboot neither unlocks nor repeats a command."""
        return {"locked": self.locked, "last_id": self.last_id, "ack": self.ack}

    def command(self, cmd, door_open, thermal):
        """Apply a hub command {op, id} once. Returns False for an id already handled."""
        cid = cmd["id"]
        if cid <= self.last_id:
            return False
        self.last_id = cid
        op = cmd["op"]
        if op == "unlock" and thermal == "cutoff":
            self._ack(cid, op, REFUSED, "over-temperature cut-off: the door stays locked")
        elif op == "unlock":
            self._drive(0)
            self._ack(cid, op, DONE, "")
        elif door_open:
            self._ack(cid, op, WAITING, "door open: locks when it closes")
        else:
            self._drive(1)
            self._ack(cid, op, DONE, "")
        return True

    def update(self, door_open, hub_away):
        """Every control cycle: a waiting lock engages once the door is closed; the
        offline policy locks a closed cart the hub can no longer reach."""
        if door_open:
            return
        if self.ack is not None and self.ack["result"] == WAITING:
            self._drive(1)
            self._ack(self.ack["id"], "lock", DONE, "")
        elif hub_away and self.offline_lock and not self.locked:
            self._drive(1)

    def _drive(self, locked):
        if locked != self.locked:
            self.locked = locked
            self.dirty = True
        self.hal.set_lock(locked)

    def _ack(self, cid, op, result, detail):
        self.ack = {"id": cid, "op": op, "result": result}
        if detail:
            self.ack["detail"] = detail
        self.dirty = True
