"""Live audio from the teacher's device: numbered chunks of 16 kHz mono s16le PCM
appended to a growing WAV file, which the worker transcribes as it grows.

Chunks carry a sequence number so a retried POST (lost answer on the Wi-Fi) is not
appended twice, and a gap is refused with the number expected. The append happens
inside the database write transaction, so a chunk the hub acknowledged is on disk
(fdatasync) and counted, and closing the stream cannot race with an append.
"""

from __future__ import annotations

import os
import time

from edge.config import HubConfig
from edge.speech import store
from edge.speech.audio import BYTES_PER_SECOND, WAV_HEADER_BYTES, wav_header
from edge.storage.db import Database, transaction

MAX_CHUNK_BYTES = 10 * BYTES_PER_SECOND  # ten seconds per request at most


class LiveError(Exception):
    def __init__(self, status: int, slug: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status, self.slug, self.extra = status, slug, extra


def start_file(config: HubConfig, uuid: str) -> str:
    folder = store.recording_dir(config, uuid)
    folder.mkdir(parents=True, exist_ok=True)
    name = "media.wav"
    with (folder / name).open("wb") as fh:
        fh.write(wav_header(0))
    return name


def append(config: HubConfig, db: Database, recording_id: int, seq: int, pcm: bytes) -> tuple[bool, float]:
    """Append chunk ``seq``; returns (appended, seconds received so far). A repeat is not appended."""
    if len(pcm) % 2:
        raise LiveError(422, "bad-audio", "live audio must be whole 16-bit samples (an even number of bytes)")
    with transaction(db):
        row = db.execute(
            "SELECT uuid, state, live_seq, media_file, media_bytes FROM speech_recordings WHERE id = ? AND source = 'live'", (recording_id,)
        ).fetchone()
        if row is None:
            raise LiveError(404, "not-found", "no live recording with this id")
        uuid, state, last_seq, media_file, media_bytes = row
        received_s = (media_bytes - WAV_HEADER_BYTES) / BYTES_PER_SECOND
        # A repeat of a stored chunk is acknowledged even after the stream closed, so a
        # device whose answer was lost never sends that audio again into a new recording.
        if seq <= last_seq:
            return False, received_s
        if state != "receiving":
            raise LiveError(409, "recording-closed", "this recording is finished; start a new one")
        if seq != last_seq + 1:
            raise LiveError(409, "chunk-out-of-order", f"expected chunk {last_seq + 1}, got {seq}", expected_seq=last_seq + 1)
        if received_s + len(pcm) / BYTES_PER_SECOND > config.speech.max_recording_s:
            raise LiveError(413, "recording-too-long", f"a recording may last at most {config.speech.max_recording_s // 60} minutes")
        try:
            store.ensure_room(config, len(pcm))
        except store.DiskFull as exc:
            raise LiveError(503, "disk-full", str(exc)) from None
        path = store.media_path(config, uuid, media_file)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, pcm)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        db.conn.execute(
            "UPDATE speech_recordings SET live_seq = ?, media_bytes = media_bytes + ?, live_updated = ? WHERE id = ?",
            (seq, len(pcm), time.time(), recording_id),
        )
    return True, received_s + len(pcm) / BYTES_PER_SECOND


def close_stream(config: HubConfig, db: Database, recording_id: int, reason: str | None = None) -> bool:
    """Finish a live recording (teacher pressed stop, or it went quiet). False if it was not receiving."""
    with transaction(db):
        row = db.execute("SELECT uuid, state, media_file FROM speech_recordings WHERE id = ?", (recording_id,)).fetchone()
        if row is None or row[1] != "receiving":
            return False
        uuid, _, media_file = row
        path = store.media_path(config, uuid, media_file)
        size = path.stat().st_size
        data = size - WAV_HEADER_BYTES
        data -= data % 2
        with path.open("r+b") as fh:
            fh.truncate(WAV_HEADER_BYTES + data)  # a torn half sample from a crash mid-append
            fh.write(wav_header(data))
            fh.flush()
            os.fsync(fh.fileno())
        job = db.execute("SELECT state FROM speech_jobs WHERE recording_id = ?", (recording_id,)).fetchone()
        db.conn.execute(
            "UPDATE speech_recordings SET state = ?, media_bytes = ?, duration_s = ?, error = ? WHERE id = ?",
            ("transcribing" if job and job[0] == "running" else "queued", WAV_HEADER_BYTES + data, data / BYTES_PER_SECOND, reason, recording_id),
        )
    return True
