"""Forwarding to an xAPI LRS over real HTTP; the sync schedule's arithmetic and jobs."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

from sync.agent.schedule import JOB_HOUSEKEEPING, JOB_IDLE_CHECK, JOB_WINDOW_CLOSE, JOB_WINDOW_OPEN, SyncSchedule, hub_offset_s, in_window, missed_window
from sync.district.lrs import LrsForwarder
from sync.district.store import SqliteStore
from sync.wire.batch import decode, encode, event_line


class _Lrs:
    def __init__(self, fail_first: int = 0):
        self.posts: list[tuple[dict, list]] = []
        self.fail_first = fail_first
        lrs = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                lrs.posts.append((dict(self.headers), body))
                if len(lrs.posts) <= lrs.fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                out = json.dumps([s["id"] for s in body]).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/xAPI"


def test_statements_reach_the_lrs_with_their_own_ids_once_accepted(tmp_path):
    store = SqliteStore(tmp_path / "d.sqlite3")
    rows = [(i, f"00000000-0000-4000-8000-{i:012d}", "xapi.statement", 1, json.dumps({"id": f"00000000-0000-4000-8000-{i:012d}",
             "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"}}), 1.0) for i in range(1, 251)]
    raw = b"".join(event_line(*r) for r in rows)
    batch = decode(encode("d", "s", "h", 1, 250, 250, raw, 0.0), 1 << 22, 1000)
    store.ingest(batch.header, batch.events, 1.0)
    lrs = _Lrs(fail_first=1)
    fwd = LrsForwarder(store, lrs.url, auth=("district", "pw"), batch=200)
    try:
        assert fwd.forward_once() == 0  # the LRS was down: nothing marked
        assert fwd.forward_once() == 200
        assert fwd.forward_once() == 50
        assert fwd.forward_once() == 0
    finally:
        lrs.httpd.shutdown()
    headers, first = lrs.posts[1]
    assert headers["X-Experience-API-Version"] == "1.0.3" and headers["Authorization"].startswith("Basic ")
    sent = [s["id"] for _, body in lrs.posts[1:] for s in body]
    assert sent == [r[1] for r in rows]  # the hub's ids, each once after acceptance
    assert [s["id"] for s in lrs.posts[0][1]] == sent[:200]  # the retry re-sent the same ids (idempotent at the LRS)


TZ = ZoneInfo("Asia/Shanghai")


def test_each_hub_has_a_stable_offset_and_a_fleet_spreads_out():
    assert hub_offset_s("hub-1", 60) == hub_offset_s("hub-1", 60)
    offsets = [hub_offset_s(f"hub-{i}", 60) for i in range(311)]
    assert all(0 <= o < 3600 for o in offsets)
    assert len(set(offsets)) > 290  # 311 hubs do not start in the same second
    assert max(offsets) - min(offsets) > 3000


def test_window_across_midnight_and_missed_windows():
    at = lambda h, m, day=24: dt.datetime(2026, 11, day, h, m, tzinfo=TZ)  # noqa: E731
    assert in_window(at(23, 0), "22:00", "05:00", 600)
    assert in_window(at(4, 59, 25), "22:00", "05:00", 600)
    assert not in_window(at(22, 5), "22:00", "05:00", 600)  # before this hub's offset
    assert not in_window(at(12, 0), "22:00", "05:00", 0)
    synced_last_night = at(23, 30, 23).timestamp()
    assert not missed_window(at(12, 0), at(23, 30, 23).timestamp(), "22:00", "05:00", 0)
    assert missed_window(at(12, 0, 25), synced_last_night, "22:00", "05:00", 0)  # the agent was down on the 24th
    assert missed_window(at(12, 0), None, "22:00", "05:00", 0)


def test_jobs_have_fixed_ids_and_starting_twice_does_not_duplicate_them():
    events = []
    sched = SyncSchedule("hub-x", "Asia/Shanghai", "22:00", "05:00", 60, lambda r: events.append(("on", r)),
                         lambda r: events.append(("off", r)), idle_check=lambda: False,
                         housekeeping=lambda: None)
    try:
        sched.start(last_sync_at=None)
        ids = sorted(j.id for j in sched.scheduler.get_jobs())
        for job_id, fn in [(JOB_WINDOW_OPEN, sched._open), (JOB_WINDOW_CLOSE, sched._close)]:
            sched.scheduler.add_job(fn, "interval", hours=1, id=job_id, replace_existing=True)  # a re-registration
        assert sorted(j.id for j in sched.scheduler.get_jobs()) == ids == sorted([JOB_WINDOW_OPEN, JOB_WINDOW_CLOSE, JOB_IDLE_CHECK, JOB_HOUSEKEEPING])
    finally:
        sched.stop()
    # Never synced: the missed window runs at start (or the window is open right now).
    assert events and events[0][0] == "on" and events[0][1] in ("missed-window", "window")
