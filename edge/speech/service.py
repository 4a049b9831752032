"""Recordings: creating them, storing uploads, and reading them back for the API."""

from __future__ import annotations

import json
import os
import time
import uuid as uuidlib
from pathlib import Path
from typing import IO, Any

from edge.config import HubConfig
from edge.speech import jobs, live, store
from edge.speech.audio import AudioError, probe
from edge.storage.db import Database, transaction

UPLOAD_CHUNK = 1 << 20


class SpeechError(Exception):
    def __init__(self, status: int, slug: str, message: str) -> None:
        super().__init__(message)
        self.status, self.slug = status, slug


_COLUMNS = "id, uuid, class_id, title, source, state, media_type, media_bytes, started_at, duration_s, error, knowledge_points, created_at, audio_purged"


def _row(r: tuple) -> dict[str, Any]:
    keys = [k.strip() for k in _COLUMNS.split(",")]
    out = dict(zip(keys, r, strict=True))
    out["knowledge_points"] = json.loads(out["knowledge_points"] or "[]")
    out["audio_available"] = not out.pop("audio_purged") and out["media_bytes"] > 0
    return out


def create(config: HubConfig, db: Database, *, class_id: int, user_id: int | None, title: str, source: str,
           request_id: str, knowledge_points: list[dict[str, Any]], started_at: float | None) -> tuple[dict[str, Any], bool]:
    """A new recording (or the one this ``request_id`` already made); returns (recording, created)."""
    existing = db.execute(f"SELECT {_COLUMNS} FROM speech_recordings WHERE request_id = ?", (request_id,)).fetchone()
    if existing is not None:
        return _row(existing), False
    try:
        store.ensure_room(config)
    except store.DiskFull as exc:
        raise SpeechError(503, "disk-full", str(exc)) from None
    rec_uuid = str(uuidlib.uuid4())
    now = time.time()
    media_file = live.start_file(config, rec_uuid) if source == "live" else None
    with transaction(db):
        cur = db.conn.execute(
            "INSERT INTO speech_recordings (uuid, class_id, user_id, title, source, state, media_file, media_type, media_bytes, "
            "started_at, live_updated, knowledge_points, request_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rec_uuid, class_id, user_id, title, source, "receiving", media_file,
                "audio/wav" if source == "live" else "", 44 if source == "live" else 0,
                started_at or now, now, json.dumps(knowledge_points, ensure_ascii=False), request_id, now,
            ),
        )
        rec_id = int(cur.lastrowid or 0)
        if source == "live":
            # Transcribed while it is recorded: the worker tails the file (live captions).
            jobs.enqueue(db, rec_id)
    return get(db, rec_id) or {}, True


def get(db: Database, recording_id: int) -> dict[str, Any] | None:
    r = db.execute(f"SELECT {_COLUMNS} FROM speech_recordings WHERE id = ?", (recording_id,)).fetchone()
    return _row(r) if r else None


def list_for(db: Database, class_ids: list[int], limit: int = 200) -> list[dict[str, Any]]:
    if not class_ids:
        return []
    marks = ",".join("?" for _ in class_ids)
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM speech_recordings WHERE class_id IN ({marks}) ORDER BY created_at DESC LIMIT ?", [*class_ids, limit]
    ).fetchall()
    return [_row(r) for r in rows]


def detail(db: Database, recording_id: int) -> dict[str, Any] | None:
    rec = get(db, recording_id)
    if rec is None:
        return None
    rec["chapters"] = [
        {"idx": i, "start": s, "page": p, "title": t}
        for i, s, p, t in db.execute("SELECT idx, start_s, page, title FROM speech_chapters WHERE recording_id = ? ORDER BY idx", (recording_id,))
    ]
    rec["segments"] = [
        {"idx": i, "start": s, "end": e, "text": t, "chapter": c, "knowledge_points": json.loads(k or "[]"),
         "words": [{"word": w[0], "start": w[1], "end": w[2], "conf": w[3]} for w in json.loads(ws)]}
        for i, s, e, t, c, k, ws in db.execute(
            "SELECT idx, start_s, end_s, text, chapter_idx, knowledge_points, words FROM speech_segments WHERE recording_id = ? ORDER BY idx",
            (recording_id,),
        )
    ]
    job = db.execute("SELECT state, attempts, rtf, error FROM speech_jobs WHERE recording_id = ?", (recording_id,)).fetchone()
    rec["job"] = {"state": job[0], "attempts": job[1], "rtf": job[2], "error": job[3]} if job else None
    return rec


def store_upload(config: HubConfig, db: Database, recording_id: int, stream: IO[bytes], declared_bytes: int | None) -> dict[str, Any]:
    """Stream an upload to disk, check it is audio, and queue it. Nothing is kept if it is refused."""
    row = db.execute("SELECT uuid, source, state, media_file FROM speech_recordings WHERE id = ?", (recording_id,)).fetchone()
    rec_uuid, source, state, media_file = row
    if source != "upload":
        raise SpeechError(409, "not-an-upload", "this recording is live; send its audio to /live")
    if media_file or state != "receiving":
        raise SpeechError(409, "already-uploaded", "this recording already has its audio")
    limit = config.speech.max_upload_bytes
    if declared_bytes is not None and declared_bytes > limit:
        raise SpeechError(413, "too-large", f"a recording may be at most {limit // 1_048_576} MB")
    try:
        store.ensure_room(config, declared_bytes or 0)
    except store.DiskFull as exc:
        raise SpeechError(503, "disk-full", str(exc)) from None
    folder = store.recording_dir(config, rec_uuid)
    folder.mkdir(parents=True, exist_ok=True)
    # A retried upload may overlap the first one: each writes its own part file.
    tmp = folder / f"upload-{uuidlib.uuid4().hex}.part"
    size = 0
    try:
        with tmp.open("wb") as fh:
            while chunk := stream.read(UPLOAD_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise SpeechError(413, "too-large", f"a recording may be at most {limit // 1_048_576} MB")
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        if size == 0:
            raise SpeechError(422, "bad-audio", "the upload is empty")
        try:
            duration = probe(tmp, config.speech.max_recording_s)
            ext, media_type = _container(tmp)
        except AudioError as exc:
            raise SpeechError(422, "bad-audio", str(exc)) from None
        final = folder / f"media.{ext}"
        with transaction(db):
            # Only the first complete upload wins; a concurrent duplicate is dropped.
            cur = db.conn.execute(
                "UPDATE speech_recordings SET media_file = ?, media_type = ?, media_bytes = ?, duration_s = ?, state = 'queued' "
                "WHERE id = ? AND media_file IS NULL",
                (final.name, media_type, size, duration, recording_id),
            )
            if cur.rowcount != 1:
                raise SpeechError(409, "already-uploaded", "this recording already has its audio")
            os.replace(tmp, final)
            jobs.enqueue(db, recording_id)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return get(db, recording_id) or {}


def _container(path: Path) -> tuple[str, str]:
    import av

    with av.open(str(path)) as c:
        names = c.format.name.split(",")
        has_video = bool(c.streams.video)
    if "wav" in names:
        return "wav", "audio/wav"
    if "mp3" in names:
        return "mp3", "audio/mpeg"
    if "ogg" in names:
        return "ogg", "audio/ogg"
    if "matroska" in names or "webm" in names:
        return "webm", "video/webm" if has_video else "audio/webm"
    if "mp4" in names or "mov" in names or "m4a" in names:
        return ("mp4", "video/mp4") if has_video else ("m4a", "audio/mp4")
    return "bin", "application/octet-stream"


def finish_live(config: HubConfig, db: Database, recording_id: int) -> dict[str, Any]:
    rec = get(db, recording_id)
    if rec is None or rec["source"] != "live":
        raise SpeechError(404, "not-found", "no live recording with this id")
    live.close_stream(config, db, recording_id)  # a repeated finish is harmless
    return get(db, recording_id) or {}


def model_status(db: Database) -> list[dict[str, Any]]:
    rows = db.execute("SELECT worker, model_state, detail, model, rss_bytes, updated_at FROM speech_worker_status ORDER BY updated_at DESC").fetchall()
    return [dict(zip(("worker", "model_state", "detail", "model", "rss_bytes", "updated_at"), r, strict=True)) for r in rows]


def queue_depth(db: Database) -> int:
    return int(db.execute("SELECT COUNT(*) FROM speech_jobs WHERE state IN ('queued', 'running')").fetchone()[0])
