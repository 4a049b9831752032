"""The answer endpoint's fast path (edge/quiz/answer_endpoint.py) answers exactly as the Flask route.

Every request here is sent twice: through the app as deployed (fast path in front) and
straight to the Flask app behind it. Status, headers and body must agree (the ack's own
client id and time aside), and whatever the fast path does not take must reach Flask.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from edge.auth.guard import DEVICE_COOKIE, SESSION_COOKIE
from edge.health.metrics import REQUESTS
from edge.quiz.answer_endpoint import PATH, AnswerEndpoint

from .conftest import QuizRoom


class Paths:
    """The deployed app (fast path first) and the Flask app behind it, with a count of what reached Flask."""

    def __init__(self, room: QuizRoom) -> None:
        ep = room.env.app.wsgi_app
        assert isinstance(ep, AnswerEndpoint)
        self.endpoint, self.inner = ep, ep._inner
        self.to_flask = 0

        def counting(environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("PATH_INFO") == PATH:
                self.to_flask += 1
            return self.inner(environ, start_response)

        ep._inner = counting
        self.fast = Client(room.env.app, Response)
        self.flask = Client(self.inner, Response)

    def close(self) -> None:
        self.endpoint._inner = self.inner


@pytest.fixture
def paths(room: QuizRoom) -> Iterator[Paths]:
    p = Paths(room)
    yield p
    p.close()


def _body(room: QuizRoom, sid: int, item: int, pupil: int = 0, **extra: Any) -> dict[str, Any]:
    return {"client_id": str(uuid.uuid4()), "session_id": sid, "item_id": item, "student_id": room.pupils[pupil].student_id,
            "response": {"choices": [1]}, "answered_at": time.time(), **extra}


def _same(a: Response, b: Response, *, ack: bool = False) -> None:
    assert a.status == b.status
    ha, hb = dict(a.headers), dict(b.headers)
    if ack:  # a different client id and time: same keys, same shape
        ja, jb = a.get_json(), b.get_json()
        assert set(ja) == set(jb) and ja["status"] == jb["status"] and ja["session_id"] == jb["session_id"]
        assert len(a.data) - len(ja["client_id"]) - len(repr(ja["received_at"])) == len(b.data) - len(jb["client_id"]) - len(repr(jb["received_at"]))
        ha.pop("Content-Length"), hb.pop("Content-Length")
    else:
        assert a.data == b.data
    assert ha == hb


def _items(room: QuizRoom) -> tuple[int, int]:
    a = room.item(type="single", stem="1+1=?", options=["1", "2"], key={"choices": [1]}, knowledge_points=["加法"])
    b = room.item(type="fill", stem="暗号？", key={"blanks": [["x"]]})
    return a, b


def test_a_tablets_answer_and_its_retry_take_the_fast_path_and_match_the_flask_route(room: QuizRoom, paths: Paths) -> None:
    a, b = _items(room)
    sid = room.start([a, b])
    h = room.pupils[0].headers
    before = REQUESTS.labels("POST", "quiz.answer", "201")._value.get()
    body = _body(room, sid, a)
    fast = paths.fast.post(PATH, json=body, headers=h)
    flask = paths.flask.post(PATH, json=_body(room, sid, a, pupil=1), headers=room.pupils[1].headers)
    assert fast.status_code == 201 and paths.to_flask == 0
    _same(fast, flask, ack=True)
    assert REQUESTS.labels("POST", "quiz.answer", "201")._value.get() == before + 2  # both paths count the request
    retry_fast = paths.fast.post(PATH, json=body, headers=h)
    assert retry_fast.status_code == 200 and retry_fast.data == fast.data and paths.to_flask == 0
    retry_flask = paths.flask.post(PATH, json=body, headers=h)
    _same(retry_fast, retry_flask)
    assert room.env.count("quiz_answers") == 2


@pytest.mark.parametrize("case", ["replayed-id", "no-such-question", "closed", "another-student"])
def test_refusals_of_the_answer_itself_match_the_flask_route(room: QuizRoom, paths: Paths, case: str) -> None:
    a, b = _items(room)
    sid = room.start([a, b])
    h = room.pupils[0].headers
    if case == "replayed-id":
        first = _body(room, sid, a)
        assert paths.fast.post(PATH, json=first, headers=h).status_code == 201
        body = {**first, "response": {"choices": [0]}}
    elif case == "no-such-question":
        body = _body(room, sid + 1000, a)
    elif case == "closed":
        assert room.t("post", f"/api/v1/quiz/sessions/{sid}/close", json={}).status_code == 200
        body = _body(room, sid, a)
    else:
        body = _body(room, sid, a, pupil=1)  # pupil 1's id, sent by pupil 0
    snapshot = room.env.snapshot()
    fast = paths.fast.post(PATH, json=body, headers=h)
    flask = paths.flask.post(PATH, json=body, headers=h)
    assert fast.status_code in (404, 409) and fast.mimetype == "application/problem+json"
    assert paths.to_flask == 0
    _same(fast, flask)
    assert room.env.snapshot() == snapshot


def _cookie_client(room: QuizRoom) -> Client:
    c = Client(room.env.app, Response)
    h = room.pupils[0].headers
    c.set_cookie(SESSION_COOKIE, h["Authorization"].split()[1])
    c.set_cookie(DEVICE_COOKIE, h["X-Device-Token"])
    return c


def test_what_the_fast_path_does_not_take_reaches_flask_unchanged(room: QuizRoom, paths: Paths) -> None:
    a, b = _items(room)
    sid = room.start([a, b])
    h = room.pupils[0].headers
    # the web app signed in with cookies takes the fast path too, and is answered as by Flask
    body = _body(room, sid, a)
    r = _cookie_client(room).post(PATH, json=body)
    assert r.status_code == 201 and paths.to_flask == 0
    browser_flask = Client(paths.inner, Response)
    browser_flask.set_cookie(SESSION_COOKIE, h["Authorization"].split()[1])
    browser_flask.set_cookie(DEVICE_COOKIE, h["X-Device-Token"])
    _same(_cookie_client(room).post(PATH, json=body), browser_flask.post(PATH, json=body))
    teacher = room.teacher
    bad: list[tuple[str, dict[str, Any]]] = [
        ("not valid", {"json": {"session_id": sid}, "headers": h}),
        ("not JSON", {"data": b"{nope", "headers": {**h, "Content-Type": "application/json"}}),
        ("a list", {"json": [1, 2], "headers": h}),
        ("not JSON type", {"data": b"a=1", "headers": {**h, "Content-Type": "application/x-www-form-urlencoded"}}),
        ("a teacher", {"json": _body(room, sid, a), "headers": teacher}),
        ("a teacher with a device", {"json": _body(room, sid, a), "headers": {**teacher, "X-Device-Token": h["X-Device-Token"]}}),
        ("another tablet's token", {"json": _body(room, sid, a), "headers": {**h, "X-Device-Token": room.pupils[1].headers["X-Device-Token"]}}),
        ("no session", {"json": _body(room, sid, a), "headers": {"X-Device-Token": h["X-Device-Token"]}}),
        ("a bad session", {"json": _body(room, sid, a), "headers": {**h, "Authorization": "Bearer nope"}}),
        ("another scheme", {"json": _body(room, sid, a), "headers": {**h, "Authorization": "Basic bm9wZTpub3Bl"}}),
        ("too big", {"data": b'{"x": "' + b"a" * (room.env.config.http.max_body_bytes + 1) + b'"}',
                     "headers": {**h, "Content-Type": "application/json"}}),
    ]
    for name, kw in bad:
        seen = paths.to_flask
        fast, flask = paths.fast.post(PATH, **kw), paths.flask.post(PATH, **kw)
        assert fast.status_code in (400, 401, 403, 413, 415, 422), (name, fast.status_code)
        assert paths.to_flask == seen + 1, name
        _same(fast, flask)
    assert room.env.count("quiz_answers") == 1  # only the browser's
    assert paths.to_flask == len(bad)


def test_an_unexpected_failure_is_a_problem_document_not_a_trace(room: QuizRoom, paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _items(room)
    sid = room.start([a, b])
    import edge.quiz.answer_endpoint as endpoint

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(endpoint, "submit_answer", broken)
    r = paths.fast.post(PATH, json=_body(room, sid, a), headers=room.pupils[0].headers)
    assert r.status_code == 500 and r.mimetype == "application/problem+json"
    assert r.get_json()["type"] == "/problems/internal-error" and b"secret" not in r.data and b"Traceback" not in r.data
