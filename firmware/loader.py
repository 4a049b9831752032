# The cart's boot loader: installed once as /main.py, never replaced by an OTA
# update. It picks the application slot (a or b) from ota.json, gives a newly
# installed version exactly one boot to prove itself, and falls back to the
# previous one otherwise. On the unix port: micropython loader.py <root>.
import json
import os
import sys

RESET_EXIT = 75


def _path(root, name):
    return root + "/" + name if root else name


def _read(root):
    try:
        with open(_path(root, "ota.json")) as fh:
            state = json.load(fh)
        if state.get("active") in ("a", "b"):
            return state
    except (OSError, ValueError):
        pass
    return {"active": "a", "pending": None, "tries": 0, "previous": None, "last": {"state": "idle"}}


def _write(root, state):
    tmp = _path(root, "ota.json.tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(state))
    os.rename(tmp, _path(root, "ota.json"))


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _roll_back(root, state, detail):
    version = (state.get("last") or {}).get("version")
    state["pending"] = None
    state["tries"] = 0
    state["last"] = {"state": "rolled_back", "version": version, "detail": detail[:120]}
    _write(root, state)


def boot_slot(root):
    """(slot to run, whether it is a trial boot of a new version)."""
    state = _read(root)
    pending = state.get("pending")
    if pending in ("a", "b") and _exists(_path(root, pending + "/cart/app.py")):
        if state.get("tries", 0) >= 1:
            _roll_back(root, state, "did not report healthy before a reset")
            return state["active"], False
        state["tries"] = state.get("tries", 0) + 1
        _write(root, state)
        return pending, True
    if pending:
        _roll_back(root, state, "pending slot is incomplete")
    return state["active"], False


def _reset():
    try:
        import machine

        machine.reset()
    except (ImportError, AttributeError):
        sys.exit(RESET_EXIT)


def main(root):
    slot, trial = boot_slot(root)
    sys.path.insert(0, _path(root, slot))
    try:
        from cart import app

        app.main(root, slot)
    except SystemExit:
        raise
    except Exception as exc:
        sys.print_exception(exc) if hasattr(sys, "print_exception") else print(repr(exc))
        if trial:
            _roll_back(root, _read(root), "crashed: " + repr(exc))
        _reset()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
