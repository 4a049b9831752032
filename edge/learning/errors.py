"""Errors of the learning capability, each with the HTTP status and problem slug it maps to."""

from __future__ import annotations


class LearningError(Exception):
    status = 422
    slug = "learning-error"


class UnknownItem(LearningError):
    slug = "unknown-item"


class UnknownKnowledgePoint(LearningError):
    slug = "unknown-knowledge-point"


class UnknownStudent(LearningError):
    status = 404
    slug = "no-such-student"


class GraphCycle(LearningError):
    slug = "prerequisite-cycle"

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("the prerequisites form a cycle: " + " -> ".join(cycle))


class ModelRejected(LearningError):
    slug = "model-rejected"
