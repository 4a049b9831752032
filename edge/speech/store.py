"""Where recordings live on disk, the disk reserve, and the retention policy.

Each recording has a folder ``<data_dir>/speech/<uuid>/`` holding ``media.<ext>``:
an upload exactly as it came (the player plays it) or, for live audio, a 16 kHz
mono WAV that grows while the lesson goes on. Transcripts stay in the database
when the audio is purged.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from edge.config import HubConfig
from edge.storage.db import Database, transaction

log = logging.getLogger(__name__)

# Extensions the player may serve, by the container PyAV found.
MEDIA_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "mp4": "video/mp4",
    "ogg": "audio/ogg",
    "webm": "audio/webm",
}


class DiskFull(Exception):
    """Free disk is below ``storage.disk_reserve_mb``: new audio is refused early."""


def speech_dir(config: HubConfig) -> Path:
    return config.hub.data_dir / "speech"


def recording_dir(config: HubConfig, uuid: str) -> Path:
    return speech_dir(config) / uuid


def media_path(config: HubConfig, uuid: str, media_file: str) -> Path:
    return recording_dir(config, uuid) / media_file


def ensure_room(config: HubConfig, incoming_bytes: int = 0) -> None:
    """Raise DiskFull unless ``incoming_bytes`` more still leaves the reserve free."""
    folder = config.hub.data_dir
    free = shutil.disk_usage(folder).free
    reserve = config.storage.disk_reserve_mb * 1_048_576
    if free - incoming_bytes < reserve:
        raise DiskFull(
            f"the hub's disk is nearly full ({free // 1_048_576} MB free, {config.storage.disk_reserve_mb} MB are kept in reserve); "
            "no new recordings until space is freed"
        )


def purge_expired(config: HubConfig, db: Database, now: float | None = None) -> int:
    """Delete the audio of recordings older than ``speech.retention_days``; returns how many."""
    cutoff = (now or time.time()) - config.speech.retention_days * 86400
    rows = db.execute(
        "SELECT id, uuid FROM speech_recordings WHERE created_at < ? AND audio_purged = 0 AND state IN ('done', 'failed')",
        (cutoff,),
    ).fetchall()
    for rec_id, uuid in rows:
        shutil.rmtree(recording_dir(config, uuid), ignore_errors=True)
        with transaction(db):
            db.conn.execute("UPDATE speech_recordings SET audio_purged = 1, media_file = NULL WHERE id = ?", (rec_id,))
        log.info("recording audio purged (retention)", extra={"recording_id": rec_id})
    return len(rows)
