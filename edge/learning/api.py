"""HTTP API of personalised learning: the graph, the item catalogue, the class
mastery map, recommendations pushed to tablets, the student's own progress and
the active model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NoReturn

from apiflask import APIBlueprint
from flask import Response
from pydantic import Field

from edge.auth.guard import ADMIN, STAFF, STUDENT, current_principal, session_auth
from edge.context import current_hub, db
from edge.errors import problem
from edge.learning import graph as graph_mod
from edge.learning import pending, registry
from edge.learning.errors import LearningError
from edge.learning.recommend import recommend
from edge.learning.service import Item, class_students, register_items, snapshot_class
from edge.learning.views import class_policy, heatmap, student_progress
from edge.schemas import Out, StrictIn
from edge.storage import write_lock
from edge.storage.db import Database, transaction

bp = APIBlueprint("learning", __name__, tag="Learning")  # routes spell /api/v1: the page lives at /learning

EXERCISES_EVENT = "learning.exercises"
_PAGE = Path(__file__).resolve().parent / "page.html"
_ID = r"^[^\s\x00-\x1f][^\x00-\x1f]{0,127}$"


def _raise(err: LearningError) -> NoReturn:
    extra: dict[str, Any] = {"cycle": err.cycle} if hasattr(err, "cycle") else {}
    problem(err.status, err.slug, str(err), **extra)


def _mastery_db() -> Database:
    """This request's database with every acknowledged answer's mastery update applied.

    The answer writer applies them just after the answers' commit; a read that comes
    sooner (or after a restart) applies what is still queued, so it sees every answer
    acknowledged before it.
    """
    database = db()
    pending.catch_up(database, write_lock.lock_path(current_hub().config.run_dir))
    return database


def _own_class(class_id: int) -> None:
    if class_id not in current_principal().class_ids:
        problem(404, "no-such-class", f"no class with id {class_id} among yours")


# -- knowledge graph ----------------------------------------------------------------------


class PointIn(StrictIn):
    id: str = Field(pattern=_ID, description="Stable id, e.g. 'math.g3.fraction.add'")
    name: str = Field(min_length=1, max_length=128)
    subject: str = Field(default="", max_length=64)
    model_skill: int | None = Field(default=None, ge=0, le=9999, description="Skill of the knowledge-tracing model; none: tracked by BKT")
    prerequisites: list[str] = Field(default_factory=list, max_length=32)


class GraphIn(StrictIn):
    knowledge_points: list[PointIn] = Field(min_length=1, max_length=5000)


class GraphOut(Out):
    knowledge_points: list[dict[str, Any]]
    order: list[str]


def _graph_out() -> dict[str, Any]:
    g = graph_mod.load(db())
    return {
        "knowledge_points": [
            {"id": p.id, "name": p.name, "subject": p.subject, "model_skill": p.model_skill, "prerequisites": list(p.prerequisites)} for p in g.points.values()
        ],
        "order": g.order,
    }


@bp.get("/api/v1/learning/graph")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(GraphOut)
@bp.doc(summary="The knowledge graph (points, prerequisites, an order with prerequisites first)")
def get_graph() -> dict[str, Any]:
    return _graph_out()


@bp.put("/api/v1/learning/graph")
@bp.auth_required(session_auth, roles=STAFF)
@bp.input(GraphIn, arg_name="body")
@bp.output(GraphOut)
@bp.doc(
    summary="Add or edit knowledge points (merged; a point given replaces its prerequisites)",
    responses={422: "Unknown prerequisite or a prerequisite cycle (the cycle is named); nothing changed"},
)
def put_graph(body: GraphIn) -> dict[str, Any]:
    points = [graph_mod.KnowledgePoint(p.id, p.name, p.subject, p.model_skill, tuple(dict.fromkeys(p.prerequisites))) for p in body.knowledge_points]
    database = db()
    try:
        with transaction(database):
            graph_mod.import_points(database, points, "teacher")
    except LearningError as err:
        _raise(err)
    return _graph_out()


# -- item catalogue ------------------------------------------------------------------------


class ItemIn(StrictIn):
    id: str = Field(pattern=_ID)
    knowledge_points: list[str] = Field(min_length=1, max_length=16)
    difficulty: float = Field(default=0.5, ge=0, le=1, description="0 easy .. 1 hard; 0.5 typical for its points")
    tier: str = Field(default="basic", pattern=r"^(basic|advanced|extension|基础|提高|拓展)$")


class ItemsIn(StrictIn):
    items: list[ItemIn] = Field(min_length=1, max_length=2000)


class CountOut(Out):
    count: int


@bp.post("/api/v1/learning/items")
@bp.auth_required(session_auth, roles=STAFF)
@bp.input(ItemsIn, arg_name="body")
@bp.output(CountOut)
@bp.doc(summary="Register exercises the recommender may choose (knowledge points must exist)", responses={422: "Unknown knowledge point"})
def post_items(body: ItemsIn) -> dict[str, Any]:
    database = db()
    try:
        with transaction(database):
            items = [Item(i.id, tuple(i.knowledge_points), i.difficulty, i.tier) for i in body.items]
            n = register_items(database, items, source="package", create_missing=False)
    except LearningError as err:
        _raise(err)
    return {"count": n}


# -- class views -----------------------------------------------------------------------------


class HeatmapOut(Out):
    knowledge_points: list[dict[str, Any]]
    students: list[dict[str, Any]]
    mastery: list[list[float | None]]
    at_risk: list[dict[str, Any]]
    hardest_items: list[dict[str, Any]]
    band: dict[str, float]


@bp.get("/api/v1/classes/<int:class_id>/learning/heatmap")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(HeatmapOut)
@bp.doc(summary="Class mastery map (knowledge point x student), students at risk, the hardest items")
def get_heatmap(class_id: int) -> dict[str, Any]:
    _own_class(class_id)
    return heatmap(_mastery_db(), class_id)


class SettingsIn(StrictIn):
    band_low: float = Field(gt=0, lt=1)
    band_high: float = Field(gt=0, lt=1)


class SettingsOut(Out):
    band_low: float
    band_high: float


@bp.put("/api/v1/classes/<int:class_id>/learning/settings")
@bp.auth_required(session_auth, roles=STAFF)
@bp.input(SettingsIn, arg_name="body")
@bp.output(SettingsOut)
@bp.doc(summary="The band of predicted success for this class's exercises (default 0.6-0.85)")
def put_settings(class_id: int, body: SettingsIn) -> dict[str, Any]:
    _own_class(class_id)
    if not body.band_low + 0.05 <= body.band_high:
        problem(422, "bad-band", "band_low must be at least 0.05 below band_high")
    database = db()
    with transaction(database):
        database.conn.execute(
            """INSERT INTO learning_class_settings (class_id, band_low, band_high, updated_at) VALUES (?, ?, ?, ?)
               ON CONFLICT(class_id) DO UPDATE SET band_low = excluded.band_low, band_high = excluded.band_high, updated_at = excluded.updated_at""",
            (class_id, body.band_low, body.band_high, time.time()),
        )
    return {"band_low": body.band_low, "band_high": body.band_high}


class RecQuery(StrictIn):
    model_config = StrictIn.model_config | {"strict": False}
    n: int = Field(default=5, ge=1, le=30)


class ClassRecsOut(Out):
    students: list[dict[str, Any]]


def _picks(picks: list[Any]) -> list[dict[str, Any]]:
    return [{"item_id": p.item_id, "knowledge_points": list(p.knowledge_points), "tier": p.tier, "predicted": p.predicted, "reason": p.reason} for p in picks]


@bp.get("/api/v1/classes/<int:class_id>/learning/recommendations")
@bp.auth_required(session_auth, roles=STAFF)
@bp.input(RecQuery, location="query", arg_name="query")
@bp.output(ClassRecsOut)
@bp.doc(summary="Each student's next exercises (not pushed)")
def get_class_recommendations(class_id: int, query: RecQuery) -> dict[str, Any]:
    _own_class(class_id)
    database = _mastery_db()
    students = class_students(database, class_id)
    recs = recommend(database, students, query.n, class_policy(database, class_id))
    return {"students": [{"student_id": s, "exercises": _picks(recs[s])} for s in students]}


class AssignIn(StrictIn):
    n: int = Field(default=5, ge=1, le=30)


class AssignOut(Out):
    students: int
    exercises: int
    snapshots: int


@bp.post("/api/v1/classes/<int:class_id>/learning/assign")
@bp.auth_required(session_auth, roles=STAFF)
@bp.input(AssignIn, arg_name="body")
@bp.output(AssignOut, status_code=201)
@bp.doc(summary="Push each student's next exercises to their tablet and send a mastery snapshot to the district")
def assign(class_id: int, body: AssignIn) -> tuple[dict[str, Any], int]:
    _own_class(class_id)
    hub = current_hub()
    database = _mastery_db()
    policy = class_policy(database, class_id)
    students = class_students(database, class_id)
    recs = recommend(database, students, body.n, policy)
    with transaction(database):
        for s in students:
            hub.bus.emit(database, f"student:{s}", EXERCISES_EVENT, {"exercises": _picks(recs[s])})
        snaps = snapshot_class(database, class_id, policy.mastered)
    hub.bus.wake()
    return {"students": len(students), "exercises": sum(len(v) for v in recs.values()), "snapshots": snaps}, 201


# -- the student's own view ------------------------------------------------------------------


class MyLearningOut(Out):
    knowledge_points: list[dict[str, Any]]
    exercises: list[dict[str, Any]]
    mastered: int
    total: int


@bp.get("/api/v1/me/learning")
@bp.auth_required(session_auth, roles=[STUDENT])
@bp.output(MyLearningOut)
@bp.doc(summary="My mastery per knowledge point and my next exercises")
def my_learning() -> dict[str, Any]:
    p = current_principal()
    database = _mastery_db()
    assert p.student_id is not None
    class_id = database.execute("SELECT class_id FROM students WHERE id = ?", (p.student_id,)).fetchone()[0]
    policy = class_policy(database, class_id)
    progress = student_progress(database, p.student_id, policy)
    recs = recommend(database, [p.student_id], 5, policy)[p.student_id]
    return {**progress, "exercises": _picks(recs)}


# -- the model ---------------------------------------------------------------------------------


class ModelOut(Out):
    version: str
    sha256: str
    num_skills: int
    evaluation: dict[str, Any]
    bkt_fallback: dict[str, Any]
    bundled: bool


@bp.get("/api/v1/learning/model")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(ModelOut)
@bp.doc(summary="The active knowledge-tracing model, its version and evaluation figures")
def get_model() -> dict[str, Any]:
    return registry.describe(db())


class InstallOut(Out):
    results: list[dict[str, Any]]
    active: str


@bp.post("/api/v1/learning/model/install")
@bp.auth_required(session_auth, roles=[ADMIN])
@bp.output(InstallOut)
@bp.doc(summary="Verify and activate models the district delivered to the inbox (refused files keep the old model)")
def install_models() -> dict[str, Any]:
    hub = current_hub()
    database = db()
    results = registry.install_from_inbox(database, hub.config.hub.data_dir)
    return {"results": [{"inbox_id": i, "outcome": o} for i, o in results], "active": registry.active_model(database).version}


# -- the page --------------------------------------------------------------------------------


@bp.get("/learning")
@bp.doc(hide=True)
def learning_page() -> Response:
    """The class mastery map (staff) / my progress (student): a public shell, the data comes from the API."""
    from edge.web import static_prefix

    resp = Response(_PAGE.read_text(encoding="utf-8").replace("{{static}}", static_prefix()), mimetype="text/html")
    resp.charset = "utf-8"
    resp.headers["Cache-Control"] = "no-cache"
    return resp
