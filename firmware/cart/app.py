# The cart controller application: asyncio tasks for sensing, control, the
# telemetry/hub link, the watchdog and (simulated carts only) the physics.
# main(root, slot) is called by the loader with the flash root and the running slot.
import json
import sys

from cart import VERSION, store
from cart.compat import asyncio, reset, ticks_diff, ticks_ms, wdt
from cart.controller import Controller
from cart.link import HubLink, LinkError
from cart.ota import Ota, OtaError
from cart.protocol import from_hex


def make_hal(cfg):
    if cfg.get("hal", "esp32") == "sim":
        from cart.hal_sim import SimHal, Tablet

        sim = cfg.get("sim", {})
        hal = SimHal(cfg["slots"], volts=sim.get("volts", 120.0))
        socs = sim.get("socs") or []
        for s in range(min(sim.get("tablets", cfg["slots"]), cfg["slots"])):
            hal.insert(s, Tablet("SIM%03d" % (s + 1), socs[s] if s < len(socs) else 0.2 + 0.6 * ((s * 37) % 100) / 100.0,
                                 charger_w=sim.get("charger_w", 30.0)))
        return hal
    from cart.hal_esp32 import Esp32Hal

    return Esp32Hal(cfg)


class Watchdog:
    """machine.WDT where the board has one. The unix port has none, so a task
    does its job: no feed within the timeout resets the process."""

    def __init__(self, timeout_ms):
        self.timeout_ms = timeout_ms
        self.hw = wdt(timeout_ms)
        self.fed = ticks_ms()

    def feed(self):
        self.fed = ticks_ms()
        if self.hw is not None:
            self.hw.feed()

    async def run(self, on_expire):
        while self.hw is None:
            await asyncio.sleep_ms(100) if hasattr(asyncio, "sleep_ms") else await asyncio.sleep(0.1)
            if ticks_diff(ticks_ms(), self.fed) > self.timeout_ms:
                on_expire()


async def _sleep_ms(ms):
    await asyncio.sleep(ms / 1000)


class App:
    def __init__(self, root, slot, cfg, hal=None):
        self.root = root
        self.slot = slot
        self.cfg = cfg
        self.state_path = root + "/state.json"
        self.state = store.load(self.state_path, {}) or {}
        self.state["boots"] = int(self.state.get("boots", 0)) + 1
        self.counter = store.Counter(self.state, self.state_path)  # also saves boots
        self.hal = hal or make_hal(cfg)
        self.t0 = ticks_ms()
        self.ctl = Controller(self.hal, cfg, self.t0, start_delay_ms=cfg.get("start_delay_ms"),
                              fallback_base=self.state.get("fallback"), lock_state=self.state.get("lock"))
        self.ota = Ota(root, slot)
        self.link = HubLink(cfg["hub_host"], int(cfg["hub_port"]), cfg["cart_id"], from_hex(cfg["key"]), self.counter,
                            timeout_s=cfg.get("link_timeout_s", 5))
        self.period_ms = int(cfg.get("period_ms", 250))
        self.telemetry_ms = int(cfg.get("telemetry_ms", 3000))
        self.watchdog = Watchdog(int(cfg.get("wdt_ms", 5000)))
        self.sensed_at = None
        self.link_ok = 0
        self.link_fail = 0
        self.last_error = None
        self.periods = []  # recent control-loop periods (ms), for the benchmark
        self.stop = False
        self.reset_reason = None
        self._pending_ota = None

    def log(self, event, **fields):
        fields["event"] = event
        fields["t"] = ticks_diff(ticks_ms(), self.t0)
        print(json.dumps(fields))

    # -- tasks --------------------------------------------------------------------------
    async def sense_task(self):
        while not self.stop:
            try:
                self.ctl.sense()
                self.sensed_at = ticks_ms()
            except OSError as exc:
                self.last_error = "sense: " + str(exc)
            await _sleep_ms(self.period_ms)

    async def control_task(self):
        last = ticks_ms()
        while not self.stop:
            now = ticks_ms()
            fresh = self.sensed_at is not None and ticks_diff(now, self.sensed_at) <= 3 * self.period_ms
            if fresh:
                self.ctl.control(now)
                self.ctl.cycles += 1
                self.watchdog.feed()  # only a loop that saw fresh readings and decided feeds it
            elif self.sensed_at is not None:
                self._all_off()
            if len(self.periods) < 2000:
                self.periods.append(ticks_diff(now, last))
            last = now
            if self.ota.in_trial:
                self._trial_check(now)
            await _sleep_ms(self.period_ms)

    async def link_task(self):
        while not self.stop:
            await self.exchange_once()
            if self._pending_ota is not None:
                manifest, self._pending_ota = self._pending_ota, None
                try:
                    await self.ota.install(manifest, self.link.fetch)
                    self.log("ota-staged", version=manifest["version"])
                    self.request_reset("boot the staged firmware")
                except OtaError as exc:
                    self.log("ota-refused", version=manifest.get("version"), reason=str(exc))
                except (OSError, LinkError) as exc:
                    self.ota.rollback("download failed: " + str(exc))
            await _sleep_ms(self.telemetry_ms)

    async def exchange_once(self):
        now = ticks_ms()
        msg = self.ctl.telemetry(self.cfg["cart_id"], 0, VERSION, self.state["boots"],
                                 ticks_diff(now, self.t0) // 1000, self.ota.report())
        try:
            reply = await self.link.exchange(msg)
            errors = __import__("cart.protocol").protocol.check_reply(reply, self.ctl.n)
            if errors:
                raise LinkError("reply refused: " + errors[0])
        except (OSError, LinkError, ValueError) as exc:
            self.link_fail += 1
            self.last_error = str(exc)
            return False
        self.link_ok += 1
        now = ticks_ms()
        self.ctl.hub_seen(now)
        plan = reply.get("plan")
        if plan:
            self.ctl.apply_plan(plan["order"], plan["ttl"], now)
            if self.link_ok % 100 == 1:  # the fallback order on flash, without wearing it out
                self.state["fallback"] = self.ctl.fallback_base
                store.save(self.state_path, self.state)
        for cmd in reply.get("cmds", []):
            if cmd["op"] in ("lock", "unlock"):
                if self.ctl.lock_command(cmd):
                    self.log("lock-command", id=cmd["id"], op=cmd["op"], result=self.ctl.doorlock.ack["result"])
                    self.save_lock()  # before the ack leaves: a reboot must not run it again
            elif cmd["op"] == "ota" and cmd["version"] != VERSION and not self.ota.in_trial:
                last = self.ota.state.get("last") or {}
                if not (last.get("version") == cmd["version"] and last.get("state") in ("rolled_back", "refused")):
                    self._pending_ota = cmd  # a version that failed here once is not retried
        return True

    def save_lock(self):
        self.state["lock"] = self.ctl.doorlock.saved()
        store.save(self.state_path, self.state)
        self.ctl.doorlock.dirty = False

    def _trial_check(self, now):
        healthy = self.ctl.cycles >= int(self.cfg.get("healthy_cycles", 20)) and self.link_ok >= 1
        if healthy:
            self.ota.confirm(VERSION)
            self.log("ota-confirmed", version=VERSION)
        elif ticks_diff(now, self.t0) > int(self.cfg.get("trial_deadline_ms", 60000)):
            self.ota.rollback("not healthy within %d ms" % int(self.cfg.get("trial_deadline_ms", 60000)))
            self.log("ota-rollback", version=VERSION)
            self.request_reset("trial failed")

    async def sim_task(self):
        speed = float(self.cfg.get("sim", {}).get("speed", 1.0))
        control = self.root + "/sim-control.json"
        while not self.stop:
            await _sleep_ms(self.period_ms)
            self.hal.advance(self.period_ms / 1000.0 * speed)
            inject = store.load(control, None)
            if inject:
                self.hal.temp_override = inject.get("temp")
                self.hal.bus_dead = bool(inject.get("bus_dead"))
                if "door" in inject:
                    self.hal.door = 1 if inject["door"] else 0

    def _all_off(self):
        for s in range(self.ctl.n):
            self.hal.set_switch(s, 0)
            self.ctl.on[s] = 0
        self.hal.set_main(0)
        self.ctl.main = 0

    def _expired(self):
        self.log("watchdog", reason=self.last_error)
        self.request_reset("watchdog")

    def request_reset(self, why):
        # Reset from the main coroutine: an exception raised inside a task would
        # only be printed by the event loop, not end the program.
        self._all_off()
        self.reset_reason = why
        self.stop = True

    def status(self):
        return {"fw": VERSION, "slot": self.slot, "mode": self.ctl.mode, "thermal": self.ctl.thermal.state,
                "cycles": self.ctl.cycles, "link_ok": self.link_ok, "link_fail": self.link_fail,
                "on": sum(self.ctl.on), "cap": self.ctl.cap_eff, "last_error": self.last_error,
                "door": self.ctl.door, "lock": self.ctl.doorlock.locked, "lock_ack": self.ctl.doorlock.ack,
                "ota": self.ota.report(), "periods": self.periods[-500:]}

    async def run(self):
        tasks = [asyncio.create_task(self.sense_task()), asyncio.create_task(self.control_task()),
                 asyncio.create_task(self.link_task()), asyncio.create_task(self.watchdog.run(self._expired))]
        if self.cfg.get("hal") == "sim":
            tasks.append(asyncio.create_task(self.sim_task()))
        run_ms = self.cfg.get("run_ms")
        status_every = 0
        while not self.stop:
            await _sleep_ms(500)
            status_every += 1
            if self.ctl.doorlock.dirty:  # a waiting lock engaged, or the offline policy locked
                self.save_lock()
            if status_every % 2 == 0:
                store.save(self.root + "/status.json", self.status())
            # run_ms (tests, demo) never cuts a trial short: the trial deadline decides it
            if run_ms and ticks_diff(ticks_ms(), self.t0) >= run_ms and not self.ota.in_trial:
                self.stop = True
        store.save(self.root + "/status.json", self.status())
        for t in tasks:
            t.cancel()
        self._all_off()
        if self.reset_reason:
            reset()


def main(root, slot):
    cfg = store.load(root + "/cart.json")
    if cfg is None:
        print("no cart.json under " + (root or "/") + ": not provisioned")
        sys.exit(2)
    asyncio.run(App(root, slot, cfg).run())
