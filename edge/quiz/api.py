"""HTTP API of in-class quizzes (``/api/v1/quiz/...``).

Staff (teachers of the class, admins) manage the bank, run sessions, see the live
view and reports. Students answer and read their own results; nothing here sends a
student an answer key or explanation of a question that has not closed for them.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal, NoReturn

from apiflask import APIBlueprint
from flask import Response, request, send_file
from pydantic import Field

from edge.auth.guard import ADMIN, STAFF, STUDENT, current_principal, session_auth
from edge.context import current_hub, db
from edge.errors import problem
from edge.quiz import bank, classroom, photos, reports, sessions, views
from edge.quiz.importers import FORMATS, ImportFormatError
from edge.quiz.importing import guess_format, import_file
from edge.quiz.items import TYPES, ItemError, ItemSpec
from edge.quiz.writer import writer_for
from edge.schemas import Out, StrictIn
from edge.storage.db import transaction

log = logging.getLogger(__name__)
bp = APIBlueprint("quiz", __name__, url_prefix="/api/v1", tag="Quizzes")

#: Ids are SQLite integers; anything larger names nothing (and must not reach SQLite).
ID_MAX = 2**53 - 1
Id = Annotated[int, Field(ge=1, le=ID_MAX)]


@bp.before_app_request
def _start_writer() -> None:
    # The answer writer (and the modules grading loads) is ready in every worker before
    # the first burst of answers, not started by it.
    writer_for(current_hub()).start()


@bp.before_request
def _ids_in_range() -> None:
    for value in (request.view_args or {}).values():
        if isinstance(value, int) and not 0 < value <= ID_MAX:
            problem(404, "not-found", "there is nothing at this address")


def _fail(err: sessions.QuizError) -> NoReturn:
    problem(err.status, err.slug, str(err))


def _facts() -> sessions.HubFacts:
    h = current_hub()
    return sessions.HubFacts(h.hub_id, h.config.hub.timezone)


def _staff_class(class_id: int) -> None:
    p = current_principal()
    known = class_id in p.class_ids if p.role != ADMIN else db().execute("SELECT 1 FROM classes WHERE id = ?", (class_id,)).fetchone()
    if not known:
        problem(404, "no-such-class", "no such class")


def _staff_session(session_id: int) -> dict[str, Any]:
    s = sessions.session_row(db(), session_id)
    if s is None:
        problem(404, "no-such-session", "no such quiz session")
    _staff_class(s["class_id"])
    return s


def _student() -> tuple[int, int]:
    p = current_principal()
    assert p.student_id is not None
    return p.student_id, p.class_ids[0]


# -- the bank -------------------------------------------------------------------------------


class ItemIn(StrictIn):
    type: Literal["single", "multiple", "truefalse", "fill", "numeric", "short"]
    stem: str = Field(min_length=1, max_length=4000)
    options: list[str] = Field(default_factory=list, max_length=10)
    key: dict[str, Any] = Field(description="The answer key; its shape depends on the type (see the README).")
    explanation: str = Field("", max_length=4000, description="解析, shown to students after the question closes.")
    difficulty: int | None = Field(None, ge=1, le=5)
    knowledge_points: list[str] = Field(default_factory=list, max_length=20)
    points: float = Field(1.0, gt=0, le=100, allow_inf_nan=False)
    allow_photo: bool = False


class ItemOut(Out):
    id: int
    created: bool


class ItemsOut(Out):
    items: list[dict[str, Any]]


@bp.post("/quiz/items")
@bp.auth_required(session_auth, roles=STAFF)
@bp.input(ItemIn, arg_name="body")
@bp.output(ItemOut, status_code=201)
@bp.doc(summary="Add a question to the bank", description=f"Types: {', '.join(TYPES)}.", responses={422: "Not a valid question"})
def add_item(body: ItemIn) -> tuple[dict[str, Any], int]:
    spec = ItemSpec(body.type, body.stem, body.key, body.options, body.explanation, body.difficulty, body.knowledge_points, body.points, body.allow_photo)
    try:
        with transaction(db()):
            item_id, created = bank.add_item(db(), spec, "manual", current_principal().user_id)
    except ItemError as exc:
        problem(422, "bad-question", str(exc))
    return {"id": item_id, "created": created}, 201


@bp.get("/quiz/items")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(ItemsOut)
@bp.doc(summary="The question bank (with keys: staff only)")
def list_items() -> dict[str, Any]:
    kp = request.args.get("knowledge_point")
    return {"items": [i.staff_dict() for i in bank.list_items(db(), kp)]}


class ImportOut(Out):
    format: str
    quiz_id: int | None
    imported: int
    duplicates: int
    refused: int
    rows: list[dict[str, Any]]


@bp.post("/quiz/imports")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(ImportOut, status_code=201)
@bp.doc(
    summary="Import a question-bank file (GIFT, Aiken, QTI 2.1 xml/zip, xlsx, csv) as a quiz",
    description="Body: the file itself. Query: format (gift, aiken, qti, xlsx, csv; guessed from filename= when absent), "
                "title. The answer lists every question of the file as imported, duplicate (already in the bank) or refused "
                "with the reason. A file that cannot be read at all stores nothing (422).",
    responses={413: "File too large", 422: "Unreadable file or unknown format"},
)
def import_questions() -> tuple[dict[str, Any], int]:
    cfg = current_hub().config.quiz
    request.max_content_length = cfg.import_max_bytes
    fmt = request.args.get("format") or guess_format(request.args.get("filename", "")) or ""
    if fmt not in FORMATS:
        problem(422, "unknown-format", f"say which format the file is: format= one of {', '.join(FORMATS)}")
    raw = request.get_data(cache=False)
    title = (request.args.get("title") or request.args.get("filename") or "导入的练习")[:200]
    try:
        report = import_file(db(), raw, fmt, title, current_principal().user_id, source=request.args.get("filename", "")[:100])
    except ImportFormatError as exc:
        problem(422, "unreadable-file", str(exc))
    return report.as_dict(), 201


class QuizzesOut(Out):
    quizzes: list[dict[str, Any]]


@bp.get("/quizzes")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(QuizzesOut)
@bp.doc(summary="Quizzes in the bank")
def list_quizzes() -> dict[str, Any]:
    return {"quizzes": bank.list_quizzes(db())}


# -- sessions -------------------------------------------------------------------------------


class SessionIn(StrictIn):
    class_id: int = Field(ge=1, le=ID_MAX)
    kind: Literal["quiz", "question", "exit_ticket"] = "quiz"
    quiz_id: int | None = Field(None, ge=1, le=ID_MAX, description="Run this quiz; or give item_ids.")
    item_ids: list[Id] = Field(default_factory=list, max_length=200, description="Push these questions (one for a single question).")
    title: str = Field("", max_length=200)
    allow_change: bool = Field(True, description="Students may change an answer until they submit or the question closes.")
    grace_s: float | None = Field(None, ge=0, le=86400, allow_inf_nan=False,
                                  description="Offline answers made before the close are accepted this long after it.")
    time_limit_s: float | None = Field(None, gt=0, le=86400, allow_inf_nan=False)


class SessionOut(Out):
    id: int


@bp.post("/quiz/sessions")
@bp.auth_required(session_auth, roles=STAFF)
@bp.input(SessionIn, arg_name="body")
@bp.output(SessionOut, status_code=201)
@bp.doc(summary="Start a quiz, push a question, or open an exit ticket for a class",
        responses={404: "No such class, quiz or question", 422: "Nothing to ask"})
def start_session(body: SessionIn) -> tuple[dict[str, Any], int]:
    _staff_class(body.class_id)
    database, hub = db(), current_hub()
    item_ids = list(body.item_ids)
    title = body.title
    if body.quiz_id is not None:
        if item_ids:
            problem(422, "quiz-or-items", "give quiz_id or item_ids, not both")
        item_ids = bank.quiz_item_ids(database, body.quiz_id)
        if not item_ids:
            problem(404, "no-such-quiz", "no such quiz (or it has no questions)")
        title = title or next((q["title"] for q in bank.list_quizzes(database) if q["id"] == body.quiz_id), "")
    grace = hub.config.quiz.default_grace_s if body.grace_s is None else body.grace_s
    try:
        sid = sessions.start_session(database, hub.bus, class_id=body.class_id, user_id=current_principal().user_id, kind=body.kind,
                                     item_ids=item_ids, quiz_id=body.quiz_id, title=title or "随堂练习", allow_change=body.allow_change,
                                     grace_s=grace, time_limit_s=body.time_limit_s)
    except sessions.QuizError as err:
        _fail(err)
    hub.bus.wake()
    return {"id": sid}, 201


class SessionsOut(Out):
    sessions: list[dict[str, Any]]


@bp.get("/quiz/sessions")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(SessionsOut)
@bp.doc(summary="Sessions of a class (class_id=), newest first", responses={404: "No such class", 422: "class_id missing"})
def list_sessions() -> dict[str, Any]:
    try:
        class_id = int(request.args.get("class_id", ""))
    except ValueError:
        problem(422, "class-id-required", "class_id= is required")
    if not 0 < class_id <= ID_MAX:
        problem(404, "no-such-class", "no such class")
    _staff_class(class_id)
    rows = db().execute("SELECT id, title, kind, started_at, closed_at FROM quiz_sessions WHERE class_id = ? ORDER BY id DESC LIMIT 200",
                        (class_id,)).fetchall()
    return {"sessions": [dict(zip(("id", "title", "kind", "started_at", "closed_at"), r, strict=True)) for r in rows]}


class AnyOut(Out):
    model_config = {"extra": "allow"}


@bp.get("/quiz/sessions/<int:session_id>/live")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(AnyOut)
@bp.doc(summary="The live view: answered count, distribution, correctness grid, most-missed question",
        description="projector=1 leaves out every student name, number and id (for the classroom screen).", responses={404: "No such session"})
def live(session_id: int) -> dict[str, Any]:
    _staff_session(session_id)
    view = views.live_view(db(), session_id, projector=request.args.get("projector") in ("1", "true"))
    assert view is not None
    return view


class CloseIn(StrictIn):
    item_id: int | None = Field(None, ge=1, le=ID_MAX, description="Close only this question; the whole session when absent.")


class ClosedOut(Out):
    closed: list[int]


@bp.post("/quiz/sessions/<int:session_id>/close")
@bp.auth_required(session_auth, roles=STAFF)
@bp.input(CloseIn, arg_name="body")
@bp.output(ClosedOut)
@bp.doc(summary="Close a question or the whole session; students can then see keys and explanations", responses={404: "No such session or question"})
def close_session(session_id: int, body: CloseIn) -> dict[str, Any]:
    _staff_session(session_id)
    try:
        closed = sessions.close(db(), current_hub().bus, session_id, body.item_id)
    except sessions.QuizError as err:
        _fail(err)
    current_hub().bus.wake()
    return {"closed": closed}


class MarkIn(StrictIn):
    score: float = Field(ge=0, le=100, allow_inf_nan=False)


@bp.post("/quiz/answers/<int:answer_id>/mark")
@bp.auth_required(session_auth, roles=STAFF)
@bp.input(MarkIn, arg_name="body")
@bp.output(AnyOut)
@bp.doc(summary="Mark an answer (short answers; or override a grade)", responses={404: "No such answer", 422: "Score out of range"})
def mark(answer_id: int, body: MarkIn) -> dict[str, Any]:
    p = current_principal()
    try:
        out = sessions.mark_answer(db(), current_hub().bus, _facts(), answer_id, body.score, p.user_id or 0, None if p.role == ADMIN else p.class_ids)
    except sessions.QuizError as err:
        _fail(err)
    current_hub().bus.wake()
    return out


# -- students ---------------------------------------------------------------------------------


class AnswerIn(StrictIn):
    client_id: str = Field(pattern=r"^[0-9a-fA-F-]{32,36}$", description="A UUID the tablet generated for this answer; a retry sends the same one.")
    session_id: int = Field(ge=1, le=ID_MAX)
    item_id: int = Field(ge=1, le=ID_MAX)
    student_id: int = Field(ge=1, le=ID_MAX, description="Whose answer this is (a queued answer of a signed-out student is refused, not misfiled).")
    response: dict[str, Any] = Field(description="choices / value / blanks / number / text / photo_id, per question type.")
    final: bool = Field(False, description="Submitted: no more changes.")
    answered_at: float = Field(ge=0, le=1e11, allow_inf_nan=False, description="When the student answered, tablet clock (Unix seconds).")
    sent_at: float | None = Field(None, ge=0, le=1e11, allow_inf_nan=False,
                                  description="When this copy was sent, tablet clock; lets the hub correct a wrong tablet clock.")


class AckOut(Out):
    client_id: str
    session_id: int
    item_id: int
    status: str = Field(description="accepted, or superseded (an older change that arrived after a newer one).")
    received_at: float


@bp.post("/quiz/answers")
@bp.auth_required(session_auth, roles=[STUDENT])
@bp.input(AnswerIn, arg_name="body")
@bp.output(AckOut, status_code=201)
@bp.doc(summary="Answer a question (idempotent by client_id)",
        description="201 when recorded, 200 with the same acknowledgement for a retry. The acknowledgement never says "
                    "whether the answer is right.",
        responses={200: "A retry of an answer already recorded", 404: "No such open question for this class",
                   409: "Closed question, already submitted, another student's answer, or a reused id with other content",
                   422: "Not a valid answer for this question", 503: "Busy: send it again"})
def answer(body: AnswerIn) -> tuple[dict[str, Any], int]:
    # Tablets' answers usually take the fast path (edge/quiz/answer_endpoint.py), which calls
    # submit_answer too; this view answers the rest (cookies, errors of the request itself).
    sid, cid = _student()
    try:
        ack, created = submit_answer(current_hub(), db(), body, sid, cid)
    except sessions.QuizError as err:
        _fail(err)
    return ack, 201 if created else 200


def submit_answer(hub: Any, database: Any, body: AnswerIn, student_id: int, class_id: int) -> tuple[dict[str, Any], bool]:
    """Store a validated answer of the signed-in student; (ack, created) once it is durable. Raises QuizError."""
    a = sessions.AnswerIn(body.client_id.lower(), body.session_id, body.item_id, body.student_id, body.response, body.final,
                          body.answered_at, body.sent_at)
    # Group commit: one transaction and one fsync for every answer arriving together (edge/quiz/writer.py).
    return writer_for(hub).submit(a, student_id, class_id, db=database)


class CurrentOut(Out):
    sessions: list[dict[str, Any]]


@bp.get("/quiz/current")
@bp.auth_required(session_auth, roles=[STUDENT])
@bp.output(CurrentOut)
@bp.doc(summary="Open quiz sessions of my class: questions without keys, and my answers")
def current() -> dict[str, Any]:
    sid, cid = _student()
    sessions = views.student_current(db(), cid, sid)
    if sessions:
        writer_for(current_hub()).warm_learning()  # answers are about to come: load the mastery model now
    return {"sessions": sessions}


@bp.get("/quiz/sessions/<int:session_id>/mine")
@bp.auth_required(session_auth, roles=[STUDENT])
@bp.output(AnyOut)
@bp.doc(summary="My results in a session: keys, explanations and grades of closed questions only", responses={404: "No such session for my class"})
def mine(session_id: int) -> dict[str, Any]:
    sid, cid = _student()
    out = views.student_results(db(), session_id, cid, sid)
    if out is None:
        problem(404, "no-such-session", "no such quiz session")
    return out


class PhotoOut(Out):
    photo_id: str
    mime: str
    width: int
    height: int
    bytes: int


@bp.post("/quiz/photos")
@bp.auth_required(session_auth, roles=[STUDENT])
@bp.output(PhotoOut, status_code=201)
@bp.doc(summary="Upload a photo answer (JPEG, PNG or WebP body); then answer with its photo_id",
        responses={413: "Too large", 415: "Not an image", 422: "Empty body"})
def upload_photo() -> tuple[dict[str, Any], int]:
    sid, _ = _student()
    cfg = current_hub().config
    request.max_content_length = cfg.quiz.photo_max_bytes
    if request.mimetype not in ("image/jpeg", "image/png", "image/webp", "application/octet-stream"):
        problem(415, "not-an-image", "send the photo as the body with an image Content-Type")
    try:
        out = photos.store_photo(db(), cfg.hub.data_dir, sid, request.get_data(cache=False), cfg.quiz.photo_max_bytes, cfg.quiz.photo_max_pixels)
    except photos.PhotoError as exc:
        problem(exc.status, "bad-photo", str(exc))
    return out, 201


@bp.get("/quiz/photos/<string:photo_id>")
@bp.auth_required(session_auth, roles=[*STAFF, STUDENT])
@bp.doc(summary="A photo answer (its student, or staff of the student's class)",
        responses={200: {"description": "The image", "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
                   404: "No such photo"})
def get_photo(photo_id: str) -> Response:
    p = current_principal()
    row = db().execute("SELECT p.mime, p.student_id, s.class_id FROM quiz_photos p JOIN students s ON s.id = p.student_id WHERE p.id = ?",
                       (photo_id,)).fetchone()
    if row is None or (p.role == STUDENT and row[1] != p.student_id) or (p.role != ADMIN and p.role != STUDENT and row[2] not in p.class_ids):
        problem(404, "no-such-photo", "no such photo")
    return send_file(photos.photo_dir(current_hub().config.hub.data_dir) / photo_id, mimetype=row[0])


# -- reports, notebook -------------------------------------------------------------------------


@bp.get("/quiz/sessions/<int:session_id>/report")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(AnyOut)
@bp.doc(summary="After-class report: per question (difficulty, discrimination) and per student", responses={404: "No such session"})
def report(session_id: int) -> dict[str, Any]:
    _staff_session(session_id)
    return reports.session_report(db(), session_id)


@bp.get("/quiz/sessions/<int:session_id>/report.<string:fmt>")
@bp.auth_required(session_auth, roles=STAFF)
@bp.doc(summary="The report as CSV or XLSX", responses={200: {"description": "The file", "content": {
    "text/csv": {"schema": {"type": "string"}},
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {"schema": {"type": "string", "format": "binary"}}}},
    404: "No such session or format"})
def report_file(session_id: int, fmt: str) -> Response:
    _staff_session(session_id)
    if fmt not in ("csv", "xlsx"):
        problem(404, "no-such-format", "report.csv or report.xlsx")
    data, mime = reports.export(db(), session_id, fmt)
    resp = Response(data, mimetype=mime)
    resp.headers["Content-Disposition"] = f'attachment; filename="quiz-{session_id}.{fmt}"'
    return resp


@bp.get("/me/quiz-results")
@bp.auth_required(session_auth, roles=[STUDENT])
@bp.output(AnyOut)
@bp.doc(summary="My quiz results (closed questions only) and my wrong-answer notebook (错题本)")
def my_results() -> dict[str, Any]:
    sid, _ = _student()
    return {"sessions": reports.student_sessions(db(), sid), "notebook": reports.notebook(db(), sid)}


@bp.get("/quiz/students/<int:student_id>/notebook")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(AnyOut)
@bp.doc(summary="A student's wrong-answer notebook (staff of the student's class)", responses={404: "No such student"})
def student_notebook(student_id: int) -> dict[str, Any]:
    row = db().execute("SELECT class_id FROM students WHERE id = ?", (student_id,)).fetchone()
    if row is None:
        problem(404, "no-such-student", "no such student")
    _staff_class(row[0])
    return {"student_id": student_id, "notebook": reports.notebook(db(), student_id)}


# -- 抢答 and 随机点名 -----------------------------------------------------------------------------


class ClassIn(StrictIn):
    class_id: int = Field(ge=1, le=ID_MAX)


class PickIn(ClassIn):
    window: int = Field(10, ge=0, le=100, description="No student is picked again within this many picks.")


@bp.post("/quiz/buzz-rounds")
@bp.auth_required(session_auth, roles=STAFF)
@bp.input(ClassIn, arg_name="body")
@bp.output(AnyOut, status_code=201)
@bp.doc(summary="Open a 抢答 (buzz-in) round for the class", responses={404: "No such class"})
def open_buzz(body: ClassIn) -> tuple[dict[str, Any], int]:
    _staff_class(body.class_id)
    rid = classroom.open_buzz(db(), current_hub().bus, body.class_id)
    current_hub().bus.wake()
    return {"round_id": rid}, 201


@bp.post("/quiz/buzz-rounds/<int:round_id>/buzz")
@bp.auth_required(session_auth, roles=[STUDENT])
@bp.output(AnyOut, status_code=201)
@bp.doc(summary="Buzz in; the hub's arrival time decides the order", responses={404: "No such round", 409: "Round closed"})
def buzz(round_id: int) -> tuple[dict[str, Any], int]:
    sid, cid = _student()
    try:
        out = classroom.buzz(db(), current_hub().bus, round_id, cid, sid)
    except sessions.QuizError as err:
        _fail(err)
    current_hub().bus.wake()
    return out, 201


@bp.post("/quiz/buzz-rounds/<int:round_id>/close")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(AnyOut)
@bp.doc(summary="Close a buzz round; the order of arrival", responses={404: "No such round"})
def close_buzz(round_id: int) -> dict[str, Any]:
    row = db().execute("SELECT class_id FROM quiz_buzz_rounds WHERE id = ?", (round_id,)).fetchone()
    if row is None:
        problem(404, "no-such-round", "no such buzz round")
    _staff_class(row[0])
    order = classroom.close_buzz(db(), current_hub().bus, round_id, row[0])
    current_hub().bus.wake()
    return {"round_id": round_id, "order": order}


@bp.post("/quiz/picks")
@bp.auth_required(session_auth, roles=STAFF)
@bp.input(PickIn, arg_name="body")
@bp.output(AnyOut, status_code=201)
@bp.doc(summary="随机点名: pick a student at random, never one of the last `window` picks", responses={404: "No such class", 409: "The class has no students"})
def pick(body: PickIn) -> tuple[dict[str, Any], int]:
    _staff_class(body.class_id)
    try:
        out = classroom.random_pick(db(), current_hub().bus, body.class_id, body.window)
    except sessions.QuizError as err:
        _fail(err)
    current_hub().bus.wake()
    return out, 201
