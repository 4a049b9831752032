"""When the uplink may send: the nightly window, idle time, or a manual run.

Jobs have fixed ids and ``replace_existing=True`` so a restart or a second call
never schedules a job twice. 300+ hubs share one window: each starts at a
deterministic offset derived from its id, so the fleet spreads over
``window_spread_min`` minutes and one hub starts at the same time every night.
A window missed while the agent was down runs at the next start.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)

JOB_WINDOW_OPEN = "sync-window-open"
JOB_WINDOW_CLOSE = "sync-window-close"
JOB_IDLE_CHECK = "sync-idle-check"
JOB_HOUSEKEEPING = "sync-housekeeping"


def _hm(text: str) -> dt.time:
    hour, minute = text.split(":")
    return dt.time(int(hour), int(minute))


def hub_offset_s(hub_id: str, spread_min: int) -> int:
    """Seconds after window start at which this hub begins; stable across restarts and hubs."""
    if spread_min <= 0:
        return 0
    return int.from_bytes(hashlib.sha256(hub_id.encode()).digest()[:8], "big") % (spread_min * 60)


def window_bounds(now: dt.datetime, start: str, end: str, offset_s: int) -> tuple[dt.datetime, dt.datetime]:
    """The most recent window opening (with offset) at or before ``now``, and its end."""
    opening = dt.datetime.combine(now.date(), _hm(start), now.tzinfo) + dt.timedelta(seconds=offset_s)
    if opening > now:
        opening -= dt.timedelta(days=1)
    closing = dt.datetime.combine(opening.date(), _hm(end), now.tzinfo)
    if closing <= opening:
        closing += dt.timedelta(days=1)
    return opening, closing


def in_window(now: dt.datetime, start: str, end: str, offset_s: int) -> bool:
    opening, closing = window_bounds(now, start, end, offset_s)
    return opening <= now < closing


def missed_window(now: dt.datetime, last_sync_at: float | None, start: str, end: str, offset_s: int) -> bool:
    """True when the last window opened after the last successful sync (the agent was down or offline)."""
    opening, _ = window_bounds(now, start, end, offset_s)
    return last_sync_at is None or dt.datetime.fromtimestamp(last_sync_at, now.tzinfo) < opening


class SyncSchedule:
    def __init__(
        self,
        hub_id: str,
        timezone: str,
        window_start: str,
        window_end: str,
        spread_min: int,
        enable: Callable[[str], None],
        disable: Callable[[str], None],
        idle_check: Callable[[], bool] | None,
        housekeeping: Callable[[], None] | None = None,
    ) -> None:
        self.tz = ZoneInfo(timezone)
        self.window_start, self.window_end = window_start, window_end
        self.offset_s = hub_offset_s(hub_id, spread_min)
        self._enable, self._disable = enable, disable
        self._idle_check = idle_check
        self._housekeeping = housekeeping
        self.scheduler = BackgroundScheduler(timezone=self.tz, job_defaults={"coalesce": True, "max_instances": 1})

    def start(self, last_sync_at: float | None) -> None:
        opening = (dt.datetime.combine(dt.date.today(), _hm(self.window_start)) + dt.timedelta(seconds=self.offset_s)).time()
        closing = _hm(self.window_end)
        s = self.scheduler
        s.add_job(self._open, CronTrigger(hour=opening.hour, minute=opening.minute, second=opening.second, timezone=self.tz),
                  id=JOB_WINDOW_OPEN, replace_existing=True, misfire_grace_time=3600)
        s.add_job(self._close, CronTrigger(hour=closing.hour, minute=closing.minute, timezone=self.tz),
                  id=JOB_WINDOW_CLOSE, replace_existing=True, misfire_grace_time=3600)
        if self._idle_check is not None:
            s.add_job(self._idle, IntervalTrigger(seconds=60), id=JOB_IDLE_CHECK, replace_existing=True)
        if self._housekeeping is not None:
            s.add_job(self._housekeeping, IntervalTrigger(minutes=10), id=JOB_HOUSEKEEPING, replace_existing=True,
                      next_run_time=dt.datetime.now(self.tz))
        s.start()
        now = dt.datetime.now(self.tz)
        if in_window(now, self.window_start, self.window_end, self.offset_s):
            self._open()
        elif missed_window(now, last_sync_at, self.window_start, self.window_end, self.offset_s):
            log.info("the last upload window was missed; uploading now")
            self._enable("missed-window")
        log.info("sync schedule", extra={"window": f"{self.window_start}-{self.window_end}", "offset_s": self.offset_s})

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def _open(self) -> None:
        self._enable("window")

    def _close(self) -> None:
        self._disable("window")
        self._disable("missed-window")

    def _idle(self) -> None:
        if self._idle_check and self._idle_check():
            self._enable("idle")
        else:
            self._disable("idle")
