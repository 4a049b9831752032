"""Mastery updates queued by the answers' commit and applied just after it (edge/learning/pending.py).

The answer is acknowledged without waiting for its mastery update; the update follows
in the writer's next idle moment; a read of mastery applies whatever is still queued;
answers queued before a restart are applied; an answer learning cannot use is dropped,
not retried forever."""

from __future__ import annotations

import fcntl
import json
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edge.learning import pending
from edge.learning.service import Answer, mastery_of
from edge.quiz import writer as w
from edge.storage import write_lock
from edge.storage.db import Database, connect, transaction
from tests.hub.support import HubEnv
from tests.quiz.conftest import make_room

from .conftest import students, teacher


def _queue(db: Database, answers: list[Answer]) -> None:
    with transaction(db):
        pending.enqueue(db, answers)


def test_the_answer_is_acknowledged_without_waiting_for_its_mastery_update(hub: HubEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    room = make_room(hub, n_students=1)
    item = room.item(type="single", stem="2+5=?", options=["7", "8"], key={"choices": [0]}, knowledge_points=["十以内加法"])
    session = room.start([item])
    hub.learning_applied()  # nothing owed from setting up
    gate, entered = threading.Event(), threading.Event()
    real = pending.record_answers

    def slow(db: Database, answers: Any, strict: bool = False) -> Any:
        entered.set()
        assert gate.wait(10)
        return real(db, answers, strict)

    real_plan = pending.plan_answers

    def slow_plan(db: Database, answers: Any, strict: bool = False) -> Any:  # the writer works it out off the lock
        entered.set()
        assert gate.wait(10)
        return real_plan(db, answers, strict)

    monkeypatch.setattr(pending, "record_answers", slow)
    monkeypatch.setattr(pending, "plan_answers", slow_plan)
    pupil = room.pupils[0]
    t0 = time.monotonic()
    r = room.answer(pupil, session, item, {"choices": [0]})
    assert r.status_code == 201 and time.monotonic() - t0 < 5
    # Acknowledged, durable and queued; the writer is busy with its mastery update meanwhile.
    assert entered.wait(5)
    assert hub.count("learning_pending") == 1
    assert hub.count("learning_answers", "answer_id = ?", (r.get_json()["client_id"],)) == 0
    gate.set()
    hub.learning_applied()
    assert hub.sql("SELECT student_id, correct FROM learning_answers WHERE answer_id = ?", (r.get_json()["client_id"],)) == [(pupil.student_id, 1)]


def test_a_read_of_mastery_applies_what_is_still_queued(lhub: HubEnv, ldb: Database) -> None:
    sid = students(lhub)[0]
    # Queued and not yet applied (as a crash would leave them): nobody has told the writer.
    _queue(ldb, [Answer(sid, f"m.count-{i}", None, False, 1_000.0 + i, f"q-{i}") for i in range(3)])
    assert lhub.count("learning_pending") == 3
    heat = lhub.client().get(f"/api/v1/classes/{lhub.class_id}/learning/heatmap", headers=teacher(lhub)).get_json()
    assert lhub.count("learning_pending") == 0
    assert lhub.count("learning_answers", "answer_id LIKE 'q-%'") == 3
    col = [k["id"] for k in heat["knowledge_points"]].index("m.count")
    row = [s["id"] for s in heat["students"]].index(sid)
    assert heat["mastery"][row][col] == pytest.approx(mastery_of(ldb, sid, ["m.count"])["m.count"], abs=0.005)  # the map rounds


def test_answers_queued_before_a_restart_are_applied_by_the_next_writer(lhub: HubEnv, ldb: Database) -> None:
    sid = students(lhub)[1]
    _queue(ldb, [Answer(sid, "m.add-0", None, True, 2_000.0, "left-1"), Answer(sid, "m.add-1", None, True, 2_001.0, "left-2")])
    cfg = lhub.config
    hub = lhub.app.extensions["classroom_hub"]
    fresh = w.GroupWriter(cfg.db_path, cfg.storage.busy_timeout_ms, cfg.storage.synchronous, write_lock.lock_path(cfg.run_dir),
                          hub.bus, w.HubFacts(hub.hub_id, cfg.hub.timezone))
    fresh.start()  # what a restarted worker does on its first request
    lhub.learning_applied()
    assert [r[0] for r in lhub.sql("SELECT answer_id FROM learning_answers WHERE student_id = ? ORDER BY id", (sid,))] == ["left-1", "left-2"]


def test_an_answer_learning_cannot_use_is_dropped_and_the_rest_applied(lhub: HubEnv, ldb: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    sids = students(lhub)
    _queue(ldb, [
        Answer(sids[0], "m.count-0", None, True, 3_000.0, "ok-1"),
        Answer(sids[0], "no-such-item", None, True, 3_001.0, "unknown-item"),  # refused by learning: logged
        Answer(sids[1], "m.count-1", None, False, 3_002.0, "poison"),  # raises: applied alone, dropped
        Answer(sids[1], "m.count-2", None, True, 3_003.0, "ok-2"),
    ])
    real = pending.record_answers

    def picky(db: Database, answers: Any, strict: bool = False) -> Any:
        if any(a.answer_id == "poison" for a in answers):
            raise RuntimeError("learning cannot take this one")
        return real(db, answers, strict)

    monkeypatch.setattr(pending, "record_answers", picky)
    refused = pending.REFUSED._value.get()
    with transaction(ldb):
        assert pending.apply_pending(ldb) == 4
    assert not pending.has_pending(ldb)
    assert pending.REFUSED._value.get() == refused + 1
    assert {r[0] for r in lhub.sql("SELECT answer_id FROM learning_answers")} == {"ok-1", "ok-2"}


def test_catch_up_applies_in_chunks_under_the_write_lock(lhub: HubEnv, ldb: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    sid = students(lhub)[2]
    monkeypatch.setattr(pending, "CHUNK", 4)
    _queue(ldb, [Answer(sid, f"m.count-{i % 6}", None, i % 2 == 0, 4_000.0 + i, f"c-{i}") for i in range(10)])
    lock = write_lock.lock_path(lhub.config.run_dir)
    chunks: list[int] = []
    real = pending.record_answers

    def counted(db: Database, answers: Any, strict: bool = False) -> Any:
        chunks.append(len(answers))
        return real(db, answers, strict)

    monkeypatch.setattr(pending, "record_answers", counted)
    # Someone else holds the write lock: catch-up waits for it rather than fighting SQLite's busy handler.
    fd = write_lock.open_lock(lock)
    fcntl.flock(fd, fcntl.LOCK_EX)
    done: queue.Queue[int] = queue.Queue()
    threading.Thread(target=lambda: done.put(_catch_up(lhub.config.db_path, lock)), daemon=True).start()
    time.sleep(0.2)
    assert done.empty() and lhub.count("learning_pending") == 10
    fcntl.flock(fd, fcntl.LOCK_UN)
    assert done.get(timeout=5) == 10
    os.close(fd)
    assert chunks == [4, 4, 2]
    assert lhub.count("learning_answers", "answer_id LIKE 'c-%'") == 10


def _catch_up(db_path: Path, lock: Path) -> int:
    db = connect(db_path)
    try:
        return pending.catch_up(db, lock)
    finally:
        db.conn.close()


def test_the_writer_puts_mastery_updates_off_until_answers_pause_or_they_waited_too_long(lhub: HubEnv) -> None:
    cfg = lhub.config
    hub = lhub.app.extensions["classroom_hub"]
    gw = w.GroupWriter(cfg.db_path, 5000, "FULL", write_lock.lock_path(cfg.run_dir), hub.bus, w.HubFacts(hub.hub_id, cfg.hub.timezone))
    assert gw._learning_wait() is None  # nothing owed: the writer just waits for answers
    now = time.monotonic()
    gw._learning_since = gw._last_commit = now
    assert 0 < gw._learning_wait() <= w.LEARNING_IDLE_S  # owed: once answers pause
    gw._last_commit = now - w.LEARNING_IDLE_S
    assert gw._learning_wait() == 0.0  # they paused: now
    gw._queue.put(object())  # type: ignore[arg-type]
    assert gw._learning_wait() > 0  # an answer waits: it goes first
    gw._learning_since = time.monotonic() - w.LEARNING_MAX_LAG_S - 0.01
    assert gw._learning_wait() == 0.0  # waited too long: a chunk goes first now...
    gw._learned_last = True
    assert gw._learning_wait() > 0  # ...then an answer batch, then the next chunk
    gw._learning_since = time.monotonic() + 1
    assert 0.9 < gw._learning_wait() <= 1  # backing off after a failure


def test_mastery_updates_wait_until_no_worker_has_committed_answers_for_a_moment(lhub: HubEnv, tmp_path: Path) -> None:
    cfg = lhub.config
    hub = lhub.app.extensions["classroom_hub"]
    gw = w.GroupWriter(cfg.db_path, 5000, "FULL", write_lock.lock_path(cfg.run_dir), hub.bus, w.HubFacts(hub.hub_id, cfg.hub.timezone))
    gw._hub_last_commit = w._SharedTime(tmp_path / w.LAST_COMMIT_FILE)
    other_worker = w._SharedTime(tmp_path / w.LAST_COMMIT_FILE)  # the same file, mapped by another writer
    gw._learning_since = time.monotonic() - 0.1
    gw._last_commit = time.monotonic() - 1  # this worker has had no answer for a second
    assert gw._learning_wait() == 0.0
    other_worker.set(time.monotonic())  # but another worker has just committed some
    assert 0 < gw._learning_wait() <= w.LEARNING_IDLE_S


def test_a_writer_owing_updates_another_worker_applied_takes_no_write_lock(lhub: HubEnv) -> None:
    cfg = lhub.config
    hub = lhub.app.extensions["classroom_hub"]
    gw = w.GroupWriter(cfg.db_path, 5000, "FULL", write_lock.lock_path(cfg.run_dir), hub.bus, w.HubFacts(hub.hub_id, cfg.hub.timezone))
    db = connect(cfg.db_path)
    held = write_lock.open_lock(write_lock.lock_path(cfg.run_dir))
    mine = write_lock.open_lock(write_lock.lock_path(cfg.run_dir))
    try:
        assert not pending.has_pending(db)
        gw._learning_since = time.monotonic() - 1
        fcntl.flock(held, fcntl.LOCK_EX)  # the lock is busy: a pass would wait for it
        done = threading.Event()
        threading.Thread(target=lambda: (gw._learn(db, mine), done.set()), daemon=True).start()
        assert done.wait(2), "the writer waited for the write lock with nothing to apply"
        assert gw._learning_since is None
    finally:
        fcntl.flock(held, fcntl.LOCK_UN)
        os.close(held)
        os.close(mine)
        db.conn.close()


def test_the_backlog_shows_in_metrics_and_status(lhub: HubEnv, ldb: Database) -> None:
    from click.testing import CliRunner

    from edge.cli import main

    sid = students(lhub)[3]
    _queue(ldb, [Answer(sid, f"m.mul-{i}", None, True, 5_000.0 + i, f"b-{i}") for i in range(3)])
    # Read as /metrics renders it (a request would start the writer, which applies the queue).
    from edge.health.metrics import render

    assert "hub_learning_pending 3.0" in render(lhub.app.extensions["classroom_hub"]).decode()
    out = CliRunner().invoke(main, ["--data-dir", str(lhub.config.hub.data_dir), "status", "--json"])
    assert out.exit_code == 0, out.output
    info = json.loads(out.output)
    assert info["learning_pending"] == 3 and 0 <= info["learning_pending_age_s"] < 60


def test_a_teachers_mark_comes_after_the_answers_still_queued(hub: HubEnv) -> None:
    room = make_room(hub, n_students=1)
    short = room.item(type="short", stem="讲一讲加法", key={"reference": "合起来"}, points=2, knowledge_points=["十以内加法"])
    earlier = room.item(type="single", stem="1+1=?", options=["2", "3"], key={"choices": [0]}, knowledge_points=["十以内加法"])
    earlier_uid = hub.sql("SELECT uid FROM quiz_items WHERE id = ?", (earlier,))[0][0]
    sid = room.start([short])
    pupil = room.pupils[0]
    assert room.answer(pupil, sid, short, {"text": "合在一起"}).status_code == 201
    hub.learning_applied()
    db = connect(hub.config.db_path)
    try:  # an answer acknowledged earlier whose mastery update the writer has not applied yet
        _queue(db, [Answer(pupil.student_id, earlier_uid, ["十以内加法"], False, 1_000.0, "queued-before-the-mark")])
    finally:
        db.conn.close()
    answer_id = hub.sql("SELECT id FROM quiz_answers WHERE session_id = ?", (sid,))[0][0]
    assert room.t("post", f"/api/v1/quiz/answers/{answer_id}/mark", json={"score": 2}).status_code == 200
    hub.learning_applied()
    order = [r[0] for r in hub.sql("SELECT answer_id FROM learning_answers WHERE student_id = ? ORDER BY id", (pupil.student_id,))]
    assert order[0] == "queued-before-the-mark" and len(order) == 2 and order[1].startswith(
        hub.sql("SELECT client_id FROM quiz_answers WHERE id = ?", (answer_id,))[0][0])


# What a mastery update reads and writes, without the rows' own timestamps of writing.
_LEARNING_TABLES = {
    "learning_answers": "id, answer_id, student_id, item_id, kps, correct, at",
    "learning_state": "student_id, model_version, h, c, p, steps, last_answer",
    "learning_bkt": "student_id, kp_id, p_known, answers",
    "learning_item_progress": "student_id, item_id, last_at, last_correct, attempts, wrong, streak, due_at",
    "learning_evidence": "student_id, kp_id, answers, correct, last_at",
    "learning_pending": "id, student_id, item_id, kps, correct, at, answer_id",
}


def _learning_rows(db: Database) -> dict[str, list[Any]]:
    return {t: db.execute(f"SELECT {cols} FROM {t} ORDER BY 1, 2").fetchall() for t, cols in _LEARNING_TABLES.items()}


def _mixed_queue(lhub: HubEnv, ldb: Database) -> None:
    sids = students(lhub)
    # Network points and BKT ones, students answering for the first time and again, a repeated id.
    _queue(ldb, [Answer(sids[0], "m.count-1", None, True, 5_000.0, "p-0"), Answer(sids[0], "m.shape-1", ["m.shape"], False, 5_001.0, "p-1")])
    with transaction(ldb):
        pending.apply_pending(ldb)
    _queue(ldb, [
        Answer(sids[0], "m.add-1", ["m.add", "m.shape"], False, 5_002.0, "p-2"),
        Answer(sids[1], "m.count-2", None, True, 5_003.0, "p-3"),
        Answer(sids[1], "m.count-2", None, False, 5_004.0, "p-4"),
        Answer(sids[2], "m.shape-2", ["m.shape"], True, 5_005.0, "p-5"),
        Answer(sids[0], "m.add-1", ["m.add"], True, 5_006.0, "p-2"),  # the same answer again: changes nothing
    ])


def _plan(db: Database) -> pending.PendingPlan | None:
    db.conn.execute("BEGIN")
    try:
        return pending.plan_pending(db)
    finally:
        db.conn.execute("COMMIT")


def test_an_update_worked_out_ahead_writes_what_applying_it_under_the_lock_writes(lhub: HubEnv, ldb: Database) -> None:
    _mixed_queue(lhub, ldb)
    planned = _plan(ldb)
    assert planned is not None and len(planned.queued_at) == 5
    with transaction(ldb):
        ldb.conn.execute("SAVEPOINT ahead")
        assert pending.write_planned(ldb, planned) == 5
        ahead = _learning_rows(ldb)
        ldb.conn.execute("ROLLBACK TO ahead")
        ldb.conn.execute("RELEASE ahead")
        assert pending.apply_pending(ldb) == 5
    assert _learning_rows(ldb) == ahead
    assert ahead["learning_pending"] == [] and len(ahead["learning_answers"]) == 6


def test_an_update_worked_out_ahead_is_not_written_once_learning_changed(lhub: HubEnv, ldb: Database) -> None:
    _mixed_queue(lhub, ldb)
    planned = _plan(ldb)
    assert planned is not None
    # Meanwhile another worker's pass (or a reader's catch-up) applies the queue.
    with transaction(ldb):
        pending.apply_pending(ldb)
    before, stale = _learning_rows(ldb), pending.STALE._value.get()
    with transaction(ldb):
        assert pending.write_planned(ldb, planned) is None
    assert _learning_rows(ldb) == before and pending.STALE._value.get() == stale + 1


def test_every_table_an_update_reads_moves_the_generation_and_new_queued_answers_do_not(lhub: HubEnv, ldb: Database) -> None:
    sid = students(lhub)[0]
    _mixed_queue(lhub, ldb)
    with transaction(ldb):
        pending.apply_pending(ldb)
    gen = pending.generation(ldb)
    _queue(ldb, [Answer(sid, "m.count-1", None, True, 6_000.0, "g-0")])
    assert pending.generation(ldb) == gen  # answers joining the queue leave a plan valid
    changes = [
        "UPDATE learning_knowledge_points SET name = name",
        "UPDATE learning_items SET difficulty = difficulty",
        "UPDATE learning_item_kps SET kp_id = kp_id",
        "UPDATE learning_answers SET correct = correct",
        "UPDATE learning_item_progress SET attempts = attempts",
        "UPDATE learning_state SET steps = steps",
        "UPDATE learning_bkt SET answers = answers",
        "DELETE FROM learning_pending",
    ]
    for sql in changes:
        with transaction(ldb):
            ldb.conn.execute(sql)
        assert pending.generation(ldb) > gen, sql
        gen = pending.generation(ldb)
    # Another model installed (and the bundled one back), in one transaction.
    with transaction(ldb):
        ldb.conn.execute("INSERT OR REPLACE INTO learning_model (slot, version, path, sha256, manifest, installed_at) "
                         "VALUES ('active', 'zz', '/nowhere', '0', '{}', 0)")
        ldb.conn.execute("DELETE FROM learning_model WHERE version = 'zz'")
    assert pending.generation(ldb) > gen


def _writer(lhub: HubEnv) -> tuple[w.GroupWriter, int]:
    cfg = lhub.config
    hub = lhub.app.extensions["classroom_hub"]
    lock = write_lock.lock_path(cfg.run_dir)
    gw = w.GroupWriter(cfg.db_path, 5000, "FULL", lock, hub.bus, w.HubFacts(hub.hub_id, cfg.hub.timezone))
    gw._learner_fd = write_lock.open_lock(lock.with_name(w.LEARNER_LOCK_FILE))
    return gw, write_lock.open_lock(lock)


def test_one_writer_at_a_time_runs_a_pass_the_others_look_again_shortly(lhub: HubEnv, ldb: Database) -> None:
    _mixed_queue(lhub, ldb)
    gw, lock_fd = _writer(lhub)
    other = write_lock.open_lock(write_lock.lock_path(lhub.config.run_dir).with_name(w.LEARNER_LOCK_FILE))
    try:
        fcntl.flock(other, fcntl.LOCK_EX)  # another worker's writer is in a pass
        gw._learn(ldb, lock_fd)
        assert lhub.count("learning_pending") == 5
        assert gw._learning_since is not None and 0 < gw._learning_since - time.monotonic() <= w.LEARNING_BUSY_S
        fcntl.flock(other, fcntl.LOCK_UN)
        gw._learn(ldb, lock_fd)
        assert lhub.count("learning_pending") == 0 and gw._learning_since is None
        assert lhub.count("learning_answers", "answer_id LIKE 'p-%'") == 6
    finally:
        for fd in (other, lock_fd, gw._learner_fd):
            os.close(fd)  # type: ignore[arg-type]


def test_a_pass_whose_plan_cannot_be_written_applies_the_queue_under_the_lock(lhub: HubEnv, ldb: Database,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _mixed_queue(lhub, ldb)
    gw, lock_fd = _writer(lhub)

    def refused(db: Database, planned: Any) -> int | None:
        db.conn.execute("INSERT INTO learning_answers (id, answer_id, student_id, item_id, kps, correct, at) VALUES (1, 'x', -1, 'x', '[]', 0, 0)")
        raise AssertionError("not reached: the insert fails")

    monkeypatch.setattr(pending, "write_planned", refused)
    try:
        gw._learn(ldb, lock_fd)
    finally:
        os.close(lock_fd)
        os.close(gw._learner_fd)  # type: ignore[arg-type]
    assert lhub.count("learning_pending") == 0
    assert lhub.count("learning_answers", "answer_id LIKE 'p-%'") == 6
    assert lhub.count("learning_answers", "answer_id = 'x'") == 0
