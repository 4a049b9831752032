"""Cutting outbox rows into batches that respect the count, raw and wire limits."""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass

from edge import outbox
from edge.storage.db import Database
from sync.wire.batch import EVENT_LINE_SQL, encode, event_line


@dataclass(frozen=True)
class Limits:
    max_events: int
    max_raw_bytes: int
    max_wire_bytes: int


@dataclass(frozen=True)
class Built:
    first: int
    last: int
    count: int
    raw_bytes: int
    message: bytes


class Batcher:
    def __init__(self, district: str, school: str, hub: str, limits: Limits) -> None:
        self.district, self.school, self.hub = district, school, hub
        self.limits = limits

    def _encode(self, first: int, rows: list[tuple], lines: list[bytes], created_at: float, last: int | None = None) -> Built:
        last = rows[-1][0] if last is None else last
        return self._encode_raw(first, last, len(rows), b"".join(lines), created_at)

    def _encode_raw(self, first: int, last: int, count: int, raw: bytes, created_at: float) -> Built:
        message = encode(self.district, self.school, self.hub, first, last, count, raw, created_at)
        return Built(first, last, count, len(raw), message)

    def next_after(self, db: Database, cursor: int, created_at: float, upto: int | None = None) -> Built | None:
        """The next batch covering ``cursor+1 ..`` (None when nothing is waiting)."""
        # Usually SQLite formats and joins the whole batch in one step (EVENT_LINE_SQL);
        # only when that is over a limit are the rows read one by one and cut to fit.
        joined = outbox.read_joined(db, cursor, self.limits.max_events, EVENT_LINE_SQL, upto)
        if joined is None:
            return None
        count, _, last, raw = joined
        if len(raw) <= self.limits.max_raw_bytes:
            built = self._encode_raw(cursor + 1, last, count, raw, created_at)
            if len(built.message) <= self.limits.max_wire_bytes:
                return built
        return self._next_after_rows(db, cursor, created_at, upto)

    def _next_after_rows(self, db: Database, cursor: int, created_at: float, upto: int | None) -> Built | None:
        rows = outbox.read_after(db, cursor, self.limits.max_events, upto, payload_bytes=True)
        if not rows:
            return None
        lines = [event_line(*row) for row in rows]
        # How many lines fit in max_raw_bytes (at least one), without a Python loop per event.
        fit = max(1, bisect.bisect_right(list(itertools.accumulate(map(len, lines))), self.limits.max_raw_bytes))
        rows, lines = rows[:fit], lines[:fit]
        built = self._encode(cursor + 1, rows, lines, created_at)
        # Compressed size is only known after compressing: halve until it fits.
        # A single event that still does not fit is sent alone (the broker's
        # packet limit is far above our wire limit; the district takes it).
        while len(built.message) > self.limits.max_wire_bytes and len(rows) > 1:
            half = len(rows) // 2
            rows, lines = rows[:half], lines[:half]
            built = self._encode(cursor + 1, rows, lines, created_at)
        return built

    def rebuild(self, db: Database, first: int, last: int, created_at: float) -> Built | None:
        """The batch ``first..last`` again, with whatever rows of it are still unsent."""
        joined = outbox.read_joined(db, first - 1, last - first + 1, EVENT_LINE_SQL, last)
        if joined is None:
            return None
        count, _, _, raw = joined
        return self._encode_raw(first, last, count, raw, created_at)
