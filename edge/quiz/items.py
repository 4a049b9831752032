"""Question types, their answer keys, and grading (on the hub only).

An item is a :class:`ItemSpec`. Its ``key`` shape depends on the type:

============  ==========================================  ===========================================
type          key                                         a student's response
============  ==========================================  ===========================================
single        ``{"choices": [i]}`` (option index)         ``{"choices": [i]}``
multiple      ``{"choices": [i, j, ...]}`` (2+ allowed)   ``{"choices": [...]}`` all-or-nothing
truefalse     ``{"value": true}``                         ``{"value": false}``
fill          ``{"blanks": [["北京", "Beijing"], ...]}``  ``{"blanks": ["北京", ...]}`` (normalised)
numeric       ``{"value": 3.14, "tolerance": 0.01}``      ``{"number": 3.1416}`` or ``{"text": "3.14"}``
short         ``{"reference": "..."}`` (for the teacher)  ``{"text": "...", "photo_id": "..."}``
============  ==========================================  ===========================================

Grading never looks at anything a tablet says about correctness; short answers
wait for the teacher's mark.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from edge.quiz.normalise import normalise_text, parse_number

TYPES = ("single", "multiple", "truefalse", "fill", "numeric", "short")
#: xAPI cmi.interaction interactionType of each item type.
INTERACTION_TYPES = {
    "single": "choice",
    "multiple": "choice",
    "truefalse": "true-false",
    "fill": "fill-in",
    "numeric": "numeric",
    "short": "long-fill-in",
}
MAX_OPTIONS = 10
MAX_TEXT = 4000
MAX_ANSWER_TEXT = 2000


def _finite(x: object) -> bool:
    """A real, finite number (a JSON integer too big for a float is not)."""
    if type(x) not in (int, float):
        return False
    try:
        return math.isfinite(float(x))  # type: ignore[arg-type]
    except OverflowError:
        return False


class ItemError(ValueError):
    """An item or a response that does not make sense; the message is for people."""


@dataclass
class ItemSpec:
    type: str
    stem: str
    key: dict[str, Any]
    options: list[str] = field(default_factory=list)
    explanation: str = ""
    difficulty: int | None = None
    knowledge_points: list[str] = field(default_factory=list)
    points: float = 1.0
    allow_photo: bool = False

    def content_sha(self) -> str:
        """Identity of the question's content (stem, options, key): re-imports are recognised."""
        blob = json.dumps([self.type, normalise_text(self.stem), [normalise_text(o) for o in self.options], self.key],
                          ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def validate_item(item: ItemSpec) -> ItemSpec:
    """Check an item and return it with its key in canonical form; raises :class:`ItemError`."""
    if item.type not in TYPES:
        raise ItemError(f"unknown question type {item.type!r} (one of {', '.join(TYPES)})")
    item.stem = item.stem.strip()
    if not item.stem:
        raise ItemError("the question text is empty")
    if len(item.stem) > MAX_TEXT or len(item.explanation) > MAX_TEXT:
        raise ItemError(f"the question or its explanation is longer than {MAX_TEXT} characters")
    if item.difficulty is not None and not (1 <= item.difficulty <= 5):
        raise ItemError("difficulty must be 1 (easy) to 5 (hard)")
    if not (0 < item.points <= 100):
        raise ItemError("points must be above 0 and at most 100")
    item.knowledge_points = _tags(item.knowledge_points)
    key = item.key if isinstance(item.key, dict) else {}
    if item.type in ("single", "multiple"):
        item.options = [o.strip() for o in item.options]
        if not (2 <= len(item.options) <= MAX_OPTIONS) or any(not o for o in item.options):
            raise ItemError(f"a choice question needs 2 to {MAX_OPTIONS} non-empty options")
        if len({normalise_text(o) for o in item.options}) != len(item.options):
            raise ItemError("two options are the same")
        choices = key.get("choices")
        if not isinstance(choices, list) or not choices or any(type(c) is not int or not 0 <= c < len(item.options) for c in choices):
            raise ItemError("the answer must name one of the options")
        choices = sorted(set(choices))
        if item.type == "single" and len(choices) != 1:
            raise ItemError("a single-choice question has exactly one right option")
        item.key = {"choices": choices}
    elif item.type == "truefalse":
        if type(key.get("value")) is not bool:
            raise ItemError("the answer of a true/false question is true or false")
        item.options, item.key = [], {"value": key["value"]}
    elif item.type == "fill":
        blanks = key.get("blanks")
        if not isinstance(blanks, list) or not blanks or len(blanks) > 20:
            raise ItemError("a fill-in question needs 1 to 20 blanks, each with accepted answers")
        clean = []
        for accepted in blanks:
            if not isinstance(accepted, list) or not all(isinstance(a, str) for a in accepted):
                raise ItemError("each blank's accepted answers are a list of texts")
            acc = [a.strip() for a in accepted if normalise_text(a)]
            if not acc:
                raise ItemError("a blank has no accepted answer")
            clean.append(acc)
        item.options, item.key = [], {"blanks": clean}
    elif item.type == "numeric":
        value, tol = key.get("value"), key.get("tolerance", 0)
        if not _finite(value):
            raise ItemError("a numeric question needs a numeric answer")
        if not _finite(tol) or tol < 0:
            raise ItemError("the tolerance is a number of 0 or more")
        item.options, item.key = [], {"value": float(value), "tolerance": float(tol)}
    else:  # short
        ref = key.get("reference", "")
        item.options, item.key = [], {"reference": ref if isinstance(ref, str) else ""}
    if item.type != "short":
        item.allow_photo = False
    return item


def _tags(tags: list[str]) -> list[str]:
    out: list[str] = []
    for t in tags:
        t = str(t).strip()
        if t and t not in out:
            out.append(t[:64])
    return out[:20]


# -- responses ------------------------------------------------------------------------------


def validate_response(item_type: str, n_options: int, n_blanks: int, response: dict[str, Any], allow_photo: bool) -> dict[str, Any]:
    """The canonical form of a student's response to an item of this shape; raises :class:`ItemError`."""
    if item_type in ("single", "multiple"):
        choices = response.get("choices")
        if not isinstance(choices, list) or any(type(c) is not int or not 0 <= c < n_options for c in choices):
            raise ItemError("choose among the options shown")
        choices = sorted(set(choices))
        if item_type == "single" and len(choices) != 1:
            raise ItemError("choose exactly one option")
        if not choices:
            raise ItemError("choose at least one option")
        return {"choices": choices}
    if item_type == "truefalse":
        if type(response.get("value")) is not bool:
            raise ItemError("answer true or false")
        return {"value": response["value"]}
    if item_type == "fill":
        blanks = response.get("blanks")
        if not isinstance(blanks, list) or len(blanks) != n_blanks or not all(isinstance(b, str) and len(b) <= 200 for b in blanks):
            raise ItemError(f"fill in {n_blanks} blank(s)")
        return {"blanks": blanks}
    if item_type == "numeric":
        if "number" in response:
            n = response["number"]
            if not _finite(n):
                raise ItemError("the answer is not a number")
            return {"number": float(n)}
        text = response.get("text")
        if isinstance(text, str) and len(text) <= 64 and parse_number(text) is not None:
            return {"number": parse_number(text), "text": text}
        raise ItemError("the answer is not a number")
    text = response.get("text", "")
    photo = response.get("photo_id")
    if not isinstance(text, str) or len(text) > MAX_ANSWER_TEXT:
        raise ItemError(f"the answer is text of at most {MAX_ANSWER_TEXT} characters")
    if photo is not None and (not allow_photo or not isinstance(photo, str) or len(photo) != 64):
        raise ItemError("this question does not take a photo" if not allow_photo else "unknown photo")
    if not text.strip() and photo is None:
        raise ItemError("the answer is empty")
    out: dict[str, Any] = {"text": text}
    if photo is not None:
        out["photo_id"] = photo
    return out


@dataclass(frozen=True)
class Grade:
    correct: bool | None  # None: the teacher marks it
    score: float | None


def grade(item_type: str, key: dict[str, Any], points: float, response: dict[str, Any]) -> Grade:
    """Grade a validated response against the item's key."""
    if item_type in ("single", "multiple"):
        ok = sorted(response["choices"]) == key["choices"]
    elif item_type == "truefalse":
        ok = response["value"] is key["value"]
    elif item_type == "fill":
        ok = all(normalise_text(given) in {normalise_text(a) for a in accepted}
                 for given, accepted in zip(response["blanks"], key["blanks"], strict=True))
    elif item_type == "numeric":
        # A relative epsilon so 0.1 + 0.2 style float noise never costs a mark.
        tol = key["tolerance"] + 1e-9 * max(1.0, abs(key["value"]))
        ok = abs(response["number"] - key["value"]) <= tol
    else:
        return Grade(None, None)
    return Grade(ok, points if ok else 0.0)


def n_blanks(item_type: str, key: dict[str, Any]) -> int:
    return len(key["blanks"]) if item_type == "fill" else 0


def public_view(item_type: str, stem: str, options: list[str], key: dict[str, Any], allow_photo: bool) -> dict[str, Any]:
    """What a student's tablet may see of an open question: no key, no explanation."""
    view: dict[str, Any] = {"type": item_type, "stem": stem, "options": options if item_type in ("single", "multiple") else []}
    if item_type == "fill":
        view["blanks"] = n_blanks(item_type, key)
    if item_type == "short":
        view["allow_photo"] = allow_photo
    return view
