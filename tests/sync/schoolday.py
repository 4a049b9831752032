"""One classroom's school day, written into a hub's outbox as the hub would.

55 students x 8 periods x ~20 answers as xAPI statements, a sign-in per student
per period, tablet and cart telemetry every minute, 6 hours of transcript text.
The quiz (issue 4) does not write statements yet; these are shaped the way it
will: producer-assigned statement ids, pseudonymous actors.
"""

from __future__ import annotations

import random
import uuid

from edge import outbox
from edge.storage.db import Database, transaction

STUDENTS = 55
PERIODS = 8
ANSWERS_PER_PERIOD = 20
SCHOOL_DAY_MIN = 8 * 60
TRANSCRIPT_HOURS = 6

_PHRASES = [
    "同学们请看黑板上的这道题", "我们先复习一下上节课的内容", "这个知识点非常重要", "请大家打开平板完成练习",
    "二次函数的图像是一条抛物线", "注意对称轴的位置", "谁能说一说你的思路", "很好，请坐", "下面我们来做一个小测验",
    "把答案提交上来", "这道题大部分同学都做对了", "我们来看看错在哪里",
]


def statement(rng: random.Random, hub: str, student: str, period: int, q: int, at: float) -> dict:
    correct = rng.random() < 0.7
    return {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "actor": {"objectType": "Agent", "account": {"homePage": f"urn:classroom-hub:{hub}", "name": student}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered", "display": {"en-US": "answered", "zh-CN": "作答"}},
        "object": {
            "objectType": "Activity",
            "id": f"urn:classroom-hub:{hub}:quiz:p{period}:q{q}",
            "definition": {"type": "http://adlnet.gov/expapi/activities/cmi.interaction", "interactionType": "choice"},
        },
        "result": {"success": correct, "response": rng.choice("ABCD"), "duration": f"PT{rng.randint(5, 90)}S",
                   "score": {"scaled": 1.0 if correct else 0.0}},
        "context": {
            "registration": str(uuid.UUID(int=(period << 64) + 12345, version=4)),
            "contextActivities": {"parent": [{"id": f"urn:classroom-hub:{hub}:lesson:p{period}"}],
                                  "grouping": [{"id": "urn:kp:math.quadratic.vertex"}]},
            "platform": "classroom-hub", "language": "zh-CN",
        },
        "timestamp": f"2026-11-24T{8 + period:02d}:{q * 2:02d}:00+08:00",
        "version": "1.0.3",
    }


def events(hub: str, start: float = 1_764_000_000.0, seed: int = 1, scale: float = 1.0) -> list[tuple[str, dict, float, str | None]]:
    """(type, payload, created_at, event_id) for one day; ``scale`` < 1 makes a lighter day (fewer students)."""
    rng = random.Random(seed)
    students = [f"s-{rng.getrandbits(48):012x}" for _ in range(max(1, int(STUDENTS * scale)))]
    out: list[tuple[str, dict, float, str | None]] = []
    for period in range(PERIODS):
        t0 = start + period * 3600
        for s in students:
            out.append(("attendance.signin", {"student": s, "day": "2026-11-24", "at": t0, "class_id": 1, "period": period}, t0, None))
        for q in range(ANSWERS_PER_PERIOD):
            for s in students:
                st = statement(rng, hub, s, period, q, t0 + q * 90)
                out.append(("xapi.statement", st, t0 + q * 90, st["id"]))
    for minute in range(SCHOOL_DAY_MIN):
        t = start + minute * 60
        for i, _ in enumerate(students):
            out.append(("device.telemetry", {"device": f"tab-{i:02d}", "battery": rng.randint(20, 100), "charging": False,
                                             "wifi_rssi": -rng.randint(40, 80), "app": "lesson"}, t, None))
        out.append(("cart.telemetry", {"cart": "cart-1", "slots_charging": rng.randint(0, 55), "temp_c": round(rng.uniform(24, 38), 1),
                                       "current_a": round(rng.uniform(0, 9), 2)}, t, None))
    for seg in range(TRANSCRIPT_HOURS * 360):  # a segment every 10 s
        t = start + seg * 10
        text = "，".join(rng.choice(_PHRASES) for _ in range(3))
        out.append(("speech.segment", {"recording": f"rec-{seg // 270}", "start_ms": (seg % 270) * 10_000, "end_ms": (seg % 270) * 10_000 + 9_500,
                                       "text": text}, t, None))
    out.sort(key=lambda e: e[2])
    return out


def write_day(db: Database, hub: str, chunk: int = 2000, **kwargs: object) -> int:
    """Append a day to the outbox in transactions of ``chunk`` events; returns the count."""
    evs = events(hub, **kwargs)  # type: ignore[arg-type]
    for i in range(0, len(evs), chunk):
        with transaction(db):
            for type_, payload, created_at, event_id in evs[i:i + chunk]:
                seq = outbox.append(db, type_, payload, event_id=event_id)
                db.conn.execute("UPDATE outbox SET created_at = ? WHERE seq = ?", (created_at, seq))
    return len(evs)
