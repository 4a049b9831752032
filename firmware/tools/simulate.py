"""Run the cart firmware itself on a PC (CPython) with the simulated hardware:
the demo classroom's cart, or a cart for trying a hub out.

    python -m firmware.tools.simulate ROOT [--parent PID]

ROOT is a flash image folder: ``cart.json`` (provisioning, with "hal": "sim"),
``a/cart/`` (the application) and, after updates, ``b/cart/`` and ``ota.json``.
Like the board, a reset (exit status 75) boots the loader again, so OTA updates
and rollbacks work here too. With --parent the simulator ends when that process does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOADER = HERE.parent / "loader.py"
RESET_EXIT = 75


def install(root: Path) -> None:
    """Put the loader and the current application into a fresh flash image."""
    if not (root / "a" / "cart").exists():
        shutil.copytree(HERE.parent / "cart", root / "a" / "cart")


def _watch_parent(pid: int, child: list[subprocess.Popen[bytes]]) -> None:
    while True:
        time.sleep(1)
        try:
            os.kill(pid, 0)
        except OSError:
            for proc in child:
                proc.terminate()
            os._exit(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--parent", type=int, help="exit when this process exits")
    args = ap.parse_args()
    install(args.root)
    running: list[subprocess.Popen[bytes]] = []
    if args.parent:
        threading.Thread(target=_watch_parent, args=(args.parent, running), daemon=True).start()
    # The loader imports "cart" from the image, never from this repository.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    while True:
        proc = subprocess.Popen([sys.executable, str(LOADER), str(args.root)], env=env, stdout=subprocess.DEVNULL)
        running[:] = [proc]
        code = proc.wait()
        if code != RESET_EXIT:
            sys.exit(code)


if __name__ == "__main__":
    main()
