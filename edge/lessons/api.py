"""HTTP API: lessons, content bytes, interactive frames, schedule, prefetch, page push, who is online."""

from __future__ import annotations

import datetime as dt
import re

from apiflask import APIBlueprint
from flask import Response
from pydantic import Field

from edge.accounts.service import school_day
from edge.auth.guard import ADMIN, STAFF, STUDENT, TEACHER, current_principal, session_auth
from edge.context import current_hub, db
from edge.errors import problem
from edge.lessons import frames, service
from edge.lessons.serving import send_blob
from edge.lessons.store import blob_path
from edge.schemas import Out, StrictIn
from edge.storage.db import transaction

bp = APIBlueprint("lessons", __name__, tag="Lessons")

_SHA = re.compile(r"^[0-9a-f]{64}$")


def _member(class_id: int) -> None:
    if class_id not in current_principal().class_ids:
        problem(404, "no-such-class", f"no class with id {class_id} among yours")


def _lesson_or_404(lesson: int) -> dict[str, object]:
    detail = service.lesson_detail(db(), lesson)
    if detail is None:
        problem(404, "no-such-lesson", f"no lesson {lesson} is installed")
    return detail


class LessonSummary(Out):
    id: int
    lesson_id: str
    version: int
    title: str
    subject: str
    grade: int
    chapter: str
    total_bytes: int
    installed_at: float
    pages: int


class LessonListOut(Out):
    lessons: list[LessonSummary]


class PageOut(Out):
    number: int
    title: str
    file: str
    media_type: str
    kind: str
    url: str
    sha256: str
    size: int
    frame_url: str | None = None


class LessonOut(Out):
    id: int
    lesson_id: str
    version: int
    installed_at: float
    title: str
    subject: str
    grade: int
    chapter: str
    knowledge_points: list[str]
    pages: list[PageOut]
    files: list[dict[str, object]]
    quizzes: list[dict[str, object]]


@bp.get("/api/v1/lessons")
@bp.auth_required(session_auth)
@bp.output(LessonListOut)
@bp.doc(summary="Installed lessons (newest version of each, and older ones a schedule still names)")
def list_lessons() -> dict[str, object]:
    return {"lessons": service.list_lessons(db())}


@bp.get("/api/v1/lessons/<int:lesson>")
@bp.auth_required(session_auth)
@bp.output(LessonOut)
@bp.doc(summary="One lesson: metadata, ordered pages with content URLs, files, attached quizzes", responses=[404])
def get_lesson(lesson: int) -> dict[str, object]:
    detail = _lesson_or_404(lesson)
    token = frames.make_token(current_hub().hub_secret, lesson)
    for page in detail["pages"]:  # type: ignore[attr-defined]
        if page["kind"] == "html":
            page["frame_url"] = f"/lesson-frame/{token}/{page['file']}"
    return detail


@bp.route("/api/v1/content/sha256/<string:digest>", methods=["GET", "HEAD"])
@bp.auth_required(session_auth)
@bp.doc(
    summary="A lesson file's bytes by sha256 (strong ETag, immutable, Range/206, If-None-Match/304)",
    responses={200: {"description": "the file", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
               206: {"description": "part of the file"}, 304: {"description": "not modified"}, 404: {"description": "no such file"},
               416: {"description": "unsatisfiable or malformed Range"}},
)
def content(digest: str) -> Response:
    if not _SHA.match(digest):
        problem(404, "no-such-content", "content URLs end in a lowercase sha256 hex digest")
    media_type = service.blob_media_type(db(), digest)
    if media_type is None:
        problem(404, "no-such-content", "no installed lesson has this file")
    return send_blob(blob_path(current_hub().config.hub.data_dir, digest), digest, media_type)


@bp.route("/lesson-frame/<string:token>/<path:path>", methods=["GET", "HEAD"])
@bp.doc(hide=True)
def frame_file(token: str, path: str) -> Response:
    hub = current_hub()
    lesson = frames.check_token(hub.hub_secret, token)
    if lesson is None:
        problem(403, "bad-frame-token", "this lesson link has expired; reopen the lesson")
    found = service.lesson_file(db(), lesson, path)
    if found is None:
        problem(404, "no-such-content", f"the lesson has no file {path}")
    sha, media_type = found
    # Everything served here is sandboxed: scripts run, but in an opaque origin.
    return send_blob(blob_path(hub.config.hub.data_dir, sha), sha, media_type, {"Content-Security-Policy": frames.FRAME_CSP})


# -- schedule and prefetch ---------------------------------------------------------------


class DayQuery(StrictIn):
    model_config = StrictIn.model_config | {"strict": False}
    day: dt.date | None = None


class ScheduleEntry(Out):
    period: int
    lesson: int
    lesson_id: str
    version: int
    title: str
    subject: str


class ScheduleOut(Out):
    day: str
    periods: list[ScheduleEntry]


class PeriodIn(StrictIn):
    lesson: int | None = Field(description="Installed lesson (numeric id) for this period; null clears it.")


def _day(query: DayQuery) -> str:
    return query.day.isoformat() if query.day else school_day(current_hub().config.hub.timezone)


@bp.get("/api/v1/classes/<int:class_id>/schedule")
@bp.auth_required(session_auth)
@bp.input(DayQuery, location="query", arg_name="query")
@bp.output(ScheduleOut)
@bp.doc(summary="The class's lessons per period on a day (default today)", responses=[404])
def get_schedule(class_id: int, query: DayQuery) -> dict[str, object]:
    _member(class_id)
    day = _day(query)
    return {"day": day, "periods": service.schedule(db(), class_id, day)}


@bp.put("/api/v1/classes/<int:class_id>/schedule/<string:day>/<int:period>")
@bp.auth_required(session_auth, roles=[TEACHER, ADMIN])
@bp.input(PeriodIn, arg_name="body")
@bp.output(ScheduleOut)
@bp.doc(summary="Assign a lesson to a period (idempotent)", responses=[404, 422])
def put_period(class_id: int, day: str, period: int, body: PeriodIn) -> dict[str, object]:
    _member(class_id)
    try:
        day = dt.date.fromisoformat(day).isoformat()
    except ValueError:
        problem(422, "bad-day", "the day must be YYYY-MM-DD")
    if not 1 <= period <= 16:
        problem(422, "bad-period", "periods are numbered 1 to 16")
    if body.lesson is not None and service.lesson_detail(db(), body.lesson) is None:
        problem(404, "no-such-lesson", f"no lesson {body.lesson} is installed")
    service.set_period(db(), class_id, day, period, body.lesson, current_principal().user_id)
    return {"day": day, "periods": service.schedule(db(), class_id, day)}


class PrefetchFile(Out):
    url: str
    sha256: str
    size: int
    media_type: str


class PrefetchOut(Out):
    day: str
    lessons: list[int]
    files: list[PrefetchFile]
    total_bytes: int


@bp.get("/api/v1/me/prefetch")
@bp.auth_required(session_auth, roles=[STUDENT])
@bp.input(DayQuery, location="query", arg_name="query")
@bp.output(PrefetchOut)
@bp.doc(summary="Files a tablet should fetch and keep for the day (its class's scheduled lessons and the one on screen)")
def my_prefetch(query: DayQuery) -> dict[str, object]:
    return service.prefetch(db(), current_principal().class_ids[0], _day(query))


# -- the page the class follows ----------------------------------------------------------


class PushIn(StrictIn):
    lesson: int = Field(ge=1)
    page: int = Field(ge=1, le=10_000)


class CurrentPageOut(Out):
    lesson: int | None = None
    lesson_id: str | None = None
    version: int | None = None
    page: int | None = None
    at: float | None = None


@bp.post("/api/v1/classes/<int:class_id>/page")
@bp.auth_required(session_auth, roles=[TEACHER, ADMIN])
@bp.input(PushIn, arg_name="body")
@bp.output(CurrentPageOut)
@bp.doc(summary="Show this page on every tablet of the class (live event lesson.page on class:<id>)", responses=[404, 422])
def push_page(class_id: int, body: PushIn) -> dict[str, object]:
    _member(class_id)
    detail = _lesson_or_404(body.lesson)
    if body.page > len(detail["pages"]):  # type: ignore[arg-type]
        problem(422, "no-such-page", f"the lesson has {len(detail['pages'])} pages")  # type: ignore[arg-type]
    hub = current_hub()
    return service.push_page(hub.db, hub.bus, class_id, body.lesson, body.page, current_principal().user_id)


@bp.get("/api/v1/classes/<int:class_id>/page")
@bp.auth_required(session_auth)
@bp.output(CurrentPageOut)
@bp.doc(summary="The page the teacher shows now (a reconnecting tablet asks this); students' calls mark them online", responses=[404])
def get_page(class_id: int) -> dict[str, object]:
    _member(class_id)
    p = current_principal()
    if p.role == STUDENT and p.student_id is not None:
        with transaction(db()):
            service.mark_present(db(), p.student_id, class_id)
    return service.current_page(db(), class_id) or {}


class OnlineStudent(Out):
    student_id: int
    number: str
    name: str
    online: bool
    seen_at: float | None


class OnlineOut(Out):
    online: int
    total: int
    students: list[OnlineStudent]


@bp.get("/api/v1/classes/<int:class_id>/online")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(OnlineOut)
@bp.doc(summary="Which students' lesson view checked in within the last 45 s", responses=[404])
def who_is_online(class_id: int) -> dict[str, object]:
    _member(class_id)
    rows = service.online(db(), class_id)
    return {"online": sum(1 for r in rows if r["online"]), "total": len(rows), "students": rows}
