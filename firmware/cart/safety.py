# The safety core: decisions the controller makes whatever the hub says.
# Pure logic on numbers, no hardware and no clock of its own, so it is tested
# step by step in simulated time under the MicroPython unix port.
from cart import protocol


class Limits:
    """Safety settings, from the cart's local configuration (never from the hub)."""

    def __init__(self, cfg):
        self.cap_ma = int(cfg.get("cap_ma", 12000))  # the circuit's continuous limit
        self.slot_limit_ma = int(cfg.get("slot_limit_ma", 300))  # the most one slot's charger may draw
        self.trip_ma = int(cfg.get("trip_ma", self.slot_limit_ma * 5 // 4))  # over-current trip per slot
        self.stuck_ma = int(cfg.get("stuck_ma", 30))  # current through an open switch = welded relay
        self.settle_ms = int(cfg.get("settle_ms", 1000))  # an opened switch is budgeted this long
        self.max_on_per_cycle = int(cfg.get("max_on_per_cycle", 4))  # inrush: slots switched on per cycle
        self.derate_c = float(cfg.get("derate_c", 45.0))
        self.cutoff_c = float(cfg.get("cutoff_c", 55.0))
        self.hyst_c = float(cfg.get("hyst_c", 5.0))
        self.derate_min = float(cfg.get("derate_min", 0.25))
        self.start_delay_max_ms = int(cfg.get("start_delay_max_ms", 30000))
        self.hub_timeout_ms = int(cfg.get("hub_timeout_ms", 60000))
        self.rotate_ms = int(cfg.get("rotate_ms", 600000))
        self.full_ma = int(cfg.get("full_ma", 20))
        self.full_hold_ms = int(cfg.get("full_hold_ms", 120000))
        self.top_up_ms = int(cfg.get("top_up_ms", 7200000))
        if self.slot_limit_ma <= 0 or self.cap_ma < 0 or self.cutoff_c <= self.derate_c or self.hyst_c <= 0:
            raise ValueError("inconsistent safety limits")


class Thermal:
    """Over-temperature derating, then cut-off, each with hysteresis. A missing
    or implausible reading is treated as a cut-off: no charging blind."""

    def __init__(self, limits):
        self.lim = limits
        self.state = "ok"

    def update(self, temp):
        lim = self.lim
        if temp is None or not (protocol.TEMP_MIN_C <= temp <= protocol.TEMP_MAX_C):
            self.state = "sensor"
            return 0.0
        if self.state == "sensor":
            self.state = "cutoff" if temp >= lim.cutoff_c - lim.hyst_c else "ok"
        if temp >= lim.cutoff_c:
            self.state = "cutoff"
        elif self.state == "cutoff":
            if temp <= lim.cutoff_c - lim.hyst_c:
                self.state = "derate"
        elif temp >= lim.derate_c:
            self.state = "derate"
        elif self.state == "derate" and temp <= lim.derate_c - lim.hyst_c:
            self.state = "ok"
        if self.state == "cutoff":
            return 0.0
        if self.state == "ok":
            return 1.0
        # derating: full budget at the lower hysteresis edge, derate_min at cut-off
        low = lim.derate_c - lim.hyst_c
        frac = (temp - low) / (lim.cutoff_c - low)
        frac = 0.0 if frac < 0 else (1.0 if frac > 1 else frac)
        return 1.0 - (1.0 - lim.derate_min) * frac


def fallback_order(base, slots, now_ms, rotate_ms, window):
    """The local schedule used when the hub is away: the stored priority order
    (or 0..slots-1), rotated by ``window`` slots every ``rotate_ms`` so every
    tablet gets its turn within the cap."""
    order = list(base) if base else list(range(slots))
    seen = set(order)
    order += [s for s in range(slots) if s not in seen]
    if not order or window <= 0:
        return order
    shift = (now_ms // rotate_ms) * window % len(order)
    return order[shift:] + order[:shift]


def allocate(order, eligible, committed_ma, cap_ma, slot_limit_ma):
    """Slots to switch on: the first of ``order`` that are eligible, as many as the
    cap allows when every switched-on slot is budgeted at its charger's limit.
    ``committed_ma``: current the controller cannot switch off (open switches that
    still conduct, slots still settling). Budgeting at the limit, not at the
    measured draw, is what makes the cap hold between two readings whatever a
    tablet does (a newly docked tablet draws full current at once)."""
    room = cap_ma - committed_ma
    k = room // slot_limit_ma if room > 0 else 0
    chosen = []
    for s in order:
        if len(chosen) >= k:
            break
        if eligible[s]:
            chosen.append(s)
    return chosen
