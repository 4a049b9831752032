"""xAPI statements (IEEE 9274.1.1) for graded answers, written to the outbox.

The statement id is assigned here, by the producer, so the district's LRS can take a
statement sent twice as the same statement. The actor is the student's pseudonymous
id: the district never learns a child's name from a learning record.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from edge.quiz.items import INTERACTION_TYPES

ANSWERED = "http://adlnet.gov/expapi/verbs/answered"
INTERACTION = "http://adlnet.gov/expapi/activities/cmi.interaction"
XAPI_EVENT = "xapi.statement"
# Fixed namespace: statement ids derived from submission ids are stable across retries.
_NS = uuid.UUID("6f1f3b2e-8c1d-4d59-9a55-2d6f0c7b9e41")


_NS_BYTES = _NS.bytes


def statement_id(seed: str) -> str:
    """``str(uuid.uuid5(_NS, seed))``, without building UUID objects (this runs for every graded answer)."""
    h = bytearray(hashlib.sha1(_NS_BYTES + seed.encode(), usedforsecurity=False).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50  # version 5
    h[8] = (h[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


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
    points = float(item.points)
    return {
        "id": statement_uuid,
        "actor": {"objectType": "Agent", "account": {"homePage": f"urn:classroom-hub:{hub_id}", "name": pseudo_id}},
        "verb": _VERB,
        "object": _activity(item),
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


def answered_json(**kwargs: Any) -> tuple[str, str]:
    """:func:`answered` as (statement id, the statement as compact JSON text) for the outbox."""
    stmt = answered(**kwargs)
    return stmt["id"], orjson.dumps(stmt).decode()


_VERB = {"id": ANSWERED, "display": {"en-US": "answered", "zh-CN": "作答"}}
_activities: dict[str, dict[str, Any]] = {}


def _activity(item: Any) -> dict[str, Any]:
    """The question as an xAPI activity; an item's content never changes (the bank stores edits as new items),
    so each is built once per process. Callers serialise it, never change it."""
    activity = _activities.get(item.uid)
    if activity is None:
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
        activity = {"objectType": "Activity", "id": f"urn:classroom-hub:item:{item.uid}", "definition": definition}
        if len(_activities) < 10_000:
            _activities[item.uid] = activity
    return activity
