"""Fixtures for learning tests: the real app on a seeded copy of the demo classroom,
a small knowledge graph and an item catalogue of our own (the quiz bank is another
capability; these items go through the same ``register_items`` it calls)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from edge.learning import graph
from edge.learning.service import Item, register_items
from edge.storage.db import Database, connect, transaction
from tests.hub.support import HubEnv, bearer, hub, module_hub, server_factory, template  # noqa: F401

# counting -> addition -> (subtraction, multiplication); shapes has no network skill (BKT).
POINTS = [
    graph.KnowledgePoint("m.count", "数数", "math", 10),
    graph.KnowledgePoint("m.add", "加法", "math", 11, ("m.count",)),
    graph.KnowledgePoint("m.sub", "减法", "math", 12, ("m.add",)),
    graph.KnowledgePoint("m.mul", "乘法", "math", 13, ("m.add",)),
    graph.KnowledgePoint("m.shape", "图形", "math", None),
]
TIERS = ("basic", "basic", "advanced", "advanced", "extension", "extension")


def catalogue() -> list[Item]:
    items = []
    for p in POINTS:
        for i, tier in enumerate(TIERS):
            items.append(Item(f"{p.id}-{i}", (p.id,), round(0.1 + 0.15 * i, 2), tier))
    return items


def seed(db: Database) -> None:
    with transaction(db):
        graph.import_points(db, POINTS, "package")
        register_items(db, catalogue(), source="package", create_missing=False)


@pytest.fixture
def lhub(hub: HubEnv) -> Iterator[HubEnv]:  # noqa: F811
    db = connect(hub.config.db_path)
    try:
        seed(db)
    finally:
        db.conn.close()
    yield hub


@pytest.fixture
def ldb(lhub: HubEnv) -> Iterator[Database]:
    db = connect(lhub.config.db_path)
    try:
        yield db
    finally:
        db.conn.close()


def students(env: HubEnv, class_id: int | None = None) -> list[int]:
    return [r[0] for r in env.sql("SELECT id FROM students WHERE class_id = ? ORDER BY id", (class_id or env.class_id,))]


def teacher(env: HubEnv) -> dict[str, Any]:
    return bearer(env.staff_token("teacher"))
