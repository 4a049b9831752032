"""The training-side answer history (models/kt/features.py): what the network is given to predict an answer
never depends on that answer (numpy only; the exported step is checked against it by train.py)."""

from __future__ import annotations

import numpy as np

from models.kt.features import FEATURES, RICH_FEATURES, WINDOW, sequence_features

SKILLS = np.array([3, 3, 3, 5, 5, 3, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 2])
CORRECT = np.array([1, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0])


def test_the_features_of_the_next_answer_do_not_see_it() -> None:
    for rich in (False, True):
        cur, nxt = sequence_features(SKILLS, CORRECT, 8, rich)
        for t in range(len(SKILLS) - 1):
            flipped = CORRECT.copy()
            flipped[t + 1 :] = 1 - flipped[t + 1 :]
            cur2, nxt2 = sequence_features(SKILLS, flipped, 8, rich)
            assert np.array_equal(nxt[t], nxt2[t]) and np.array_equal(cur[: t + 1], cur2[: t + 1])


def test_rich_features_hold_the_current_run_of_the_next_skill() -> None:
    cur, nxt = sequence_features(SKILLS, CORRECT, 8, rich=True)
    assert cur.shape == nxt.shape == (len(SKILLS), RICH_FEATURES)
    assert np.array_equal(sequence_features(SKILLS, CORRECT, 8)[1], nxt[:, :FEATURES])
    recent = nxt[:, FEATURES + 2 : FEATURES + 2 + WINDOW]
    # After answer 9 (skill 7's fourth answer: 0, 0, 1, 1), skill 7 is next: its outcomes, newest first, then nothing.
    assert recent[9].tolist() == [1, 1, -1, -1] + [0] * (WINDOW - 4)
    # Skill 3 comes back after skill 5: the answers on 5 in between are not skill 3's.
    assert recent[4].tolist() == [0, 0, 1, -1, 1] + [0] * (WINDOW - 5)
    # Skill 2 was never answered: no pattern, and its moving averages are zero.
    assert not recent[16].any() and not nxt[16, FEATURES : FEATURES + 2].any()
