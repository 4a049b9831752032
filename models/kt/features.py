"""Per-skill answer history: the counts the hub keeps per student beside the LSTM state.

For every skill k a student carries five numbers, updated by each answer:
attempts, correct answers, the last outcome (+1 right, -1 wrong, 0 none yet),
the current streak (+n: n right in a row, -n: n wrong in a row) and the number of
answers (on any skill) since k was last answered. The exported
step updates them in its graph; this module computes the same thing in numpy for
training, where only the skill answered next needs them.

Why: the LSTM has to squeeze "how did this student do on skill k so far" for
124 skills into one hidden vector; giving it those counts directly costs 496
floats of state and one multiply-add per skill per answer.
"""

from __future__ import annotations

import numpy as np

RAW = 5  # attempts, correct, last outcome, signed streak, answers since
FEATURES = 8


def features(n: np.ndarray, c: np.ndarray, last: np.ndarray, streak: np.ndarray, gap: np.ndarray, just: np.ndarray, just_sign: np.ndarray) -> np.ndarray:
    """The model's inputs from the raw counts (any matching shapes), stacked on a new last axis.

    ``just`` is 1 where the skill is the one answered in this step, ``just_sign``
    the same with the answer's sign (+1 right, -1 wrong): the split repeats the
    same (skill, correct) row in about 70 % of consecutive steps.
    """
    return np.stack(
        [np.log1p(n), np.log1p(c), np.log1p(n - c), last, np.sign(streak) * np.log1p(np.abs(streak)), np.log1p(gap) * (n > 0), just, just_sign],
        axis=-1,
    ).astype(np.float32)


def sequence_features(skills: np.ndarray, correct: np.ndarray, num_skills: int) -> tuple[np.ndarray, np.ndarray]:
    """For each step t of one student: features of the skill answered at t and of the skill answered at t+1,
    both after the answer at t has been counted (so neither sees an answer it should predict).

    Returns two [T, FEATURES] arrays; the last row of the second is zero (there is no next answer).
    """
    n_steps = len(skills)
    n = np.zeros(num_skills, dtype=np.float64)
    c = np.zeros_like(n)
    last = np.zeros_like(n)
    streak = np.zeros_like(n)
    seen_at = np.zeros_like(n)
    raw_cur = np.zeros((n_steps, 7), dtype=np.float64)
    raw_next = np.zeros((n_steps, 7), dtype=np.float64)
    for t in range(n_steps):
        k, y = int(skills[t]), int(correct[t])
        n[k] += 1
        c[k] += y
        last[k] = 1.0 if y else -1.0
        if y:
            streak[k] = streak[k] + 1 if streak[k] > 0 else 1.0
        else:
            streak[k] = streak[k] - 1 if streak[k] < 0 else -1.0
        seen_at[k] = t
        sign = 1.0 if y else -1.0
        raw_cur[t] = (n[k], c[k], last[k], streak[k], 0.0, 1.0, sign)
        if t + 1 < n_steps:
            j = int(skills[t + 1])
            same = 1.0 if j == k else 0.0
            raw_next[t] = (n[j], c[j], last[j], streak[j], t - seen_at[j], same, same * sign)
    cur = features(*(raw_cur[:, i] for i in range(7)))
    nxt = features(*(raw_next[:, i] for i in range(7)))
    nxt[-1] = 0.0
    return cur, nxt
