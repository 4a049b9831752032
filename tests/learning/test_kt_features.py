"""The training-side answer history (models/kt/features.py): what the network is given to predict an answer
never depends on that answer (numpy only; the exported step is checked against it by train.py)."""

from __future__ import annotations

import numpy as np
import pytest

from models.kt.features import ALIGNED_FEATURES, FEATURES, RICH_FEATURES, WINDOW, sequence_features

SKILLS = np.array([3, 3, 3, 5, 5, 3, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 2])
CORRECT = np.array([1, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0])


def test_the_features_of_the_next_answer_do_not_see_it() -> None:
    for rich, aligned in ((False, False), (True, False), (True, True)):
        cur, nxt = sequence_features(SKILLS, CORRECT, 8, rich, aligned)
        for t in range(len(SKILLS) - 1):
            flipped = CORRECT.copy()
            flipped[t + 1 :] = 1 - flipped[t + 1 :]
            cur2, nxt2 = sequence_features(SKILLS, flipped, 8, rich, aligned)
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


def test_aligned_features_vote_with_the_earlier_runs_that_agree_so_far() -> None:
    # Skill 1 repeats skill 0's run (a problem tagged with both skills appears in both runs); skill 2's run differs.
    skills = np.array([0, 0, 0, 0, 2, 2, 2, 2, 1, 1, 1, 1, 3])
    correct = np.array([1, 0, 0, 1, 0, 1, 1, 1, 1, 0, 0, 1, 1])
    cur, nxt = sequence_features(skills, correct, 4, rich=True, aligned=True)
    assert cur.shape == nxt.shape == (len(skills), ALIGNED_FEATURES)
    assert np.array_equal(sequence_features(skills, correct, 4, rich=True)[1], nxt[:, :RICH_FEATURES])
    al = nxt[:, RICH_FEATURES:]  # vote of exact agreements, their count, vote of one-off agreements, run before: agrees, disagrees, ...
    log2 = np.log1p(1.0)
    # After skill 1's first two answers (1, 0): skill 0 agrees everywhere and says wrong next; skill 2, the run
    # just before, disagrees twice and says right.
    assert al[9, :5].tolist() == pytest.approx([-log2, log2, 0.0, 0.0, 1.0])
    # After its third (1, 0, 0): skill 0 still agrees (says right next); skill 2 (0, 1, 1) disagrees at all three.
    assert al[10, :5].tolist() == pytest.approx([log2, log2, 0.0, 0.0, 1.0])
    # After its first (1): skill 0 agrees (says wrong); skill 2 is one off and says right.
    assert al[8, :5].tolist() == pytest.approx([-log2, log2, log2, 0.0, 1.0])
    # A skill not answered yet (3, after all of them): every run's first outcome votes (1 + 0 + 1 -> +1 -1 +1), the last run's is +1.
    assert al[11, :4].tolist() == pytest.approx([log2, np.log1p(3.0), 0.0, 1.0])
