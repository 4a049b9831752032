"""OTA under the MicroPython unix port against the real hub: a good update is
staged, verified, swapped and confirmed; a forged bundle is refused; a broken
update is rolled back; the rollout stops by itself on a failure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import requests

from edge import signing
from edge.devices import rollout
from edge.storage.db import connect
from firmware.tools import bundle

from .test_firmware import FW, boot, micropython, provision  # noqa: F401

RESET = 75


def boot_until_settled(mp: str, root: Path, max_boots: int = 6) -> list[tuple[int, dict[str, Any]]]:
    """Boot like the board does: a reset (exit 75) boots again."""
    boots = []
    for _ in range(max_boots):
        code, status, log = boot(mp, root)
        boots.append((code, status))
        assert code in (0, RESET), log[-3000:]
        if code == 0:
            return boots
    raise AssertionError(f"the cart kept resetting: {boots}")


class Hub:
    def __init__(self, srv: Any) -> None:
        self.srv = srv
        creds = srv.creds()
        self.s = requests.Session()
        token = self.s.post(srv.url + "/api/v1/auth/login", json={"username": creds["admin_username"], "password": creds["admin_password"]}).json()["token"]
        self.s.headers["Authorization"] = f"Bearer {token}"

    def add_cart(self, cart_id: str) -> str:
        r = self.s.post(self.srv.url + "/api/v1/carts", json={"id": cart_id, "name": cart_id, "slots": 60})
        assert r.status_code == 201, r.text
        return str(r.json()["key"])

    def import_release(self, src: Path, public: str) -> str:
        db = connect(self.srv.data_dir / "hub.sqlite3")
        try:
            return rollout.import_release(db, self.srv.data_dir, src, public)
        finally:
            db.conn.close()

    def rollout(self, version: str, carts: list[str]) -> None:
        r = self.s.post(self.srv.url + "/api/v1/firmware/rollouts", json={"version": version, "carts": carts})
        assert r.status_code == 201, r.text

    def rollouts(self) -> list[dict[str, Any]]:
        return list(self.s.get(self.srv.url + "/api/v1/firmware/rollouts").json()["rollouts"])

    def cart(self, cart_id: str) -> dict[str, Any]:
        return next(c for c in self.s.get(self.srv.url + "/api/v1/carts").json()["carts"] if c["id"] == cart_id)


@pytest.fixture
def keys() -> tuple[str, str]:
    return signing.generate_key()


def ota_state(root: Path) -> dict[str, Any]:
    return dict(json.loads((root / "ota.json").read_text())) if (root / "ota.json").exists() else {"active": "a"}


def test_an_update_is_staged_verified_swapped_and_confirmed_keeping_the_previous(
    micropython: str, server_factory: Any, tmp_path: Path, keys: tuple[str, str],  # noqa: F811
) -> None:
    hub = Hub(server_factory().start())
    root = tmp_path / "flash"
    provision(root, "cart-1", hub.add_cart("cart-1"), hub.srv.port, run_ms=4000)
    bundle.build(tmp_path / "b110", keys[0], version="1.1.0")
    assert hub.import_release(tmp_path / "b110", keys[1]) == "1.1.0"
    hub.rollout("1.1.0", ["cart-1"])
    boots = boot_until_settled(micropython, root)
    assert [c for c, _ in boots] == [RESET, 0]
    state = ota_state(root)
    assert state["active"] == "b" and state["previous"] == "a" and state["pending"] is None
    assert (root / "a" / "cart" / "app.py").exists(), "the previous version is kept"
    assert boots[-1][1]["fw"] == "1.1.0" and boots[-1][1]["ota"]["state"] == "confirmed"
    assert hub.cart("cart-1")["fw"] == "1.1.0"
    assert hub.rollouts()[0]["status"] == "done"


def test_a_broken_update_is_rolled_back_and_the_rollout_stops(
    micropython: str, server_factory: Any, tmp_path: Path, keys: tuple[str, str],  # noqa: F811
) -> None:
    hub = Hub(server_factory().start())
    root = tmp_path / "flash"
    provision(root, "cart-1", hub.add_cart("cart-1"), hub.srv.port, run_ms=4000)
    hub.add_cart("cart-2")
    broken_src = tmp_path / "broken"
    shutil.copytree(FW / "cart", broken_src)
    (broken_src / "app.py").write_text((broken_src / "app.py").read_text() + "\nraise RuntimeError('a build that dies at start')\n")
    bundle.build(tmp_path / "b120", keys[0], source=broken_src, version="1.2.0")
    hub.import_release(tmp_path / "b120", keys[1])
    hub.rollout("1.2.0", ["cart-1", "cart-2"])
    boots = boot_until_settled(micropython, root)
    # stage -> reset; trial boot crashes -> loader rolls back -> reset; old version runs
    assert [c for c, _ in boots] == [RESET, RESET, 0], boots
    state = ota_state(root)
    assert state["active"] == "a" and state["pending"] is None
    assert state["last"]["state"] == "rolled_back" and state["last"]["version"] == "1.2.0"
    assert boots[-1][1]["fw"] == "1.0.0"
    r = hub.rollouts()[0]
    assert r["status"] == "stopped" and r["position"] == 0 and "cart-1" in r["detail"], r
    assert any(a["kind"] == "rollout-stopped" for a in hub.cart("cart-1")["alerts"])
    # the cart does not retry a version that failed on it
    code, status, _ = boot(micropython, root)
    assert code == 0 and status["fw"] == "1.0.0"


def test_a_forged_bundle_is_refused_by_the_cart_and_by_the_hub(
    micropython: str, server_factory: Any, tmp_path: Path, keys: tuple[str, str],  # noqa: F811
) -> None:
    hub = Hub(server_factory().start())
    root = tmp_path / "flash"
    provision(root, "cart-1", hub.add_cart("cart-1"), hub.srv.port, run_ms=4000)
    bundle.build(tmp_path / "b130", keys[0], version="1.3.0")
    # The hub refuses a bundle not signed with the configured key, or altered after signing.
    other_private, _ = signing.generate_key()
    bundle.build(tmp_path / "forged", other_private, version="1.3.0")
    with pytest.raises(rollout.RolloutError, match="refused"):
        hub.import_release(tmp_path / "forged", keys[1])
    altered = tmp_path / "altered"
    shutil.copytree(tmp_path / "b130", altered)
    (altered / "controller.py").write_text((altered / "controller.py").read_text() + "\n# evil\n")
    with pytest.raises(rollout.RolloutError, match="does not match"):
        hub.import_release(altered, keys[1])
    # A bundle altered on the hub's disk after import reaches the cart: the cart refuses it.
    hub.import_release(tmp_path / "b130", keys[1])
    served = hub.srv.data_dir / "firmware" / "1.3.0" / "controller.py"
    # same size, one byte changed: only the hash can tell
    served.write_text(served.read_text().replace("lim.slot_limit_ma", "lim.slot_limit_mA", 1))
    before = ota_state(root)
    hub.rollout("1.3.0", ["cart-1"])
    boots = boot_until_settled(micropython, root)
    assert [c for c, _ in boots] == [0]
    state = ota_state(root)
    assert state["active"] == before["active"] == "a" and state.get("pending") is None
    assert state["last"]["state"] == "refused" and "hash" in state["last"]["detail"]
    assert not (root / "b").exists() and not (root / "b.new").exists()
    assert hub.rollouts()[0]["status"] == "stopped"
