"""Disk pressure: telemetry may be thinned, learning data never."""

from __future__ import annotations

from edge import outbox
from edge.storage.db import transaction

from .support import make_hub


def _counts(db):
    return dict(db.execute("SELECT type, COUNT(*) FROM outbox GROUP BY type").fetchall())


def test_housekeeping_thins_telemetry_but_keeps_every_answer(tmp_path, broker, pki):
    hub = make_hub(tmp_path, broker, pki)
    with transaction(hub.db):
        for minute in range(120):
            at = 1_764_000_000 + minute * 60
            for dev in range(5):
                seq = outbox.append(hub.db, "device.telemetry", {"device": f"tab-{dev}", "battery": 90})
                hub.db.conn.execute("UPDATE outbox SET created_at = ? WHERE seq = ?", (at, seq))
            seq = outbox.append(hub.db, "cart.telemetry", {"cart": "cart-1", "temp_c": 30})
            hub.db.conn.execute("UPDATE outbox SET created_at = ? WHERE seq = ?", (at, seq))
            outbox.append(hub.db, "xapi.statement", {"id": f"s{minute}"})
            outbox.append(hub.db, "attendance.signin", {"student": f"p{minute}"})
    agent = hub.agent()
    # Make the disk look nearly full: a reserve larger than the free space.
    agent.config.storage.disk_reserve_mb = 10**9
    agent.housekeeping()
    after = _counts(hub.db)
    assert after["xapi.statement"] == 120 and after["attendance.signin"] == 120
    assert after["device.telemetry"] == 5 * 12  # one per device per 10 minutes (two hours: 12 buckets)
    assert after["cart.telemetry"] == 12
    # With room on the disk nothing is touched.
    agent.config.storage.disk_reserve_mb = 0
    before = _counts(hub.db)
    agent.housekeeping()
    assert _counts(hub.db) == before
