"""The answer writer's group commit, with the batch made deterministic: the test holds the
writers' lock, queues answers one after another, then lets the writer take them all in one
transaction. What one batch decides must be what the same answers one at a time decide."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from edge.quiz import xapi
from edge.quiz.writer import ANSWERS, BATCHES, FALLBACKS, writer_for
from edge.storage import write_lock
from tests.hub.support import assert_problem

from .conftest import QuizRoom, make_room


@contextmanager
def one_batch(room: QuizRoom) -> Iterator[Callable[[Callable[[], Any]], None]]:
    """Yields ``send(call)``: each call runs in its own thread and is queued behind the previous
    one while the test holds the writers' lock; leaving the block releases it, so the writer
    commits everything queued in one batch. The responses are in ``send.results`` in order."""
    writer = writer_for(room.env.app.extensions["classroom_hub"])
    writer.start()
    lock_path = write_lock.lock_path(room.env.config.run_dir)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    results: list[Any] = []
    threads: list[threading.Thread] = []

    def send(call: Callable[[], Any]) -> None:
        slot = len(results)
        results.append(None)
        queued = writer._queue.unfinished_tasks  # counts every put (the writer never calls task_done)

        def run() -> None:
            results[slot] = call()

        t = threading.Thread(target=run)
        t.start()
        threads.append(t)
        # The first answer is taken by the writer, which then waits for the lock; every later
        # one waits in the queue, in the order sent.
        deadline = time.monotonic() + 10
        while writer._queue.unfinished_tasks == queued or (slot == 0 and writer._queue.qsize()):
            if time.monotonic() > deadline:
                raise AssertionError("the answer never reached the writer")
            time.sleep(0.002)

    send.results = results  # type: ignore[attr-defined]
    batches0 = BATCHES._value.get()
    try:
        yield send
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        for t in threads:
            t.join(30)
    assert BATCHES._value.get() - batches0 == 1, "the answers were not written in one batch"


def _ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def test_one_batch_decides_each_answer_as_if_alone(hub) -> None:  # type: ignore[no-untyped-def]
    room = make_room(hub, n_students=5)
    single = room.item(type="single", stem="1+1=?", options=["1", "2", "3"], key={"choices": [1]}, knowledge_points=["加法"])
    sid = room.start([single])
    a, b, c, d, e = room.pupils
    first, change, b_id, c_id, d_id = _ids(5)
    t = time.time()
    fallbacks = FALLBACKS._value.get()
    with one_batch(room) as send:
        send(lambda: room.answer(a, sid, single, {"choices": [0]}, client_id=first, answered_at=t))
        send(lambda: room.answer(b, sid, single, {"choices": [1]}, client_id=b_id, answered_at=t))
        send(lambda: room.answer(a, sid, single, {"choices": [1]}, client_id=change, answered_at=t + 1))  # a change, same batch
        send(lambda: room.answer(b, sid, single, {"choices": [1]}, client_id=b_id, answered_at=t))  # a retry, same batch
        send(lambda: room.answer(c, sid, single, {"choices": [7]}, client_id=c_id, answered_at=t))  # no such option
        send(lambda: room.s(d, "post", "/api/v1/quiz/answers", json={  # another student's answer
            "client_id": d_id, "session_id": sid, "item_id": single, "student_id": e.student_id, "response": {"choices": [1]}, "answered_at": t}))
        send(lambda: room.answer(e, sid, single, {"choices": [2]}, client_id=first, answered_at=t))  # a's id, other content
    r = send.results  # type: ignore[attr-defined]
    assert [x.status_code for x in r] == [201, 201, 201, 200, 422, 409, 409]
    assert FALLBACKS._value.get() == fallbacks  # decided and written as one batch
    assert r[3].get_json() == r[1].get_json()
    assert_problem(r[5], 409, "wrong-student")
    assert_problem(r[6], 409, "replayed-id")
    rows = room.env.sql("SELECT student_id, client_id, response, correct, changes FROM quiz_answers WHERE session_id = ? ORDER BY student_id", (sid,))
    assert rows == [(a.student_id, change, '{"choices":[1]}', 1, 1), (b.student_id, b_id, '{"choices":[1]}', 1, 0)]
    assert room.env.count("quiz_submissions", "session_id = ?", (sid,)) == 3
    statements = {r[0] for r in room.env.sql("SELECT event_id FROM outbox WHERE type = 'xapi.statement'")}
    assert statements == {xapi.statement_id(x) for x in (first, b_id, change)}
    events = [json.loads(d) for (d,) in room.env.sql("SELECT data FROM live_events WHERE type = 'quiz.answer' ORDER BY id")]
    assert [(ev["client_id"], ev["answered"]) for ev in events] == [(first, 1), (b_id, 2), (change, 2)]
    # Learning heard the three graded answers, in order (queued by the batch, applied just after).
    room.env.learning_applied()
    learned = room.env.sql("SELECT answer_id, correct FROM learning_answers ORDER BY id")
    assert learned == [(first, 0), (b_id, 1), (change, 1)]


def test_an_answer_the_database_refuses_is_refused_alone(hub) -> None:  # type: ignore[no-untyped-def]
    # An outbox row already holds the statement id one answer would write: the batch's single
    # insert fails, the writer undoes it and writes the answers one by one; only that one fails.
    room = make_room(hub, n_students=3)
    single = room.item(type="single", stem="2+2=?", options=["3", "4"], key={"choices": [1]})
    sid = room.start([single])
    ids = _ids(3)
    with sqlite3.connect(room.env.config.db_path) as conn:
        conn.execute("INSERT INTO outbox (event_id, type, schema, payload, created_at) VALUES (?, 'test', 1, '{}', 0)",
                     (xapi.statement_id(ids[1]),))
    answers0, fallbacks = ANSWERS._value.get(), FALLBACKS._value.get()
    with one_batch(room) as send:
        for p, cid in zip(room.pupils, ids, strict=True):
            send(lambda p=p, cid=cid: room.answer(p, sid, single, {"choices": [1]}, client_id=cid))
    r = send.results  # type: ignore[attr-defined]
    assert [x.status_code for x in r] == [201, 500, 201]
    assert FALLBACKS._value.get() == fallbacks + 1
    assert_problem(r[1], 500, "internal-error")
    assert {c for (c,) in room.env.sql("SELECT client_id FROM quiz_answers WHERE session_id = ?", (sid,))} == {ids[0], ids[2]}
    assert room.env.count("quiz_submissions", "session_id = ?", (sid,)) == 2
    assert ANSWERS._value.get() - answers0 == 3
    # The refused answer, sent again once the conflict is gone, lands.
    with sqlite3.connect(room.env.config.db_path) as conn:
        conn.execute("DELETE FROM outbox WHERE type = 'test'")
    assert room.answer(room.pupils[1], sid, single, {"choices": [1]}, client_id=ids[1]).status_code == 201


def test_an_answer_is_acknowledged_only_after_its_commit_is_synced(hub, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The writer commits without syncing and its syncer fdatasyncs the WAL before any ack: while
    # that sync has not returned the answer is in the database, and its tablet still waits.
    from edge.quiz import writer as w

    room = make_room(hub, n_students=2)
    single = room.item(type="single", stem="3+3=?", options=["5", "6"], key={"choices": [1]})
    sid = room.start([single])
    gate, synced = threading.Event(), []
    real = w._Syncer._sync

    def slow_sync(wal: Any) -> None:
        assert str(wal).endswith("hub.sqlite3-wal")
        gate.wait(10)
        real(wal)
        synced.append(wal)

    monkeypatch.setattr(w._Syncer, "_sync", staticmethod(slow_sync))
    syncs0 = w.SYNCS._value.get()
    cid, out = str(uuid.uuid4()), []
    t = threading.Thread(target=lambda: out.append(room.answer(room.pupils[0], sid, single, {"choices": [1]}, client_id=cid)))
    t.start()
    deadline = time.monotonic() + 10
    while not room.env.count("quiz_answers", "client_id = ?", (cid,)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert room.env.count("quiz_answers", "client_id = ?", (cid,)) == 1  # committed ...
    time.sleep(0.2)
    assert not out and not synced  # ... but not acknowledged before the sync
    gate.set()
    t.join(10)
    assert out[0].status_code == 201 and synced
    assert w.SYNCS._value.get() > syncs0


def test_a_failed_sync_acknowledges_nothing_and_the_resend_lands(hub, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from edge.quiz import writer as w

    room = make_room(hub, n_students=1)
    single = room.item(type="single", stem="4+4=?", options=["8", "9"], key={"choices": [0]})
    sid = room.start([single])

    def broken(wal: Any) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(w._Syncer, "_sync", staticmethod(broken))
    cid, t = str(uuid.uuid4()), time.time()
    r = room.answer(room.pupils[0], sid, single, {"choices": [0]}, client_id=cid, answered_at=t)
    assert_problem(r, 503, "write-failed")
    monkeypatch.undo()
    # The tablet kept the answer and sends it again: the hub finds it stored and acknowledges it.
    again = room.answer(room.pupils[0], sid, single, {"choices": [0]}, client_id=cid, answered_at=t, sent_at=t + 2)
    assert again.status_code == 200 and again.get_json()["client_id"] == cid
    assert room.env.count("quiz_answers", "client_id = ?", (cid,)) == 1


def test_the_syncer_checkpoints_the_wal_off_the_write_lock(hub, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The writer's own connection never checkpoints (that would run inside its COMMIT, under the
    # lock); the syncer copies the WAL into the database after acknowledging.
    from edge.quiz import writer as w

    monkeypatch.setattr(w, "CHECKPOINT_EVERY_S", 0.0)
    room = make_room(hub, n_students=2)
    single = room.item(type="single", stem="5+5=?", options=["10", "11"], key={"choices": [0]})
    sid = room.start([single])
    before = w.CHECKPOINT_SECONDS._value.get()
    for p in room.pupils:
        assert room.answer(p, sid, single, {"choices": [0]}).status_code == 201
    deadline = time.monotonic() + 5
    while w.CHECKPOINT_SECONDS._value.get() == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert w.CHECKPOINT_SECONDS._value.get() > before
    # Everything acknowledged is in the database file proper once a full checkpoint has run.
    # (The syncer may be checkpointing at this very moment, which makes ours report busy: retry.)
    with sqlite3.connect(room.env.config.db_path) as conn:
        deadline = time.monotonic() + 5
        while True:
            busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if (busy == 0 and frames == done) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert busy == 0 and frames == done
        assert conn.execute("SELECT COUNT(*) FROM quiz_answers WHERE session_id = ?", (sid,)).fetchone()[0] == 2
