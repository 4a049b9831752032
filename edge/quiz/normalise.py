"""Text normalisation for comparing typed answers.

Teachers expect "ＡＢＣ", "abc" and " a b c " style differences not to cost a
student the mark: full-width and half-width forms are the same character
(NFKC folds full-width ASCII and the ideographic space), case does not matter
(casefold, which also handles ß and Greek), and spaces matter only between two
Latin letters or digits ("new york" is not "newyork", but "北 京" is "北京").
"""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")
_ASCII_WORD = re.compile(r"[0-9a-z]")
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?%?")
# Punctuation NFKC leaves alone but that a student types either way.
_FOLD = str.maketrans({"。": ".", "、": ",", "“": '"', "”": '"', "‘": "'", "’": "'", "—": "-", "－": "-"})


def normalise_text(text: str) -> str:
    """The comparison form of ``text`` (idempotent)."""
    s = unicodedata.normalize("NFKC", text).casefold().translate(_FOLD)
    parts = [p for p in _SPACES.split(s.strip()) if p]
    if not parts:
        return ""
    out = parts[0]
    for part in parts[1:]:
        # Keep one space only where it separates two Latin words/numbers.
        if _ASCII_WORD.match(out[-1]) and _ASCII_WORD.match(part[0]):
            out += " "
        out += part
    return out


def parse_number(text: str) -> float | None:
    """A number typed by a student: full-width digits, a comma or 。 as decimal mark, a fraction a/b, a percent."""
    s = normalise_text(text).replace(" ", "")
    if not s:
        return None
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")  # 1,000 and 12,345.6: grouping commas
    elif s.count(",") == 1 and "." not in s:
        s = s.replace(",", ".")  # 3,5: a decimal comma
    try:
        if s.endswith("%"):
            return float(s[:-1]) / 100
        if "/" in s:
            num, _, den = s.partition("/")
            return float(num) / float(den)
        value = float(s)
    except (ValueError, ZeroDivisionError):
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return value
