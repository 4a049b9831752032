"""Text normalisation shared by transcripts and search, so both sides agree."""

from __future__ import annotations

import re
import unicodedata

# Han, Hiragana/Katakana, Hangul syllables and jamo: scripts written without word spaces
# (Chinese) or whose recognisers emit sub-word pieces separated by spaces (Korean).
_CJK = "\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_GAP = re.compile(f"(?<=[{_CJK}])\\s+(?=[{_CJK}])")
_HAN_GAP = re.compile(f"(?<=[{_HAN}])\\s+(?=[{_HAN}])")
_SPACES = re.compile(r"\s+")


def display_text(words: list[str]) -> str:
    """Words joined for people: spaces, except between Han characters (Chinese has none)."""
    return _HAN_GAP.sub("", " ".join(w for w in words if w))


def search_form(text: str) -> str:
    """The form that is indexed and queried: NFKC, lower case, no spaces inside CJK/Hangul runs."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _SPACES.sub(" ", text).strip()
    return _CJK_GAP.sub("", text)


_RUN = re.compile(f"[{_CJK}]+")


def bigram_form(search_text: str) -> str:
    """Tokens for the short-term index: each CJK run as overlapping bigrams plus its last
    character (so every character starts some token), other words as they are."""
    out: list[str] = []
    for token in search_text.split(" "):
        pos = 0
        for m in _RUN.finditer(token):
            if m.start() > pos:
                out.append(token[pos:m.start()])
            run = m.group()
            out.extend(run[i:i + 2] for i in range(len(run) - 1))
            out.append(run[-1])
            pos = m.end()
        if pos < len(token):
            out.append(token[pos:])
    return " ".join(t for t in out if t)


def is_cjk(text: str) -> bool:
    return bool(text) and _RUN.fullmatch(text) is not None
