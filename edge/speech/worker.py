"""``classroom-speech``: the transcription worker (its own process and systemd unit).

It loads the vosk model once, then takes jobs from ``speech_jobs`` in the shared
database, ``speech.concurrency`` at a time, each on its own thread (vosk releases
the GIL while decoding). It talks to the hub only through the database and the
live bus, so it runs with no network at all. It lowers its own CPU priority
(``nice`` 10 and ``SCHED_BATCH``) in case it is not started by its unit, which
already sets ``Nice=10`` and ``CPUWeight=25``: the classroom API comes first.

A missing or corrupt model is reported (log, ``systemctl status``, the hub's
``GET /api/v1/speech/status``) and the worker idles, re-checking every minute,
instead of crash-looping: recordings stay queued until a model arrives.

A new model (from the district's inbox, or made current by another worker) is
picked up without a restart: every few seconds the worker installs what the inbox
holds and, if the current model changed, loads and warms up the new one and swaps
it in. A job already running finishes on the model it started with; the next job
uses the new one. A new model that does not load is refused and the old one kept.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from edge import inbox
from edge.config import ConfigError, HubConfig, load_config
from edge.live.bus import LiveBus
from edge.logs import setup_logging
from edge.runtime import systemd
from edge.speech import jobs, store, transcript
from edge.speech.audio import BYTES_PER_SECOND, WAV_HEADER_BYTES, AudioError, decode_pcm
from edge.speech.install import install_pending, installed_pointer
from edge.speech.live import close_stream
from edge.speech.model import ModelPointer, ModelProblem, check, resolve
from edge.speech.recognizer import SpeechModel, Transcriber, Word
from edge.storage.db import Database, ThreadLocalDatabase

log = logging.getLogger("edge.speech.worker")

HEARTBEAT_S = 5.0
MODEL_RECHECK_S = 60.0
MODEL_POLL_S = 5.0  # how often a running worker looks for a new model (an inbox query and a small file read)
CAPTION_MIN_INTERVAL_S = 0.4
LIVE_READ_BYTES = BYTES_PER_SECOND  # one second of live audio per read


class Stopped(Exception):
    """The worker is stopping; the job goes back to the queue."""


class SpeechWorker:
    def __init__(self, config: HubConfig, name: str | None = None, model: SpeechModel | None = None) -> None:
        self.config = config
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.databases = ThreadLocalDatabase(config.db_path, config.storage.busy_timeout_ms, config.storage.synchronous)
        self.bus = LiveBus(self.databases, config.run_dir)
        self.model = model
        # What self.model was loaded from; None for a model handed in by the caller (tests,
        # benchmarks), which is never replaced.
        self.pointer: ModelPointer | None = None
        self._refused: ModelPointer | None = None
        self._candidates: dict[Path, SpeechModel] = {}
        self._inbox_seen: set[int] = set()
        self.stop = threading.Event()
        self._progress: dict[int, float] = {}

    @property
    def db(self) -> Database:
        return self.databases.get()

    # -- model ---------------------------------------------------------------------------

    def _open(self, path: Path) -> SpeechModel:
        model = SpeechModel(path)
        model.warm_up()
        return model

    def _candidate(self, path: Path) -> None:
        # The installer's trial load; kept so the model is not loaded twice.
        self._candidates[path] = self._open(path)

    def _install_pending(self) -> None:
        # Each inbox file is tried once per worker run: a refused model (or another
        # capability's model file) is not unpacked and hashed again every few seconds.
        # A restart tries everything still pending again.
        ids = {row[0] for row in inbox.pending(self.db, "model")}
        if ids <= self._inbox_seen:
            return
        try:
            install_pending(self.config, self.db, try_load=self._candidate)
        except Exception:  # an installer problem must not stop a worker that has a model
            log.exception("installing a speech model from the inbox failed")
        self._inbox_seen |= ids

    def load_model(self) -> bool:
        """Load and warm up the model; False (and a clear status) if it is missing or corrupt."""
        self._install_pending()
        pointer = resolve(self.config.speech, installed_pointer(self.config))
        self._status("loading", f"loading {pointer.name}", pointer.name)
        try:
            path = check(pointer)
            t0 = time.monotonic()
            self.model = self._candidates.pop(path, None) or self._open(path)
            self._candidates.clear()
            self.pointer = pointer
        except ModelProblem as exc:
            self._model_problem(exc.state, str(exc), pointer.name)
            return False
        except Exception as exc:  # vosk raises a bare Exception for a folder it cannot load
            self._model_problem("corrupt", f"speech model {pointer.path} could not be loaded: {exc}", pointer.name)
            return False
        log.info(
            "speech model loaded",
            extra={"model": pointer.name, "path": str(path), "load_s": round(time.monotonic() - t0, 2), "rss_mb": _rss() // 1_048_576},
        )
        self._status("ready", f"model {pointer.name} loaded", pointer.name)
        return True

    def refresh_model(self) -> bool:
        """Install what the inbox holds and switch to the current model if it changed.

        True if the worker switched. Jobs already running keep the model they started
        with (each holds its own reference); the next job takes the new one. A model that
        fails its check or does not load is remembered as refused, and the old one stays.
        """
        if self.pointer is None:
            return False
        self._install_pending()
        pointer = resolve(self.config.speech, installed_pointer(self.config))
        model = self._candidates.pop(pointer.path, None) if pointer.path else None
        self._candidates.clear()
        if pointer in (self.pointer, self._refused):
            return False
        if model is None:
            try:
                model = self._open(check(pointer))
            except Exception as exc:  # ModelProblem, or vosk's bare Exception
                self._refused = pointer
                log.error("new speech model refused; keeping the current one",
                          extra={"model": pointer.name, "path": str(pointer.path), "current": self.pointer.name, "error": str(exc)})
                self._status("ready", f"model {self.pointer.name} loaded; {pointer.name} refused: {exc}", self.pointer.name)
                return False
        previous = self.pointer
        self.model, self.pointer = model, pointer
        log.info("speech model switched",
                 extra={"model": pointer.name, "path": str(pointer.path), "previous": previous.name, "rss_mb": _rss() // 1_048_576})
        self._status("ready", f"model {pointer.name} loaded", pointer.name)
        return True

    def _watch_model(self) -> None:
        while not self.stop.wait(MODEL_POLL_S):
            try:
                self.refresh_model()
            except Exception:
                log.exception("checking for a new speech model failed")

    def _model_problem(self, state: str, message: str, name: str) -> None:
        log.error("speech is unavailable: %s", message, extra={"model_state": state, "model": name})
        self._status(state, message, name)
        systemd.status(f"no speech: {message}")

    def _status(self, state: str, detail: str, model: str | None) -> None:
        try:
            self.db.conn.execute(
                "INSERT INTO speech_worker_status (worker, model_state, detail, model, rss_bytes, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(worker) DO UPDATE SET model_state = excluded.model_state, detail = excluded.detail, "
                "model = excluded.model, rss_bytes = excluded.rss_bytes, updated_at = excluded.updated_at",
                (self.name, state, detail, model, _rss(), time.time()),
            )
        except Exception:  # the status row is advisory; never let it stop the worker
            log.exception("could not record the worker status")

    # -- the loop ------------------------------------------------------------------------

    def run(self, once: bool = False) -> int:
        """Serve until stopped (or, with ``once``, until the queue is empty)."""
        _lower_priority()
        self._wait_for_schema()
        recovered = jobs.recover_orphans(self.db, socket.gethostname())
        if recovered:
            log.warning("jobs of a worker that died were queued again", extra={"jobs": recovered})
        if self.model is None:
            while not self.load_model():
                systemd.ready("no speech model; waiting for one")
                if once or self.stop.wait(MODEL_RECHECK_S):
                    return 1
        systemd.ready(f"transcribing with {self.config.speech.concurrency} job(s) at once")
        if once:
            while not self.stop.is_set() and self.process_one():
                pass
            return 0
        threads = [threading.Thread(target=self._job_loop, name=f"speech-job-{i}", daemon=True) for i in range(self.config.speech.concurrency)]
        for t in threads:
            t.start()
        threading.Thread(target=self._watch_model, name="speech-model-watch", daemon=True).start()
        interval = systemd.watchdog_interval_s() or 10.0
        next_purge = 0.0
        next_status = 0.0
        while not self.stop.wait(min(interval, 5.0)):
            # Ping only while every job thread is alive and making progress.
            stuck = [k for k, at in list(self._progress.items()) if time.monotonic() - at > 60]
            if all(t.is_alive() for t in threads) and not stuck:
                systemd.watchdog()
            if time.monotonic() > next_status:
                next_status = time.monotonic() + 30
                name = self.pointer.name if self.pointer else self.model.path.name if self.model else None
                self._status("ready", "transcribing" if self._progress else "idle", name)
            if time.monotonic() > next_purge:
                next_purge = time.monotonic() + 3600
                try:
                    store.purge_expired(self.config, self.db)
                except Exception:
                    log.exception("retention purge failed")
        systemd.stopping("stopping at the next chunk; running jobs go back to the queue")
        for t in threads:
            t.join(timeout=15)
        return 0

    def _wait_for_schema(self) -> None:
        # The hub migrates the shared database; the worker never does.
        while not self.stop.is_set():
            row = self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'speech_jobs'").fetchone()
            if row:
                return
            log.info("waiting for the hub to create the speech tables")
            systemd.watchdog()
            self.stop.wait(2.0)

    def _job_loop(self) -> None:
        ident = threading.get_ident()
        while not self.stop.is_set():
            self._progress[ident] = time.monotonic()
            try:
                worked = self.process_one()
            except Exception:
                log.exception("speech job loop error")
                worked = False
            self._progress.pop(ident, None)
            if not worked:
                self.stop.wait(1.0)

    def process_one(self) -> bool:
        """Claim and run one job; False if the queue was empty."""
        job = jobs.claim(self.db, self.name)
        if job is None:
            return False
        try:
            self.transcribe(job)
        except Stopped:
            jobs.release(self.db, job, self.name)
            log.info("job returned to the queue (worker stopping)", extra={"recording_id": job.recording_id})
        except AudioError as exc:
            jobs.fail(self.db, job, self.name, str(exc))
            log.warning("recording could not be transcribed: %s", exc, extra={"recording_id": job.recording_id})
        except Exception as exc:
            log.exception("transcription failed", extra={"recording_id": job.recording_id})
            jobs.fail(self.db, job, self.name, f"transcription failed: {type(exc).__name__}")
        return True

    # -- one job -------------------------------------------------------------------------

    def transcribe(self, job: jobs.Job) -> None:
        model, pointer = self.model, self.pointer  # the whole job runs on one model, even if a new one is swapped in
        assert model is not None
        db = self.db
        rec_id = job.recording_id
        row = db.execute("SELECT uuid, class_id, source, media_file, state FROM speech_recordings WHERE id = ?", (rec_id,)).fetchone()
        uuid, class_id, source, media_file, _state = row
        if not media_file:
            raise AudioError("the recording's audio is gone (deleted by retention)")
        path = store.media_path(self.config, uuid, media_file)
        transcript.clear(db, rec_id)
        live = source == "live"
        channel = f"class:{class_id}"
        last_caption = [0.0, ""]

        def on_utterance(words: list[Word]) -> None:
            segments = transcript.split_utterance(words)
            transcript.add_segments(db, rec_id, segments)
            if live:
                for seg in segments:
                    caption = {"recording_id": rec_id, "final": True, "text": seg.text, "start": seg.start_s, "end": seg.end_s}
                    self.bus.publish(channel, "speech.caption", caption)

        def on_partial(text: str, start_s: float) -> None:
            now = time.monotonic()
            if text == last_caption[1] or now - last_caption[0] < CAPTION_MIN_INTERVAL_S:
                return
            last_caption[:] = [now, text]
            self.bus.publish(channel, "speech.caption", {"recording_id": rec_id, "final": False, "text": text, "start": round(start_s, 3)})

        tr = Transcriber(model, self.config.speech.silence_dbfs, on_utterance, on_partial if live else None)
        t0 = time.monotonic()
        cpu0 = time.thread_time()
        beat = time.monotonic()
        ident = threading.get_ident()
        try:
            chunks = self._live_chunks(job, path) if live else decode_pcm(path)
            for chunk in chunks:
                if self.stop.is_set():
                    raise Stopped()
                tr.feed(chunk)
                self._progress[ident] = time.monotonic()
                if time.monotonic() - beat > HEARTBEAT_S:
                    beat = time.monotonic()
                    if not jobs.heartbeat(db, job, self.name):
                        raise Stopped()  # somebody re-queued or took over the job
            tr.finish()
        finally:
            tr.close()
        wall = time.monotonic() - t0
        cpu = time.thread_time() - cpu0
        audio_s = tr.position_s
        rtf = wall / audio_s if audio_s else 0.0
        transcript.finalize(db, rec_id, audio_s, round(rtf, 4), include_audio=self.config.speech.outbox_audio)
        if live:
            self.bus.publish(channel, "speech.done", {"recording_id": rec_id})
        log.info(
            "recording transcribed",
            extra={"recording_id": rec_id, "audio_s": round(audio_s, 2), "wall_s": round(wall, 2), "rtf": round(rtf, 4),
                   "cpu_rtf": round(cpu / audio_s, 4) if audio_s else None, "attempt": job.attempts,
                   "model": pointer.name if pointer else model.path.name},
        )

    def _live_chunks(self, job: jobs.Job, path: Path) -> Iterator[bytes]:
        """Audio of a live recording as it arrives, until it is finished or goes quiet."""
        pos = WAV_HEADER_BYTES
        idle = self.config.speech.live_idle_timeout_s
        with path.open("rb") as fh:
            while True:
                fh.seek(pos)
                data = fh.read(LIVE_READ_BYTES)
                data = data[: len(data) // 2 * 2]
                if data:
                    pos += len(data)
                    yield data
                    continue
                state, updated = self.db.execute("SELECT state, live_updated FROM speech_recordings WHERE id = ?", (job.recording_id,)).fetchone()
                if state != "receiving":
                    fh.seek(pos)
                    rest = fh.read()
                    if rest:
                        yield rest[: len(rest) // 2 * 2]
                    return
                if time.time() - (updated or 0) > idle:
                    # The teacher's device went away mid-lesson: keep what we have.
                    reason = "the live stream stopped without being finished; the transcript covers what arrived"
                    if close_stream(self.config, self.db, job.recording_id, reason=reason):
                        log.warning("live stream went quiet; closed it", extra={"recording_id": job.recording_id, "idle_s": idle})
                    continue
                if self.stop.wait(0.2):
                    raise Stopped()


def _lower_priority() -> None:
    try:
        if os.nice(0) < 10:
            os.nice(10 - os.nice(0))
    except OSError:
        pass
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (OSError, AttributeError):
        pass  # the unit's seccomp filter may refuse it; Nice= and CPUWeight= still hold


def _rss() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="classroom-speech", description="Transcription worker of the classroom hub.")
    parser.add_argument("--config", type=Path, help="configuration file (TOML); default $HUB_CONFIG or /etc/classroom-hub/hub.toml")
    parser.add_argument("--data-dir", type=Path, help="override hub.data_dir")
    parser.add_argument("--once", action="store_true", help="transcribe what is queued, then exit")
    args = parser.parse_args(argv)
    overrides = {"hub": {"data_dir": str(args.data_dir)}} if args.data_dir else None
    try:
        config = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        parser.exit(2, f"classroom-speech: configuration error: {exc}\n")
    setup_logging(config.logging.level, config.logging.format)
    worker = SpeechWorker(config)

    def _stop(signum: int, _frame: object) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        worker.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if not config.speech.enabled:
        log.info("speech is disabled in the configuration (speech.enabled = false)")
        systemd.ready("speech disabled")
        worker.stop.wait()
        return 0
    return worker.run(once=args.once)


if __name__ == "__main__":
    raise SystemExit(main())
