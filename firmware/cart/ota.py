# Over-the-air update on the cart: two application slots (a, b) under the flash
# root, each holding a complete cart/ package, and ota.json saying which one
# boots. Staging never touches the running slot; the switch is one atomic
# rename of ota.json; the previous slot is kept for a rollback.
#
# ota.json: {"active": "a", "pending": null|"b", "tries": 0, "previous": null|"b",
#            "last": {"state": ..., "version": ..., "detail": ...}}
# The loader (loader.py) boots "pending" once; if that boot does not call
# confirm() (a crash, a hang the watchdog resets, an unhealthy app that calls
# rollback()), the next boot goes back to "active".
import hashlib

from cart import protocol, store
from cart.compat import makedirs, replace, rmtree

STATE = "ota.json"


def read_state(root):
    state = store.load(root + "/" + STATE, None)
    if not isinstance(state, dict) or state.get("active") not in ("a", "b"):
        state = {"active": "a", "pending": None, "tries": 0, "previous": None, "last": {"state": "idle"}}
    return state


def write_state(root, state):
    store.save(root + "/" + STATE, state)


def other(slot):
    return "b" if slot == "a" else "a"


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(2048)
            if not chunk:
                break
            h.update(chunk)
    return protocol.to_hex(h.digest())


class OtaError(Exception):
    pass


class Ota:
    def __init__(self, root, running_slot):
        self.root = root
        self.slot = running_slot
        self.state = read_state(root)

    @property
    def in_trial(self):
        return self.state.get("pending") == self.slot

    def report(self):
        last = self.state.get("last") or {"state": "idle"}
        if self.in_trial:
            return {"state": "trial", "version": last.get("version")}
        out = {"state": last.get("state", "idle")}
        if last.get("version"):
            out["version"] = last["version"]
        if last.get("detail"):
            out["detail"] = last["detail"][:120]
        return out

    async def install(self, manifest, fetch):
        """Stage every file of ``manifest`` (already authenticated: it came in a
        reply whose MAC verified) into the other slot, check each file's hash,
        then make that slot pending. The caller resets the board afterwards.
        Raises OtaError and leaves the boot state as it was on any failure."""
        errors = protocol.check_manifest(manifest)
        if errors:
            self._note("refused", manifest.get("version"), errors[0])
            raise OtaError(errors[0])
        version = manifest["version"]
        target = other(self.slot)
        staging = self.root + "/" + target + ".new"
        rmtree(staging)
        makedirs(staging + "/cart")
        self._note("staging", version, None)
        try:
            for entry in manifest["files"]:
                data = await fetch(version, entry["name"])
                if len(data) != entry["size"]:
                    raise OtaError("%s: %d bytes, manifest says %d" % (entry["name"], len(data), entry["size"]))
                with open(staging + "/cart/" + entry["name"], "wb") as fh:
                    fh.write(data)
            # Verify what is on flash, not what was in memory: a bad write shows here.
            for entry in manifest["files"]:
                got = file_sha256(staging + "/cart/" + entry["name"])
                if not protocol.equal(got, entry["sha256"]):
                    raise OtaError("%s: hash does not match the manifest (forged or corrupted)" % entry["name"])
            if "app.py" not in [e["name"] for e in manifest["files"]]:
                raise OtaError("bundle has no app.py")
        except Exception as exc:
            rmtree(staging)
            self._note("refused", version, str(exc))
            raise OtaError(str(exc)) from None
        # The previous version in the target slot goes now; the running one stays.
        self.state["previous"] = None
        write_state(self.root, self.state)
        rmtree(self.root + "/" + target)
        replace(staging, self.root + "/" + target)
        self.state["pending"] = target
        self.state["tries"] = 0
        self.state["last"] = {"state": "staging", "version": version}
        write_state(self.root, self.state)  # the atomic switch

    def confirm(self, version):
        """The new version runs healthy: make it the active one, keep the old."""
        if not self.in_trial:
            return
        self.state["previous"] = self.state["active"]
        self.state["active"] = self.slot
        self.state["pending"] = None
        self.state["tries"] = 0
        self.state["last"] = {"state": "confirmed", "version": version}
        write_state(self.root, self.state)

    def rollback(self, detail):
        """Give up on the pending version; the next boot runs the active one."""
        version = (self.state.get("last") or {}).get("version")
        self.state["pending"] = None
        self.state["tries"] = 0
        self.state["last"] = {"state": "rolled_back", "version": version, "detail": detail[:120]}
        write_state(self.root, self.state)

    def _note(self, state, version, detail):
        self.state["last"] = {"state": state, "version": version, "detail": detail}
        write_state(self.root, self.state)
