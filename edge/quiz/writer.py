"""Group commit for answers: one writer thread per worker process.

55 tablets answering the same instant would otherwise be 55 transactions, each
waiting for the SQLite write lock (SQLite's busy handler polls with sleeps of up
to 100 ms) and each paying its own WAL fsync. Instead, request threads hand their
answer to this process's writer and wait; the writer takes everything queued,
decides every answer against one read of their rows, writes them all and commits
once (``edge/quiz/answer_store.py``), and only once the commit is on disk releases
the waiting requests: an answer is acknowledged only after the commit that made it
durable, exactly as with one transaction per answer.

The fsync is not paid under the write lock. The writer's connection commits with
``synchronous=NORMAL`` (SQLite appends the transaction to the WAL without syncing
it) and hands the batch to this process's syncer thread, which calls ``fdatasync`` on
the WAL file and only then acknowledges the batch's answers. The WAL holds every
committed transaction until a checkpoint has synced the database file, so after
that fdatasync the batch survives a power cut as it would under ``synchronous=FULL``;
a cut before it can only lose answers nobody was told were stored (their tablets
send them again). Meanwhile the write lock is free for the other worker's writer
and for this writer's next batch, and one fdatasync covers every batch committed
while the previous one ran. With ``storage.synchronous = NORMAL`` there is no
fdatasync at all (answers then survive ``kill -9``, not a power cut).

The two worker processes' writers take turns through the hub's write lock
(``edge.storage.write_lock``), which wakes the waiter the moment the other
commits instead of polling.

Personalised learning's mastery update is not part of the answers' commit: the
commit queues the graded answers for it (``edge.learning.pending``, same
transaction), and this thread applies the queue in transactions of their own once
no answer has come to any worker for ``LEARNING_IDLE_S`` (so a burst's updates go
together, after it; the workers share their last commit's time through a small mapped
file), and once they have waited ``LEARNING_MAX_LAG_S``, a chunk between answer batches
under a continuous stream. A writer whose owed updates another worker's pass has
already applied (the queue is one table) finds the queue empty and takes no lock.
Learning was about half of what the writer did under the lock, and no tablet waits for it.
A pass is worked out from one read of learning's tables without the write lock and only
written under it (if a learning table changed meanwhile it is done again under the lock:
``edge.learning.pending``), and one writer of the hub runs a pass at a time (a small lock
file), so the writers falling idle together after a burst do not all work out the same one.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import queue
import sqlite3
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from edge.quiz.answer_store import AnswerBatch
from edge.quiz.learning_hook import (
    GradedAnswer,
    apply_pending_learning,
    learning_pending,
    plan_pending_learning,
    record_answers_for_learning,
    write_planned_learning,
)
from edge.quiz.sessions import AnswerIn, HubFacts, Lookups, Prepared, QuizError, apply_answer, prepare_answer
from edge.storage import write_lock
from edge.storage.db import Database, connect

log = logging.getLogger(__name__)

# What the group commit costs, summed over workers (GET /metrics): CPU per answer and
# answers per batch are CPU / ANSWERS and ANSWERS / BATCHES.
BATCHES = Counter("hub_quiz_writer_batches_total", "Group commits of quiz answers")
ANSWERS = Counter("hub_quiz_writer_answers_total", "Answers that went through a group commit (accepted, retried or refused)")
WRITER_CPU = Counter("hub_quiz_writer_cpu_seconds_total", "CPU time of the answer writer threads")
FALLBACKS = Counter("hub_quiz_writer_fallbacks_total", "Batches the database refused whole, written again answer by answer")
LOCKED = Counter("hub_quiz_writer_locked_seconds_total", "Wall time the answer writers held the write lock")
SYNCS = Counter("hub_quiz_writer_syncs_total", "fdatasyncs of the WAL before answers were acknowledged")
CHECKPOINT_SECONDS = Counter("hub_quiz_writer_checkpoint_seconds_total", "Wall time of the syncer's WAL checkpoints")
WAL_RESTARTS = Counter("hub_quiz_writer_wal_restarts_total", "TRUNCATE checkpoints that started the WAL over")
WAL_RESTARTS_BUSY = Counter("hub_quiz_writer_wal_restarts_busy_total", "TRUNCATE checkpoints a reader of old frames held up (tried again)")
SYNC_SECONDS = Counter("hub_quiz_writer_sync_seconds_total", "Wall time of those fdatasyncs")
LEARNING_PASSES = Counter("hub_quiz_writer_learning_passes_total", "Transactions the answer writers spent on queued mastery updates")
LEARNING_SECONDS = Counter("hub_quiz_writer_learning_seconds_total", "Wall time the answer writers held the write lock for them")
LEARNING_CPU = Counter("hub_quiz_writer_learning_cpu_seconds_total", "CPU time of the answer writer threads in queued mastery updates")

MAX_BATCH = 256
# How often the syncer copies the WAL into the database while answers arrive (an idle hub's
# other connections checkpoint as usual).
CHECKPOINT_EVERY_S = 1.0
# The WAL is started over (a TRUNCATE checkpoint) once it holds more frames than this: one
# wal-index hash table's worth, 16 MiB of 4 KiB pages (_Syncer._checkpoint says why).
RESTART_FRAMES = 4096
TRUNCATE_BUSY_MS = 200
# Queued mastery updates go once no answer has come for this long (a burst's go together,
# after it), or once they have waited LEARNING_MAX_LAG_S: then a chunk between answer batches.
LEARNING_IDLE_S = 0.002
LEARNING_MAX_LAG_S = 0.5
# After a failed mastery update, answers only for this long before the next try.
LEARNING_RETRY_S = 1.0
# While another worker's writer runs a pass, look again after this long.
LEARNING_BUSY_S = 0.005
LEARNING_CHUNK = 128  # answers per mastery-update transaction (edge.learning.pending)


@dataclass
class _Job:
    answer: AnswerIn
    student_id: int
    class_id: int
    prepared: Prepared | None = None
    done: threading.Event = field(default_factory=threading.Event)
    result: tuple[dict[str, Any], bool] | None = None
    error: Exception | None = None


class GroupWriter:
    def __init__(self, db_path: Path, busy_timeout_ms: int, synchronous: str, lock_path: Path, bus: Any, facts: HubFacts) -> None:
        self._db_args = (db_path, busy_timeout_ms, synchronous)
        self._lock_path = lock_path
        self._bus = bus
        self._facts = facts
        self._lookups = Lookups()  # per-batch parts: the writer thread only
        self._queue: queue.Queue[_Job] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._warmed_pid: int | None = None
        self._start_lock = threading.Lock()
        # Mastery updates owed (writer thread only): since when (monotonic), None when none;
        # when the last answers were committed, and whether the writer's last pass was learning's.
        self._learning_since: float | None = None
        self._last_commit = 0.0
        self._learned_last = False
        self._hub_last_commit: _SharedTime | None = None  # every worker's last answer commit (writer thread only)
        self._learner_fd: int | None = None  # LEARNER_LOCK_FILE (writer thread only)

    def start(self) -> None:
        """Start this process's writer thread now (it starts on first use otherwise)."""
        self._ensure_thread()

    def submit(self, answer: AnswerIn, student_id: int, class_id: int, timeout: float = 30.0,
               db: Database | None = None) -> tuple[dict[str, Any], bool]:
        """Apply one answer in the next group commit; returns (ack, created) once it is durable.

        With ``db`` (the calling thread's connection) the answer is validated, graded and its
        xAPI statement written here, outside the write lock, while another batch commits.
        """
        self._ensure_thread()
        prepared = prepare_answer(db, self._facts, answer, self._lookups, student_id) if db is not None else None
        job = _Job(answer, student_id, class_id, prepared)
        self._queue.put(job)
        if not job.done.wait(timeout):
            # Not acknowledged: the tablet keeps the answer and resends it (same client id).
            raise QuizError(503, "busy", "the hub is busy; the answer will be sent again")
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def warm_learning(self) -> None:
        """Load the mastery model in this process now, off the request thread, once.

        Asked when tablets fetch an open quiz (what they do when one starts): the first
        answer round then does not pay the model's cold load, and a hub with no quiz
        running does not hold the model in memory (~27 MB per worker).
        """
        with self._start_lock:
            if self._warmed_pid == os.getpid():
                return
            self._warmed_pid = os.getpid()
        threading.Thread(target=self._warm, name="quiz-learning-warm-up", daemon=True).start()

    def _warm(self) -> None:
        from edge.quiz.learning_hook import warm_up

        db = connect(*self._db_args)
        try:
            warm_up(db)
        finally:
            db.conn.close()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            if self._pid != os.getpid():
                self._queue = queue.Queue()  # a forked child must not inherit the parent's jobs
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="quiz-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        # Warm up here, not on the first answer of the lesson: personalised learning's
        # module (numpy, its model) costs a few hundred ms to load the first time.
        from edge.quiz.learning_hook import warm_up

        warm_up()
        path, busy_timeout_ms, synchronous = self._db_args
        # Commits append to the WAL unsynced; the syncer makes them durable before any ack.
        db = connect(path, busy_timeout_ms, "NORMAL")
        syncer = _Syncer(Path(f"{path}-wal") if synchronous == "FULL" else None, self._bus, self._lock_path)
        if synchronous == "FULL":
            # The syncer checkpoints the WAL, off the write lock: an automatic checkpoint would run
            # inside this writer's COMMIT (megabytes copied and two fsyncs) while the lock is held.
            db.conn.execute("PRAGMA wal_autocheckpoint = 0")
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = write_lock.open_lock(self._lock_path)
        self._hub_last_commit = _SharedTime(self._lock_path.with_name(LAST_COMMIT_FILE))
        # Answers queued for learning before a restart (or by the other worker) are owed too.
        self._learning_since = time.monotonic()
        while True:
            wait = self._learning_wait()
            if wait == 0.0:
                self._learn(db, lock_fd)
                continue
            try:
                first = self._queue.get() if wait is None else self._queue.get(timeout=wait)
            except queue.Empty:
                continue
            cpu0 = time.thread_time()
            batch: list[_Job] = []
            self._learned_last = False
            try:
                if self._commit(db, lock_fd, first, batch) and self._learning_since is None:
                    self._learning_since = time.monotonic()
                self._last_commit = time.monotonic()
                self._hub_last_commit.set(self._last_commit)
            except Exception as exc:  # the whole batch failed to commit: nobody is acknowledged
                log.exception("answer batch failed", extra={"answers": len(batch)})
                failed = QuizError(503, "write-failed", f"the answer could not be stored ({type(exc).__name__}); it will be sent again")
                for job in batch or [first]:
                    job.result, job.error = None, failed
            syncer.acknowledge(batch or [first])
            BATCHES.inc()
            ANSWERS.inc(len(batch) or 1)
            WRITER_CPU.inc(time.thread_time() - cpu0)

    def _drain(self, batch: list[_Job]) -> list[_Job]:
        new: list[_Job] = []
        while len(batch) + len(new) < MAX_BATCH:
            try:
                new.append(self._queue.get_nowait())
            except queue.Empty:
                break
        batch.extend(new)
        return new

    def _learning_wait(self) -> float | None:
        """Seconds until the owed mastery updates go, if no answer comes first (0: now); None: none owed."""
        since = self._learning_since
        if since is None:
            return None
        now = time.monotonic()
        if since > now:  # backing off after a failure
            return since - now
        if now - since >= LEARNING_MAX_LAG_S and not self._learned_last:
            return 0.0  # overdue: a chunk now, then an answer batch, and so on
        if not self._queue.empty():
            return LEARNING_IDLE_S  # answers first (the writer's get returns one at once)
        # Idle means the hub's: another worker may still be committing the same burst's answers.
        last = max(self._last_commit, self._hub_last_commit.get() if self._hub_last_commit is not None else 0.0)
        return max(0.0, last + LEARNING_IDLE_S - now)

    def _learn(self, db: Database, lock_fd: int) -> None:
        """A pass of queued mastery updates, by one worker's writer at a time.

        The queue is one table for every worker, and their writers fall idle together after
        a burst: passes worked out at the same time would cover the same answers, and all but
        one would be overtaken. A writer that finds another one's pass under way leaves the
        queue to it and looks again shortly (the pass may not have emptied it).
        """
        if self._learner_fd is None:
            self._learner_fd = write_lock.open_lock(self._lock_path.with_name(LEARNER_LOCK_FILE))
        try:
            fcntl.flock(self._learner_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._learning_since = time.monotonic() + LEARNING_BUSY_S
            return
        cpu0 = time.thread_time()
        try:
            self._learn_pass(db, lock_fd)
        finally:
            fcntl.flock(self._learner_fd, fcntl.LOCK_UN)
            cpu = time.thread_time() - cpu0
            WRITER_CPU.inc(cpu)
            LEARNING_CPU.inc(cpu)

    def _learn_pass(self, db: Database, lock_fd: int) -> None:
        """One transaction of queued mastery updates (``edge.learning.pending``), written under the write lock.

        The update is worked out first, from one read of learning's tables, without the lock;
        under it the writer only checks that nothing it read has changed and writes. Every
        worker's answer commits wait for that lock, and working it out was most of the time a
        pass held it. If something did change (another worker's pass, a teacher's mark), the
        queue is applied under the lock as before.
        """
        conn = db.conn
        self._learned_last = True
        planned = self._plan_learning(db)
        if planned is None:
            # Another worker's pass took them (they share one queue): no write transaction for nothing.
            self._learning_since = None
            return
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        t0 = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                n = None if planned is _UNPLANNED else self._write_planned(db, planned)
                if n is None:  # overtaken, or not written: the queue as it is now, answer by answer if need be
                    n = apply_pending_learning(db, LEARNING_CHUNK)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except Exception as exc:  # the queue keeps them; answers go on meanwhile
            log.warning("mastery update failed; trying again shortly", extra={"error": str(exc)})
            self._learning_since = time.monotonic() + LEARNING_RETRY_S
            return
        finally:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            LEARNING_SECONDS.inc(time.perf_counter() - t0)
            LEARNING_PASSES.inc()
        # A full chunk may have left more, still owed since the same time; a short one emptied the queue.
        if n < LEARNING_CHUNK:
            self._learning_since = None

    def _plan_learning(self, db: Database) -> Any | None:
        """The next chunk's mastery update worked out off the lock; None: the queue is empty;
        ``_UNPLANNED``: answers wait but could not be planned (applied under the lock instead)."""
        conn = db.conn
        try:
            conn.execute("BEGIN")  # one snapshot for every read of the plan
            try:
                planned = plan_pending_learning(db, LEARNING_CHUNK)
            finally:
                conn.execute("COMMIT")
        except Exception as exc:  # applied under the lock, answer by answer if need be
            log.warning("mastery update could not be worked out ahead; applying it under the lock", extra={"error": str(exc)})
            return _UNPLANNED if learning_pending(db) else None
        return planned

    @staticmethod
    def _write_planned(db: Database, planned: Any) -> int | None:
        conn = db.conn
        conn.execute("SAVEPOINT planned_learning")
        try:
            n = write_planned_learning(db, planned)
        except sqlite3.Error as exc:  # something the plan did not foresee (a student removed meanwhile, say)
            conn.execute("ROLLBACK TO planned_learning")
            log.warning("mastery update worked out ahead could not be written; applying the queue instead", extra={"error": str(exc)})
            n = None
        conn.execute("RELEASE planned_learning")
        return n

    def _commit(self, db: Database, lock_fd: int, first: _Job, batch: list[_Job]) -> bool:
        """Apply ``first`` and whatever else is queued, in one transaction; fills ``batch`` with the jobs it took.

        Returns whether the batch queued answers for learning."""
        conn = db.conn
        # The batch is gathered once the lock is ours, not before: answers arriving while
        # the other worker commits (an fsync of 5-15 ms on a classroom SSD) join this commit
        # instead of waiting for one of their own.
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        t0 = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                batch.append(first)
                queued = self._apply_batch(db, [first, *self._drain(batch)], batch)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            LOCKED.inc(time.perf_counter() - t0)
        return queued

    def _apply_batch(self, db: Database, todo: list[_Job], batch: list[_Job]) -> bool:
        """Decide every answer against one read of their rows, then write them all (``AnswerBatch``)."""
        self._lookups.new_batch()  # what the other worker committed before we got the lock is read afresh
        store = AnswerBatch(db, self._bus)
        learning: list[GradedAnswer] = []
        db.conn.execute("SAVEPOINT answers")
        while todo:
            store.prefetch([j.answer.client_id for j in todo], [(j.answer.session_id, j.answer.item_id, j.answer.student_id) for j in todo])
            self._lookups.prefetch(db, [(j.answer.session_id, j.answer.item_id) for j in todo])
            for job in todo:
                self._apply(db, store, job, learning)
            # Answers that arrived while these were decided ride on the same commit.
            todo = self._drain(batch)
        try:
            store.flush()
        except sqlite3.Error:
            # Something the decisions did not foresee (a constraint): the batch is undone and its
            # answers written one at a time, so only the answer at fault is refused.
            log.exception("answer batch refused by the database; writing its answers one by one", extra={"answers": len(batch)})
            db.conn.execute("ROLLBACK TO answers")
            FALLBACKS.inc()
            learning = self._one_by_one(db, batch)
        db.conn.execute("RELEASE answers")
        # Personalised learning hears the whole batch at once, queued in this transaction; the
        # mastery update itself runs after the commit (_learn).
        return record_answers_for_learning(db, learning)

    def _one_by_one(self, db: Database, batch: list[_Job]) -> list[GradedAnswer]:
        learning: list[GradedAnswer] = []
        self._lookups.new_batch()
        for job in batch:
            job.result = job.error = None
            store = AnswerBatch(db, self._bus)
            mine: list[GradedAnswer] = []
            db.conn.execute("SAVEPOINT answer")
            self._apply(db, store, job, mine)
            try:
                store.flush()
            except sqlite3.Error:
                db.conn.execute("ROLLBACK TO answer")
                self._lookups.new_batch()
                log.exception("answer refused by the database", extra={"client_id": job.answer.client_id})
                job.result, job.error, mine = None, QuizError(500, "internal-error", "the answer could not be processed"), []
            db.conn.execute("RELEASE answer")
            learning += mine
        return learning

    def _apply(self, db: Database, store: AnswerBatch, job: _Job, learning: list[GradedAnswer]) -> None:
        try:
            prepared = job.prepared or prepare_answer(db, self._facts, job.answer, self._lookups, job.student_id)
            mine: list[GradedAnswer] = []
            with store.job():  # decided completely or not at all
                job.result = apply_answer(db, store, self._facts, job.answer, job.student_id, job.class_id, self._lookups, prepared, mine)
            learning += mine
        except Exception as exc:  # one bad answer must not sink the batch
            job.result = None
            job.error = exc if isinstance(exc, QuizError) else QuizError(500, "internal-error", "the answer could not be processed")
            if not isinstance(exc, QuizError):
                log.exception("answer failed", extra={"client_id": job.answer.client_id})


LAST_COMMIT_FILE = "quiz-last-commit"
LEARNER_LOCK_FILE = "quiz-learner.lock"  # held by the one writer running a pass of mastery updates
_UNPLANNED = object()  # answers wait for learning, but no plan was made ahead


class _SharedTime:
    """One CLOCK_MONOTONIC reading every worker process maps (the clock is the machine's, not the process's).

    The writers record their last answer commit here, so a writer owing mastery updates waits
    until the whole hub, not only its own process, has had no answer for ``LEARNING_IDLE_S``.
    A torn read between two writes can only make a writer wait a little more or less once.
    """

    def __init__(self, path: Path) -> None:
        fd = write_lock.open_lock(path)  # the same small private file in the run directory as the lock's
        try:
            if os.fstat(fd).st_size < 8:
                os.ftruncate(fd, 8)
            self._map = mmap.mmap(fd, 8)
        finally:
            os.close(fd)

    def get(self) -> float:
        return float(struct.unpack_from("<d", self._map, 0)[0])

    def set(self, t: float) -> None:
        struct.pack_into("<d", self._map, 0, t)


class _Syncer:
    """Acknowledges committed batches once the WAL holding them is on disk (see the module's docstring).

    One fdatasync covers every batch handed over while the previous one ran. ``wal`` None
    (``storage.synchronous = NORMAL``) acknowledges at once.
    """

    def __init__(self, wal: Path | None, bus: Any, lock_path: Path | None = None) -> None:
        self._wal, self._bus, self._lock_path = wal, bus, lock_path
        self._db: Database | None = None  # the syncer's own connection, for checkpoints
        self._last_checkpoint = time.monotonic()
        self._queue: queue.Queue[list[_Job]] = queue.Queue()
        if wal is not None:
            threading.Thread(target=self._run, name="quiz-writer-sync", daemon=True).start()

    def acknowledge(self, jobs: list[_Job]) -> None:
        if self._wal is None:
            self._release([jobs])
        else:
            self._queue.put(jobs)

    def _run(self) -> None:
        assert self._wal is not None
        while True:
            groups = [self._queue.get()]
            while True:
                try:
                    groups.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if any(job.result is not None for jobs in groups for job in jobs):
                t0 = time.perf_counter()
                try:
                    self._sync(self._wal)
                except OSError as exc:
                    # Not known to be on disk: nobody is told it is stored (a resend finds it and gets its ack).
                    log.critical("the answers' commit could not be synced to disk", extra={"error": str(exc)})
                    failed = QuizError(503, "write-failed", "the answer could not be stored safely; it will be sent again")
                    for jobs in groups:
                        for job in jobs:
                            job.result, job.error = None, job.error or failed
                SYNCS.inc()
                SYNC_SECONDS.inc(time.perf_counter() - t0)
            self._release(groups)
            if time.monotonic() - self._last_checkpoint >= CHECKPOINT_EVERY_S:
                self._checkpoint()

    def _checkpoint(self) -> None:
        """Copy committed WAL frames into the database, and start the WAL over once it has grown.

        PASSIVE never waits for or blocks a writer, but under a steady stream of answers it never
        catches up with the newest frame either, and SQLite starts the WAL over only after a
        checkpoint that did: the WAL then grew by ~60 MB a second in the benchmark's answer loop
        (a gigabyte in 16 s), and every page a connection read was looked up through one more
        wal-index hash table per 4,096 frames: the writer's CPU per answer doubled within 12 s.
        So once the WAL holds more than ``RESTART_FRAMES`` frames, the rest is copied with
        TRUNCATE between two commits (the hub's write lock held, after the PASSIVE pass did most
        of the copying), which starts the WAL over from an empty file.
        """
        assert self._wal is not None
        self._last_checkpoint = time.monotonic()
        t0 = time.perf_counter()
        try:
            if self._db is None:
                self._db = connect(Path(str(self._wal)[: -len("-wal")]), TRUNCATE_BUSY_MS, "NORMAL")
            _busy, frames, _copied = self._db.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames > RESTART_FRAMES and self._lock_path is not None:
                with write_lock.held(self._lock_path):
                    # Readers of older frames are waited for at most TRUNCATE_BUSY_MS (the connection's
                    # busy timeout); if one outlasts it, this is tried again at the next checkpoint.
                    busy, _, _ = self._db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                (WAL_RESTARTS if not busy else WAL_RESTARTS_BUSY).inc()
        except Exception as exc:  # a missed checkpoint only lets the WAL grow until the next one
            log.warning("WAL checkpoint failed", extra={"error": str(exc)})
        CHECKPOINT_SECONDS.inc(time.perf_counter() - t0)

    @staticmethod
    def _sync(wal: Path) -> None:
        # Opened per sync: the fdatasync reaches the file's data whichever descriptor wrote it.
        fd = os.open(wal, os.O_RDONLY)
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def _release(self, groups: list[list[_Job]]) -> None:
        created = False
        for jobs in groups:
            for job in jobs:
                created = created or (job.result is not None and job.result[1])
                job.done.set()
        if created:
            self._bus.wake()


_writers_lock = threading.Lock()


def writer_for(hub: Any) -> GroupWriter:
    """This app's writer (one per hub object, kept on it; its thread is per process)."""
    # Kept on the hub, not in a table keyed by id(hub): a hub that has been collected can
    # leave its id to a new one, which would then get the old hub's writer and database.
    # Every request of every thread asks (the app's before_request starts the writer): once
    # the writer exists, an attribute read answers without taking the lock.
    w: GroupWriter | None = getattr(hub, "quiz_writer", None)
    if w is not None:
        return w
    with _writers_lock:
        w = getattr(hub, "quiz_writer", None)
        if w is None:
            cfg = hub.config
            w = GroupWriter(cfg.db_path, cfg.storage.busy_timeout_ms, cfg.storage.synchronous, write_lock.lock_path(cfg.run_dir),
                            hub.bus, HubFacts(hub.hub_id, cfg.hub.timezone))
            hub.quiz_writer = w
        return w
