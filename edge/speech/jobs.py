"""The transcription queue: rows in ``speech_jobs`` shared by the hub and the worker.

A job is claimed in one ``BEGIN IMMEDIATE`` transaction, so two workers never
take the same one. A running job's worker writes a heartbeat; a job whose
heartbeat is older than ``STALE_S`` (its worker crashed or was killed) is claimed
again and redone from the start: the queue survives restarts and loses nothing.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from edge.storage.db import Database, transaction

STALE_S = 90.0
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Job:
    recording_id: int
    attempts: int


def enqueue(db: Database, recording_id: int) -> None:
    """Queue (or re-queue) a recording; the caller owns the transaction."""
    now = time.time()
    db.conn.execute(
        "INSERT INTO speech_jobs (recording_id, state, queued_at) VALUES (?, 'queued', ?) "
        "ON CONFLICT(recording_id) DO UPDATE SET state = 'queued', queued_at = excluded.queued_at, attempts = 0, error = NULL",
        (recording_id, now),
    )


def claim(db: Database, worker: str, now: float | None = None) -> Job | None:
    """Take the oldest queued job, or one whose worker stopped beating; None if none."""
    now = time.time() if now is None else now
    with transaction(db):
        row = db.execute(
            "SELECT recording_id, attempts FROM speech_jobs "
            "WHERE state = 'queued' OR (state = 'running' AND heartbeat_at < ?) "
            "ORDER BY queued_at LIMIT 1",
            (now - STALE_S,),
        ).fetchone()
        if row is None:
            return None
        rec_id, attempts = int(row[0]), int(row[1])
        if attempts >= MAX_ATTEMPTS:  # attempts already made
            # Crashed the worker (or was killed with it) this often: stop retrying it.
            msg = f"transcription stopped {attempts} times without finishing"
            db.conn.execute("UPDATE speech_jobs SET state = 'failed', error = ?, finished_at = ? WHERE recording_id = ?", (msg, now, rec_id))
            db.conn.execute("UPDATE speech_recordings SET state = 'failed', error = ? WHERE id = ?", (msg, rec_id))
            return None
        db.conn.execute(
            "UPDATE speech_jobs SET state = 'running', attempts = attempts + 1, worker = ?, heartbeat_at = ? WHERE recording_id = ?",
            (worker, now, rec_id),
        )
        db.conn.execute(
            "UPDATE speech_recordings SET state = CASE WHEN state = 'receiving' THEN state ELSE 'transcribing' END, error = NULL WHERE id = ?",
            (rec_id,),
        )
    return Job(rec_id, attempts + 1)


def recover_orphans(db: Database, host: str) -> int:
    """Re-queue running jobs of dead workers on this host (``host:pid`` names), at once.

    A worker restarted after a crash need not wait ``STALE_S`` for its own jobs;
    the attempt still counts, so a recording that kills the worker is not retried forever.
    """
    recovered = 0
    with transaction(db):
        rows = db.execute("SELECT recording_id, worker FROM speech_jobs WHERE state = 'running' AND worker LIKE ?", (host + ":%",)).fetchall()
        for rec_id, worker in rows:
            try:
                pid = int(str(worker).rsplit(":", 1)[1])
            except (IndexError, ValueError):
                continue
            if not _alive(pid):
                db.conn.execute("UPDATE speech_jobs SET state = 'queued', worker = NULL WHERE recording_id = ?", (rec_id,))
                recovered += 1
    return recovered


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def heartbeat(db: Database, job: Job, worker: str) -> bool:
    """Record that the job is alive; False if it is no longer ours (re-queued or taken over)."""
    with transaction(db):
        cur = db.conn.execute(
            "UPDATE speech_jobs SET heartbeat_at = ? WHERE recording_id = ? AND state = 'running' AND worker = ?",
            (time.time(), job.recording_id, worker),
        )
    return cur.rowcount == 1


def release(db: Database, job: Job, worker: str) -> None:
    """Give a job back (worker stopping): queued again, this attempt not counted."""
    with transaction(db):
        db.conn.execute(
            "UPDATE speech_jobs SET state = 'queued', attempts = MAX(attempts - 1, 0), worker = NULL WHERE recording_id = ? AND worker = ?",
            (job.recording_id, worker),
        )


def fail(db: Database, job: Job, worker: str, error: str) -> None:
    now = time.time()
    with transaction(db):
        db.conn.execute(
            "UPDATE speech_jobs SET state = 'failed', error = ?, finished_at = ? WHERE recording_id = ? AND worker = ?",
            (error, now, job.recording_id, worker),
        )
        db.conn.execute("UPDATE speech_recordings SET state = 'failed', error = ? WHERE id = ?", (error, job.recording_id))
