"""The knowledge graph: imported from packages, edited by teachers, never cyclic."""

from __future__ import annotations

import pytest

from edge.learning import graph
from edge.learning.errors import GraphCycle, UnknownKnowledgePoint
from edge.storage.db import Database, transaction
from tests.hub.support import HubEnv, assert_problem

from .conftest import teacher


def test_order_puts_prerequisites_first(ldb: Database) -> None:
    g = graph.load(ldb)
    pos = {k: i for i, k in enumerate(g.order)}
    for p in g.points.values():
        for req in p.prerequisites:
            assert pos[req] < pos[p.id]


def test_an_import_closing_a_cycle_is_refused_whole(lhub: HubEnv, ldb: Database) -> None:
    before = lhub.snapshot()
    # m.count -> m.add already; making counting need subtraction closes count -> add -> sub -> count.
    points = [graph.KnowledgePoint("m.new", "新", "math", None), graph.KnowledgePoint("m.count", "数数", "math", 10, ("m.sub",))]
    with pytest.raises(GraphCycle) as err, transaction(ldb):
        graph.import_points(ldb, points, "package")
    assert err.value.cycle[0] == err.value.cycle[-1]
    assert set(err.value.cycle) == {"m.count", "m.add", "m.sub"}
    assert lhub.snapshot() == before  # m.new was not written either


def test_a_point_needing_itself_is_a_cycle(ldb: Database) -> None:
    with pytest.raises(GraphCycle), transaction(ldb):
        graph.import_points(ldb, [graph.KnowledgePoint("x", "x", "", None, ("x",))], "teacher")


def test_an_import_may_name_a_prerequisite_defined_further_down(ldb: Database) -> None:
    points = [graph.KnowledgePoint("late.b", "b", "", None, ("late.a",)), graph.KnowledgePoint("late.a", "a", "", None)]
    with transaction(ldb):
        graph.import_points(ldb, points, "package")
    assert graph.load(ldb).requires("late.b") == ("late.a",)


def test_an_unknown_prerequisite_is_refused(ldb: Database) -> None:
    with pytest.raises(UnknownKnowledgePoint, match="nowhere"), transaction(ldb):
        graph.import_points(ldb, [graph.KnowledgePoint("x", "x", "", None, ("nowhere",))], "teacher")


def test_a_teacher_edits_the_graph_and_a_cycle_is_a_clear_422(lhub: HubEnv) -> None:
    c = lhub.client()
    r = c.put("/api/v1/learning/graph", headers=teacher(lhub), json={"knowledge_points": [{"id": "m.div", "name": "除法", "prerequisites": ["m.mul"]}]})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["order"].index("m.mul") < r.get_json()["order"].index("m.div")
    before = lhub.snapshot()
    r = c.put("/api/v1/learning/graph", headers=teacher(lhub), json={"knowledge_points": [{"id": "m.add", "name": "加法", "prerequisites": ["m.div"]}]})
    body = assert_problem(r, 422, "prerequisite-cycle")
    assert "m.add" in body["cycle"] and "cycle" in body["detail"]
    assert lhub.snapshot() == before


def test_graph_input_is_validated(lhub: HubEnv) -> None:
    c = lhub.client()
    for bad in (
        {"knowledge_points": []},
        {"knowledge_points": [{"id": "", "name": "x"}]},
        {"knowledge_points": [{"id": "a", "name": "x", "model_skill": -1}]},
        {"knowledge_points": [{"id": "a", "name": "x", "extra": 1}]},
        {"knowledge_points": [{"id": "a", "name": "x"}, {"id": "a", "name": "y"}]},
    ):
        r = c.put("/api/v1/learning/graph", headers=teacher(lhub), json=bad)
        assert_problem(r, 422)
