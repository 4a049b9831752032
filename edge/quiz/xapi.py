"""xAPI statements (IEEE 9274.1.1) for graded answers, written to the outbox.

The statement id is assigned here, by the producer, so the district's LRS can take a
statement sent twice as the same statement. The actor is the student's pseudonymous
id: the district never learns a child's name from a learning record.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from edge.quiz.items import INTERACTION_TYPES

ANSWERED = "http://adlnet.gov/expapi/verbs/answered"
INTERACTION = "http://adlnet.gov/expapi/activities/cmi.interaction"
XAPI_EVENT = "xapi.statement"
# Fixed namespace: statement ids derived from submission ids are stable across retries.
_NS = uuid.UUID("6f1f3b2e-8c1d-4d59-9a55-2d6f0c7b9e41")


def statement_id(seed: str) -> str:
    return str(uuid.uuid5(_NS, seed))


def _response_string(item_type: str, response: dict[str, Any]) -> str:
    if item_type in ("single", "multiple"):
        return "[,]".join(str(c) for c in response["choices"])
    if item_type == "truefalse":
        return "true" if response["value"] else "false"
    if item_type == "fill":
        return "[,]".join(response["blanks"])
    if item_type == "numeric":
        return repr(response["number"])
    return response.get("text", "")


def _pattern(item_type: str, key: dict[str, Any]) -> list[str]:
    if item_type in ("single", "multiple"):
        return ["[,]".join(str(c) for c in key["choices"])]
    if item_type == "truefalse":
        return ["true" if key["value"] else "false"]
    if item_type == "fill":
        return ["[,]".join(b[0] for b in key["blanks"])]
    if item_type == "numeric":
        return [f"{key['value'] - key['tolerance']}[:]{key['value'] + key['tolerance']}"]
    return []


def answered(*, statement_uuid: str, hub_id: str, pseudo_id: str, item: Any, response: dict[str, Any], correct: bool,
             score: float, registration: str, at: float, tz: str) -> dict[str, Any]:
    """The statement for one graded answer. ``item`` is a :class:`edge.quiz.bank.StoredItem`."""
    definition: dict[str, Any] = {
        "type": INTERACTION,
        "interactionType": INTERACTION_TYPES[item.type],
        "description": {"zh-CN": item.stem[:500]},
    }
    pattern = _pattern(item.type, item.key)
    if pattern:
        definition["correctResponsesPattern"] = pattern
    if item.type in ("single", "multiple"):
        definition["choices"] = [{"id": str(i), "description": {"zh-CN": o}} for i, o in enumerate(item.options)]
    points = float(item.points)
    return {
        "id": statement_uuid,
        "actor": {"objectType": "Agent", "account": {"homePage": f"urn:classroom-hub:{hub_id}", "name": pseudo_id}},
        "verb": {"id": ANSWERED, "display": {"en-US": "answered", "zh-CN": "作答"}},
        "object": {"objectType": "Activity", "id": f"urn:classroom-hub:item:{item.uid}", "definition": definition},
        "result": {
            "success": bool(correct),
            "response": _response_string(item.type, response),
            "score": {"raw": score, "min": 0.0, "max": points, "scaled": round(score / points, 4) if points else 0.0},
        },
        "context": {
            "registration": registration,
            "platform": "classroom-hub",
            "extensions": {"urn:classroom-hub:knowledge-points": item.knowledge_points},
        },
        "timestamp": datetime.fromtimestamp(at, ZoneInfo(tz)).isoformat(timespec="milliseconds"),
    }
