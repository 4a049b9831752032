"""Aiken format (Moodle): a question, lettered options, then ``ANSWER: X``.

    地球绕什么转？
    A. 月亮
    B) 太阳
    ANSWER: B
"""

from __future__ import annotations

import re

from edge.quiz.importers import Parsed
from edge.quiz.importers.text import decode
from edge.quiz.items import ItemError, ItemSpec, validate_item

_OPTION = re.compile(r"^([A-Za-z])\s*[.)．、）]\s*(.*)$")
_ANSWER = re.compile(r"^ANSWER\s*[:：]\s*([A-Za-z])\s*$", re.IGNORECASE)


def parse(data: bytes) -> list[Parsed]:
    out: list[Parsed] = []
    stem: list[str] = []
    options: list[tuple[str, str]] = []
    start = 0

    def refuse(reason: str) -> None:
        out.append(Parsed(f"line {start}", None, reason))

    for n, raw in enumerate(decode(data).split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        if not stem:
            start = n
        m = _ANSWER.match(line)
        if m:
            letter = m.group(1).upper()
            letters = [lt for lt, _ in options]
            if not stem:
                refuse("ANSWER without a question")
            elif letter not in letters:
                refuse(f"ANSWER {letter} is not one of the options {''.join(letters) or '(none)'}")
            else:
                try:
                    spec = validate_item(ItemSpec("single", " ".join(stem), {"choices": [letters.index(letter)]}, [t for _, t in options]))
                    out.append(Parsed(f"line {start}", spec))
                except ItemError as exc:
                    refuse(str(exc))
            stem, options = [], []
            continue
        m = _OPTION.match(line)
        if m and stem:
            letter = m.group(1).upper()
            expected = chr(ord("A") + len(options))
            if letter != expected:
                refuse(f"line {n}: option {letter} where {expected} was expected")
                stem, options = [], []
                continue
            options.append((letter, m.group(2).strip()))
        elif options:
            # Text after the options without an ANSWER line: the previous question is broken.
            refuse(f"no ANSWER line after the options (line {n} starts something new)")
            stem, options, start = [line], [], n
        else:
            stem.append(line)
    if stem:
        refuse("the file ends before this question's ANSWER line")
    return out
