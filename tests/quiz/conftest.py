"""Fixtures for quiz tests: the hub's real app on a seeded copy, real servers, and
a classroom with signed-in student tablets (all through the real API)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.hub.support import HubEnv, bearer, hub, module_hub, server_factory, student_headers, template  # noqa: F401

DATA = __import__("pathlib").Path(__file__).resolve().parent / "data"


@dataclass
class Pupil:
    student_id: int
    headers: dict[str, str]
    number: str


@dataclass
class QuizRoom:
    env: HubEnv
    teacher: dict[str, str]
    pupils: list[Pupil] = field(default_factory=list)
    student_seen: list[str] = field(default_factory=list)  # every body a student received (leak checks)

    def t(self, method: str, path: str, **kw: Any) -> Any:
        return getattr(self.env.client(), method)(path, headers=self.teacher, **kw)

    def s(self, pupil: Pupil, method: str, path: str, **kw: Any) -> Any:
        headers = {**pupil.headers, **kw.pop("headers", {})}
        r = getattr(self.env.client(), method)(path, headers=headers, **kw)
        self.student_seen.append(r.get_data(as_text=True))
        return r

    def item(self, **body: Any) -> int:
        r = self.t("post", "/api/v1/quiz/items", json=body)
        assert r.status_code == 201, r.get_json()
        return int(r.get_json()["id"])

    def start(self, item_ids: list[int], **extra: Any) -> int:
        body = {"class_id": self.env.class_id, "item_ids": item_ids, **extra}
        r = self.t("post", "/api/v1/quiz/sessions", json=body)
        assert r.status_code == 201, r.get_json()
        return int(r.get_json()["id"])

    def answer(self, pupil: Pupil, session_id: int, item_id: int, response: dict[str, Any], client_id: str | None = None,
               **extra: Any) -> Any:
        body = {"client_id": client_id or str(uuid.uuid4()), "session_id": session_id, "item_id": item_id,
                "student_id": pupil.student_id, "response": response, "answered_at": time.time(), **extra}
        return self.s(pupil, "post", "/api/v1/quiz/answers", json=body)


def make_room(env: HubEnv, n_students: int = 3) -> QuizRoom:
    room = QuizRoom(env, bearer(env.staff_token("teacher")))
    for i in range(1, n_students + 1):
        number = f"{i:02d}"
        tablet = env.enrol(name=f"tablet-{number}")
        token = env.sign_in(tablet, number)
        room.pupils.append(Pupil(env.student(number)[0], student_headers(token, tablet.token), number))
    return room


@pytest.fixture
def room(hub: HubEnv) -> QuizRoom:  # noqa: F811
    return make_room(hub)


SECRET_FILL = "ZEBRA-KEY-一二三"
SECRET_EXPLANATION = "EXPLANATION-SECRET-解析"
