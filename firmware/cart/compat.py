# Differences between MicroPython (the cart) and CPython (host tools, the demo
# simulator, the hub's tests), kept in one place so the rest reads the same on both.
import os
import sys

MICROPYTHON = sys.implementation.name == "micropython"

try:
    from time import ticks_add, ticks_diff, ticks_ms  # MicroPython
except ImportError:  # CPython
    import time as _time

    _T0 = _time.monotonic()

    def ticks_ms():
        return int((_time.monotonic() - _T0) * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b

try:
    import asyncio
except ImportError:  # very old ports
    import uasyncio as asyncio  # noqa: F401

# Exit status the unix port uses for "reset the board": the host harness (tests,
# simulator) restarts the loader, which is what the bootloader does on a cart.
RESET_EXIT = 75


def reset():
    try:
        import machine

        machine.reset()
    except (ImportError, AttributeError):
        sys.exit(RESET_EXIT)


def wdt(timeout_ms):
    """The hardware watchdog, or None where the port has none (unix port, CPython)."""
    try:
        from machine import WDT

        return WDT(timeout=timeout_ms)
    except (ImportError, AttributeError):
        return None


def urandom(n):
    return os.urandom(n)


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def is_dir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def makedirs(path):
    parts = path.split("/")
    cur = "/" if path.startswith("/") else ""
    for part in parts:
        if not part:
            continue
        cur = cur + part if cur.endswith("/") or not cur else cur + "/" + part
        if not exists(cur):
            os.mkdir(cur)


def rmtree(path):
    if not exists(path):
        return
    if is_dir(path):
        for name in os.listdir(path):
            rmtree(path + "/" + name)
        os.rmdir(path)
    else:
        os.remove(path)


def replace(src, dst):
    # os.rename replaces an existing file atomically on littlefs and POSIX.
    os.rename(src, dst)


def fsync_write(path, data):
    """Write ``data`` (bytes) to ``path`` through a temporary file and a rename,
    so a power cut leaves either the old or the new content, never half."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
        try:
            fh.flush()
            os.fsync(fh.fileno())
        except (AttributeError, OSError):
            pass  # MicroPython flushes on close
    replace(tmp, path)
