"""The Python tablet client's answer outbox against the real server: answers queued while the
hub is down survive (on disk), are sent once when it is back, and a refused one is set aside."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import requests

from edge.tablet_client.client import RetryPolicy, TabletClient
from edge.tablet_client.quiz_outbox import AnswerOutbox
from tests.hub.support import HttpHub, bearer

from .test_server_quiz import _start


def test_answers_queued_while_the_hub_is_down_land_once(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    srv = _start(server_factory(workers=1))
    h = HttpHub(srv)
    teacher = h.login()
    t = bearer(teacher)
    class_id = h.class_id(teacher)
    items = [requests.post(srv.url + "/api/v1/quiz/items", json={"type": "truefalse", "stem": f"T{i}", "key": {"value": True}},
                           headers=t, timeout=10).json()["id"] for i in range(4)]
    session = requests.post(srv.url + "/api/v1/quiz/sessions", json={"class_id": class_id, "item_ids": items[:3], "grace_s": 600},
                            headers=t, timeout=10).json()["id"]
    code = requests.post(srv.url + "/api/v1/pairing-codes", json={"class_id": class_id}, headers=t, timeout=10).json()["code"]
    client = TabletClient(base_url=srv.url, retry=RetryPolicy(attempts=2, base_s=0.05, cap_s=0.1), request_timeout=2)
    client.enrol(code, "py-tablet")
    student = client.list_students()[2]
    client.sign_in(student["id"], h.creds["student_pins"][student["number"]])
    box = AnswerOutbox(tmp_path / "outbox.sqlite3")
    srv.kill()  # the hub goes away (kill -9) while the class keeps answering
    ids = [box.add(student["id"], session, it, {"value": True}) for it in items[:3]]
    wrong_item = box.add(student["id"], session, items[3], {"value": True})  # not in this session: refused later
    assert client_flush(box, client, student["id"]) == 0
    box.close()
    box = AnswerOutbox(tmp_path / "outbox.sqlite3")  # the tablet app restarted: still queued
    assert len(box.pending(student["id"])) == 4
    _start(srv)
    client.base_url = srv.url  # found again (mDNS in the field)
    assert box.flush(client, student["id"]) == 3
    assert box.pending() == [] and box.flush(client, student["id"]) == 0
    refused = box.conn.execute("SELECT client_id, status FROM refused").fetchall()
    assert refused == [(wrong_item, 404)]
    conn = sqlite3.connect(srv.data_dir / "hub.sqlite3")
    stored = [r[0] for r in conn.execute("SELECT client_id FROM quiz_answers WHERE session_id = ?", (session,))]
    conn.close()
    assert sorted(stored) == sorted(ids)


def client_flush(box: AnswerOutbox, client: TabletClient, student_id: int) -> int:
    return box.flush(client, student_id)
