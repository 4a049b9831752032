"""Per-skill answer history: the counts the hub keeps per student beside the LSTM state.

For every skill k a student carries five numbers, updated by each answer:
attempts, correct answers, the last outcome (+1 right, -1 wrong, 0 none yet),
the current streak (+n: n right in a row, -n: n wrong in a row) and the number of
answers (on any skill) since k was last answered. The exported
step updates them in its graph; this module computes the same thing in numpy for
training, where only the skill answered next needs them.

With ``rich`` (``train.py --rich``) a student also carries, per skill, two moving
averages of that skill's outcomes (fast and slow), and once for the student: the
number of answers, right answers, a moving average of all outcomes and the last
``WINDOW`` answers (skill and outcome), from which each skill gets "its" outcomes
among the student's last ``WINDOW`` answers (in this split a student's answers on
one skill form one run, so that is the pattern of the current run so far).

Why: the LSTM has to squeeze "how did this student do on skill k so far" for
124 skills into one hidden vector; giving it those counts directly costs 496
floats of state and one multiply-add per skill per answer.
"""

from __future__ import annotations

import numpy as np

RAW = 5  # attempts, correct, last outcome, signed streak, answers since
FEATURES = 8
RICH_RAW = RAW + 2  # + fast and slow moving average of the skill's outcomes (+1/-1)
WINDOW = 8  # the student's last answers kept for the per-skill recent pattern
GLOBAL_RAW = 3 + 2 * WINDOW  # answers, right answers, moving average of all outcomes; last WINDOW skills (id + 1, 0 = none) and outcomes
RICH_FEATURES = FEATURES + 2 + WINDOW + 3
FAST, SLOW, GLOBAL = 0.5, 0.2, 0.1  # weight of the newest outcome in each moving average


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


def rich_features(fast: np.ndarray, slow: np.ndarray, recent: np.ndarray, total: np.ndarray, right: np.ndarray, overall: np.ndarray) -> np.ndarray:
    """The ``rich`` inputs appended to ``features``: the skill's moving averages, its outcomes among the last
    ``WINDOW`` answers (``recent``, [..., WINDOW], newest first, 0 where that answer was on another skill),
    and the student's answers, accuracy (shrunk to 0 with few answers, in -1..1) and moving average."""
    return np.concatenate(
        [np.stack([fast, slow], axis=-1), recent, np.stack([np.log1p(total), (2 * right - total) / (total + 2), overall], axis=-1)], axis=-1
    ).astype(np.float32)


def sequence_features(skills: np.ndarray, correct: np.ndarray, num_skills: int, rich: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """For each step t of one student: features of the skill answered at t and of the skill answered at t+1,
    both after the answer at t has been counted (so neither sees an answer it should predict).

    Returns two [T, FEATURES] (``rich``: [T, RICH_FEATURES]) arrays; the last row of the second is zero
    (there is no next answer).
    """
    n_steps = len(skills)
    n = np.zeros(num_skills, dtype=np.float64)
    c = np.zeros_like(n)
    last = np.zeros_like(n)
    streak = np.zeros_like(n)
    seen_at = np.zeros_like(n)
    fast = np.zeros_like(n)
    slow = np.zeros_like(n)
    win_skill = np.zeros(WINDOW, dtype=np.float64)
    win_sign = np.zeros(WINDOW, dtype=np.float64)
    student = np.zeros(3, dtype=np.float64)  # the first 3 numbers of the global state: answers, right answers, moving average
    raw_cur = np.zeros((n_steps, 7), dtype=np.float64)
    raw_next = np.zeros((n_steps, 7), dtype=np.float64)
    extra_cur = np.zeros((n_steps, 2 + WINDOW + 3), dtype=np.float64)
    extra_next = np.zeros_like(extra_cur)
    for t in range(n_steps):
        k, y = int(skills[t]), int(correct[t])
        sign = 1.0 if y else -1.0
        if rich:
            student[0] += 1
            student[1] += y
            student[2] = (1 - GLOBAL) * student[2] + GLOBAL * sign
        n[k] += 1
        c[k] += y
        last[k] = sign
        if y:
            streak[k] = streak[k] + 1 if streak[k] > 0 else 1.0
        else:
            streak[k] = streak[k] - 1 if streak[k] < 0 else -1.0
        seen_at[k] = t
        raw_cur[t] = (n[k], c[k], last[k], streak[k], 0.0, 1.0, sign)
        if rich:
            fast[k] = (1 - FAST) * fast[k] + FAST * sign
            slow[k] = (1 - SLOW) * slow[k] + SLOW * sign
            win_skill[1:], win_sign[1:] = win_skill[:-1].copy(), win_sign[:-1].copy()
            win_skill[0], win_sign[0] = k + 1, sign
            extra_cur[t, :2] = fast[k], slow[k]
            extra_cur[t, 2 : 2 + WINDOW] = win_sign * (win_skill == k + 1)
            extra_cur[t, 2 + WINDOW :] = student
        if t + 1 < n_steps:
            j = int(skills[t + 1])
            same = 1.0 if j == k else 0.0
            raw_next[t] = (n[j], c[j], last[j], streak[j], t - seen_at[j], same, same * sign)
            if rich:
                extra_next[t, :2] = fast[j], slow[j]
                extra_next[t, 2 : 2 + WINDOW] = win_sign * (win_skill == j + 1)
                extra_next[t, 2 + WINDOW :] = extra_cur[t, 2 + WINDOW :]
    cur = features(*(raw_cur[:, i] for i in range(7)))
    nxt = features(*(raw_next[:, i] for i in range(7)))
    if rich:
        def extra(e: np.ndarray) -> np.ndarray:
            return rich_features(e[:, 0], e[:, 1], e[:, 2 : 2 + WINDOW], e[:, 2 + WINDOW], e[:, 3 + WINDOW], e[:, 4 + WINDOW])

        cur = np.concatenate([cur, extra(extra_cur)], axis=1)
        nxt = np.concatenate([nxt, extra(extra_next)], axis=1)
    nxt[-1] = 0.0
    return cur, nxt
