"""Accuracy measures against the reference clip: character error rate and word-start error."""

from __future__ import annotations

from typing import Any

from edge.speech.text import search_form


def _edit_alignment(ref: str, hyp: str) -> tuple[int, list[int | None]]:
    """Levenshtein distance and, for every ref position, the hyp position aligned to it (None if deleted)."""
    n, m = len(ref), len(hyp)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]))
    align: list[int | None] = [None] * n
    i, j = n, m
    while i > 0 and j > 0:
        if d[i][j] == d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            align[i - 1] = j - 1
            i, j = i - 1, j - 1
        elif d[i][j] == d[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    return d[n][m], align


def cer(ref_text: str, hyp_text: str) -> float:
    """Character error rate over the text without spaces (Korean spacing is not scored)."""
    ref = search_form(ref_text).replace(" ", "")
    hyp = search_form(hyp_text).replace(" ", "")
    dist, _ = _edit_alignment(ref, hyp)
    return dist / max(1, len(ref))


def word_start_errors(ref_words: list[tuple[str, float, float]], hyp_words: list[dict[str, Any]], offset: float = 0.0) -> list[float]:
    """|hyp start - ref start| per reference word.

    The recogniser's words are not the reference's (the Korean model emits
    sub-word pieces), so each reference word is matched through a character
    alignment: its first character's aligned hypothesis character names the
    recognised word whose start time is compared.
    """
    ref = "".join(w for w, _, _ in ref_words)
    hyp_chars: list[int] = []  # hyp char -> index of its word
    for k, w in enumerate(hyp_words):
        hyp_chars += [k] * len(w["word"])
    hyp = "".join(w["word"] for w in hyp_words)
    _, align = _edit_alignment(ref, hyp)
    errors = []
    pos = 0
    for word, start, _end in ref_words:
        js = [a for a in align[pos:pos + len(word)] if a is not None]
        pos += len(word)
        if not js:
            continue  # the whole word was deleted: it has no time to compare (counted by CER)
        errors.append(abs(hyp_words[hyp_chars[js[0]]]["start"] - offset - start))
    return errors
