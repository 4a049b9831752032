"""The demo classroom's sample recording, and the worker that transcribes it in the demo."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from edge.config import HubConfig
from edge.speech import jobs, store, transcript
from edge.storage.db import connect, transaction

log = logging.getLogger(__name__)

SAMPLE = Path(__file__).resolve().parent / "demo_data" / "sample_ko.wav"
TITLE = "示范录音：韩语朗读"
KNOWLEDGE_POINTS = [{"id": "demo-kp-walk", "name": "走路", "keywords": ["걸어갔"]}]


def add_sample(config: HubConfig, creds: Any) -> None:
    """Queue the sample recording (with two page changes as chapters) for the demo class."""
    db = connect(config.db_path, config.storage.busy_timeout_ms, config.storage.synchronous)
    try:
        class_id = db.execute("SELECT id FROM classes WHERE name = ?", (creds.class_name,)).fetchone()[0]
        rec_uuid = str(uuid.uuid4())
        folder = store.recording_dir(config, rec_uuid)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SAMPLE, folder / "media.wav")
        started = time.time() - 3600
        with transaction(db):
            cur = db.conn.execute(
                "INSERT INTO speech_recordings (uuid, class_id, title, source, state, media_file, media_type, media_bytes, started_at, "
                "duration_s, knowledge_points, created_at) VALUES (?, ?, ?, 'upload', 'queued', 'media.wav', 'audio/wav', ?, ?, 3.888, ?, ?)",
                (rec_uuid, class_id, TITLE, SAMPLE.stat().st_size, started, json.dumps(KNOWLEDGE_POINTS, ensure_ascii=False), started),
            )
            transcript.record_page_change(db, class_id, "1", "第一页：朗读", at=started - 5)
            transcript.record_page_change(db, class_id, "2", "第二页：讨论", at=started + 2.0)
            jobs.enqueue(db, int(cur.lastrowid or 0))
    finally:
        db.conn.close()


def start_worker(config: HubConfig) -> subprocess.Popen[bytes]:
    """``classroom-speech`` for the demo's data directory, as a child of the demo command."""
    script = Path(sys.executable).with_name("classroom-speech")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "edge.speech.worker"]
    return subprocess.Popen([*cmd, "--data-dir", str(config.hub.data_dir)])


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
