"""The demo classroom's cart: enrolled, stocked with 60 tablets (45 assigned to
the demo class's students), a timetable, and the cart firmware itself running on
the simulated hardware against the demo hub (firmware/tools/simulate.py)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from edge.config import HubConfig
from edge.devices import service
from edge.storage.db import connect, transaction

CART_ID = "demo-cart"
LESSONS = ["08:00", "08:50", "09:40", "10:40", "11:30", "14:00", "14:50", "15:40"]


def seed_cart(config: HubConfig, creds: Any) -> None:
    db = connect(config.db_path, config.storage.busy_timeout_ms, config.storage.synchronous)
    try:
        class_id = db.execute("SELECT id FROM classes WHERE name = ?", (creds.class_name,)).fetchone()[0]
        key = service.add_cart(db, CART_ID, f"{creds.class_name}充电车", 60, 1440.0, class_id, volts=120.0)
        students = [r[0] for r in db.execute("SELECT id FROM students WHERE class_id = ? ORDER BY number", (class_id,))]
        for slot in range(1, 61):
            student = students[slot - 1] if slot <= len(students) else None
            service.add_tablet(db, f"DEMO-TAB-{slot:02d}", "MatePad 11", CART_ID, slot, None, student)
        with transaction(db):
            for weekday in range(5):
                for starts in LESSONS:
                    db.conn.execute("INSERT INTO cart_timetable (cart_id, weekday, starts, class_id, tablets) VALUES (?, ?, ?, ?, ?)",
                                    (CART_ID, weekday, starts, class_id, 45))
    finally:
        db.conn.close()
    root = config.hub.data_dir / "demo-cart"
    root.mkdir(mode=0o700, exist_ok=True)
    rng = random.Random(7)
    cfg = {"cart_id": CART_ID, "key": key, "hub_host": "127.0.0.1", "hub_port": config.http.port, "slots": 60, "hal": "sim",
           "cap_ma": 12000, "slot_limit_ma": 263, "period_ms": 500, "telemetry_ms": 3000, "start_delay_max_ms": 5000,
           "sim": {"speed": 60, "socs": [round(rng.uniform(0.1, 0.95), 2) for _ in range(60)]}}
    fd = os.open(root / "cart.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(cfg, fh)
    if _is_demo_command():
        start_simulator(root)


def _is_demo_command() -> bool:
    # Seeding also happens in test fixtures and scripts; only the running demo
    # hub gets a live simulated cart beside it.
    return Path(sys.argv[0]).name == "classroom-hub" and "demo" in sys.argv[1:]


def start_simulator(root: Path) -> subprocess.Popen[bytes]:
    """The simulated cart, for as long as this (the demo) process runs."""
    return subprocess.Popen([sys.executable, "-m", "firmware.tools.simulate", str(root), "--parent", str(os.getpid())],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
