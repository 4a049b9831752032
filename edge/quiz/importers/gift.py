"""Moodle GIFT format.

Written here rather than taken from PyPI: the GIFT parsers there (pygiftparser 1.1,
last release 2017; pygiftparserrgmf 0.0.5) are unmaintained, and the grammar is small.
Supported, per the Moodle documentation: ``::title::``, ``[html]``/``[markdown]``/
``[plain]`` markers, multiple choice (``=right ~wrong``), weighted multiple answer
(``~%50%a ~%50%b ~%-100%c``), true/false (``{T}`` ``{FALSE}``), short answer (``{=a =b}``,
graded as fill-in with those accepted answers), missing word (text after the braces),
numerical (``{#3.14:0.01}``, ``{#1..2}``, ``{#=3.14:0.01 =%50%3.1}`` takes the full-mark
answer), essay (``{}``), per-answer ``#feedback``, general feedback ``####...`` (kept as the
explanation), ``$CATEGORY:`` and ``// [tag:...]`` comments (knowledge points), our
``// [difficulty:N]`` comment, and backslash escapes. Matching questions are refused by
name (no matching item type on the hub).
"""

from __future__ import annotations

import re

from edge.quiz.importers import Parsed
from edge.quiz.importers.text import decode
from edge.quiz.items import ItemError, ItemSpec, validate_item

_SPECIAL = "~=#{}:\\"
_TAG = re.compile(r"\[tag:([^\]]+)\]")
_DIFF = re.compile(r"\[difficulty:\s*([1-5])\]")
_HTML_TAG = re.compile(r"<[^>]+>")


def _unescape(s: str) -> str:
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            nxt = s[i + 1]
            out.append("\n" if nxt == "n" else nxt)
            i += 2
            continue
        out.append(s[i])
        i += 1
    return "".join(out)


def _find(s: str, ch: str, start: int = 0) -> int:
    """Index of the first unescaped ``ch`` at or after ``start``, else -1."""
    i = start
    while i < len(s):
        if s[i] == "\\":
            i += 2
            continue
        if s.startswith(ch, i):
            return i
        i += 1
    return -1


def _split_unescaped(s: str, seps: str) -> list[tuple[str, str]]:
    """Split at unescaped separator characters; each part keeps the separator that started it ('' for the first)."""
    parts: list[tuple[str, str]] = []
    cur, marker, i = [], "", 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            cur.append(s[i:i + 2])
            i += 2
            continue
        if c in seps:
            parts.append((marker, "".join(cur)))
            cur, marker = [], c
        else:
            cur.append(c)
        i += 1
    parts.append((marker, "".join(cur)))
    return parts


def _clean(text: str, fmt: str) -> str:
    text = _unescape(text).strip()
    if fmt == "html":
        text = _HTML_TAG.sub("", text)
    return re.sub(r"[ \t]*\n[ \t]*", "\n", text).strip()


def _blocks(text: str) -> list[tuple[int, list[str], list[str], str]]:
    """(first line number, question lines, tags from its comments, category) per question."""
    blocks, cur, tags, start, category = [], [], [], 0, ""
    pending_tags: list[str] = []
    for n, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if stripped.startswith("//"):
            pending_tags.append(stripped)
            continue
        if stripped.startswith("$CATEGORY:") and not cur:
            category = stripped.split(":", 1)[1].strip()
            pending_tags = []
            continue
        if not stripped:
            if cur:
                blocks.append((start, cur, tags, category))
                cur, tags = [], []
            continue
        if not cur:
            start, tags, pending_tags = n, pending_tags, []
        cur.append(line)
    if cur:
        blocks.append((start, cur, tags, category))
    return blocks


def parse(data: bytes) -> list[Parsed]:
    out = []
    for start, lines, comments, category in _blocks(decode(data)):
        where = f"line {start}"
        try:
            spec, title = _question("\n".join(lines), comments, category)
            out.append(Parsed(where, validate_item(spec), title=title))
        except ItemError as exc:
            out.append(Parsed(where, None, str(exc)))
    return out


def _question(src: str, comments: list[str], category: str) -> tuple[ItemSpec, str]:
    title = ""
    s = src.strip()
    if s.startswith("::"):
        end = _find(s, "::", 2)
        if end < 0:
            raise ItemError("the title (::title::) is not closed")
        title, s = _unescape(s[2:end]).strip(), s[end + 2:].strip()
    fmt = "plain"
    m = re.match(r"^\[(html|moodle|plain|markdown)\]", s)
    if m:
        fmt, s = m.group(1), s[m.end():]
    open_at = _find(s, "{")
    if open_at < 0:
        raise ItemError("no answer block { ... } (a description, not a question)")
    close_at = _find(s, "}", open_at + 1)
    if close_at < 0:
        raise ItemError("the answer block { is not closed with }")
    before, body, after = s[:open_at], s[open_at + 1:close_at], s[close_at + 1:]
    if _find(after, "{") >= 0:
        raise ItemError("more than one answer block in a question is not supported")
    stem = _clean(before, fmt)
    if _clean(after, fmt):
        stem = f"{stem} ____ {_clean(after, fmt)}"  # missing-word form
    explanation = ""
    gf = _find(body, "####")
    if gf >= 0:
        body, explanation = body[:gf], _clean(body[gf + 4:], fmt)
    tags = [t.strip() for c in comments for t in _TAG.findall(c)]
    if category:
        leaf = [p for p in category.replace("$course$", "").replace("$system$", "").split("/") if p.strip() and p.strip() != "top"]
        if leaf:
            tags.insert(0, leaf[-1].strip())
    diff = next((int(d) for c in comments for d in _DIFF.findall(c)), None)
    spec = _answers(body.strip(), stem, fmt)
    spec.explanation, spec.knowledge_points, spec.difficulty = explanation, tags, diff
    return spec, title


def _answers(body: str, stem: str, fmt: str) -> ItemSpec:
    if not body:
        return ItemSpec("short", stem, {"reference": ""}, allow_photo=True)
    if body.startswith("#"):
        return _numeric(body[1:].strip(), stem)
    tf = _split_unescaped(body, "#")[0][1].strip().upper()
    if tf in ("T", "TRUE", "F", "FALSE") and not any(c in body for c in "=~"):
        return ItemSpec("truefalse", stem, {"value": tf.startswith("T")})
    answers = []
    for marker, text in _split_unescaped(body, "=~"):
        if not marker:
            if text.strip():
                raise ItemError(f"text {text.strip()[:20]!r} before the first answer; answers start with = or ~")
            continue
        if "->" in text:
            raise ItemError("matching questions are not supported on the hub")
        text = _split_unescaped(text, "#")[0][1]  # drop per-answer feedback
        weight = None
        wm = re.match(r"^\s*%(-?\d+(?:\.\d+)?)%", text)
        if wm:
            weight, text = float(wm.group(1)), text[wm.end():]
        answers.append((marker, weight, _clean(text, fmt)))
    if not answers:
        raise ItemError("the answer block has no answers")
    if all(m == "=" and w is None for m, w, _ in answers):
        return ItemSpec("fill", stem, {"blanks": [[t for _, _, t in answers]]})
    options = [t for _, _, t in answers]
    right = [i for i, (m, w, _) in enumerate(answers) if (m == "=" and (w is None or w > 0)) or (m == "~" and w is not None and w > 0)]
    weighted = any(w is not None for _, w, _ in answers)
    kind = "multiple" if (weighted and len(right) > 1) or len(right) > 1 else "single"
    if not right:
        raise ItemError("no answer is marked right (= or a positive %weight%)")
    return ItemSpec(kind, stem, {"choices": right}, options)


def _numeric(body: str, stem: str) -> ItemSpec:
    if body.startswith("="):
        best = None
        for _, text in _split_unescaped(body, "="):
            text = _split_unescaped(text, "#")[0][1].strip()
            if not text:
                continue
            wm = re.match(r"^%(-?\d+(?:\.\d+)?)%", text)
            weight = float(wm.group(1)) if wm else 100.0
            text = text[wm.end():] if wm else text
            if weight >= 100 and best is None:
                best = text
        if best is None:
            raise ItemError("no full-mark numeric answer")
        body = best
    body = _split_unescaped(body, "#")[0][1].strip()
    try:
        if ".." in body:
            lo, hi = (float(x) for x in body.split("..", 1))
            return ItemSpec("numeric", stem, {"value": (lo + hi) / 2, "tolerance": abs(hi - lo) / 2})
        value, _, tol = body.partition(":")
        return ItemSpec("numeric", stem, {"value": float(value), "tolerance": float(tol or 0)})
    except ValueError:
        raise ItemError(f"{body!r} is not a numeric answer (n, n:tolerance or lo..hi)") from None
