"""The demo classroom's sample quiz: a real GIFT file imported like a teacher's upload."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edge.config import HubConfig
from edge.quiz.importing import import_file
from edge.storage.db import connect

log = logging.getLogger(__name__)

SAMPLE = Path(__file__).resolve().parent / "demo" / "三年级数学-分数初步.gift"


def add_sample_quiz(config: HubConfig, creds: Any) -> None:
    db = connect(config.db_path, config.storage.busy_timeout_ms, config.storage.synchronous)
    try:
        teacher = db.execute("SELECT id FROM users WHERE username = ?", (creds.teacher_username,)).fetchone()
        report = import_file(db, SAMPLE.read_bytes(), "gift", "分数的初步认识（示例）", teacher[0] if teacher else None, source=SAMPLE.name)
        if report.refused:
            log.warning("demo quiz rows refused", extra={"rows": [r.reason for r in report.rows if r.status == "refused"]})
    finally:
        db.conn.close()
