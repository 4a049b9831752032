"""The knowledge graph: knowledge points and their prerequisites.

Points arrive in lesson packages, from the district or from a teacher's edit; an
import is merged with what is there (a point in the import replaces its own
name, mapping and prerequisite list). The merged graph must stay acyclic: an
import that would close a cycle is refused whole and names the cycle.
"""

from __future__ import annotations

import graphlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from edge.learning.errors import GraphCycle, LearningError, UnknownKnowledgePoint
from edge.storage.db import Database

SOURCES = ("package", "district", "teacher", "quiz")


@dataclass(frozen=True)
class KnowledgePoint:
    id: str
    name: str
    subject: str = ""
    model_skill: int | None = None
    prerequisites: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class Graph:
    points: dict[str, KnowledgePoint]
    order: list[str]  # prerequisites before what depends on them

    def requires(self, kp_id: str) -> tuple[str, ...]:
        return self.points[kp_id].prerequisites


def load(db: Database) -> Graph:
    prereqs: dict[str, list[str]] = {}
    for kp, req in db.execute("SELECT kp_id, requires_id FROM learning_prerequisites ORDER BY kp_id, requires_id"):
        prereqs.setdefault(kp, []).append(req)
    points = {
        row[0]: KnowledgePoint(row[0], row[1], row[2], row[3], tuple(prereqs.get(row[0], ())))
        for row in db.execute("SELECT id, name, subject, model_skill FROM learning_knowledge_points ORDER BY id")
    }
    return Graph(points, _topological({k: p.prerequisites for k, p in points.items()}))


def _topological(edges: dict[str, Iterable[str]]) -> list[str]:
    sorter = graphlib.TopologicalSorter({k: sorted(v) for k, v in edges.items()})
    try:
        return list(sorter.static_order())
    except graphlib.CycleError as err:
        cycle = [str(x) for x in err.args[1]]
        # graphlib reports the cycle against edge direction; show it as "a needs b needs ... a".
        raise GraphCycle(list(reversed(cycle))) from None


def import_points(db: Database, points: list[KnowledgePoint], source: str) -> int:
    """Merge ``points`` into the graph; the caller owns the transaction.

    Refuses (and writes nothing) when a prerequisite is unknown or the merged
    graph has a cycle. Returns the number of points written.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}")
    existing = load(db)
    merged: dict[str, tuple[str, ...]] = {k: p.prerequisites for k, p in existing.points.items()}
    ids = [p.id for p in points]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise LearningError(f"knowledge point {dup!r} appears twice in the import")
    for p in points:
        merged[p.id] = p.prerequisites
    for p in points:
        for req in p.prerequisites:
            if req not in merged:
                raise UnknownKnowledgePoint(f"knowledge point {p.id!r} requires {req!r}, which is neither known nor in the import")
            if req == p.id:
                raise GraphCycle([p.id, p.id])
    _topological(merged)
    now = time.time()
    conn = db.conn
    for p in points:
        conn.execute(
            """INSERT INTO learning_knowledge_points (id, name, subject, model_skill, source, updated_at)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT(id) DO UPDATE SET name = excluded.name, subject = excluded.subject,
                 model_skill = excluded.model_skill, source = excluded.source, updated_at = excluded.updated_at""",
            (p.id, p.name, p.subject, p.model_skill, source, now),
        )
    # Edges after every point exists: an import may name a prerequisite it defines further down.
    for p in points:
        conn.execute("DELETE FROM learning_prerequisites WHERE kp_id = ?", (p.id,))
        conn.executemany("INSERT INTO learning_prerequisites (kp_id, requires_id) VALUES (?, ?)", [(p.id, r) for r in p.prerequisites])
    return len(points)
