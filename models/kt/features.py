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
ALIGN = 24  # outcomes kept per skill for the aligned features: its first ALIGN answers (+1/-1, 0 = none yet)
ALIGN_RAW = 1  # + the previous distinct skill answered (id + 1, 0 = none); the per-skill outcomes are ALIGN wide
ALIGN_FEATURES = 7
ALIGNED_FEATURES = RICH_FEATURES + ALIGN_FEATURES
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


def _slog(x: np.ndarray | float) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def aligned_features(outcomes: np.ndarray, n: np.ndarray, j: int, last: int, prev: int) -> np.ndarray:
    """The ``aligned`` inputs for the next answer on skill ``j`` (``ALIGN_FEATURES``).

    In this split a problem tagged with several skills appears in each of their runs, so an earlier run
    can repeat the current one position by position. ``outcomes`` [K, ALIGN]: every skill's first outcomes
    (+1/-1, 0 = none), ``n`` the answers per skill, ``last``/``prev`` the skill answered last and the
    distinct skill before it (-1 = none). For the answer at position ``p = n[j]`` of j's run, every other
    skill k whose run is longer than p is compared with j's run on positions < p; from those that agree
    everywhere (or all but once) comes a vote of their outcomes at p, and separately from the run before j's.

    Only the run just answered (``j == last``) and skills not answered yet (``p == 0``) get them; for any other
    skill they are zero. In this split those are the only skills a next answer can be on (a student's answers
    on one skill form one run), and the exported step then compares one run with the others, not every pair.
    """
    p = int(n[j])
    out = np.zeros(ALIGN_FEATURES, dtype=np.float64)
    if p >= ALIGN or (p > 0 and j != last):
        return out
    big_p = float(p)
    agree = outcomes @ outcomes[j]
    mism = (big_p - agree) / 2
    valid = n > p
    valid[j] = False
    val = outcomes[:, p]
    perfect = valid & (np.abs(mism) < 0.5)
    one = valid & (np.abs(mism - 1) < 0.5)
    vote0, cnt0, vote1 = float((val * perfect).sum()), float(perfect.sum()), float((val * one).sum())
    q = prev if j == last else last
    pm0 = pm1 = 0.0
    if q >= 0 and valid[q]:
        pm0 = val[q] * (abs(mism[q]) < 0.5)
        pm1 = val[q] * (abs(mism[q]) >= 0.5)
    lp = np.log1p(big_p)
    out[:] = (_slog(vote0), np.log1p(cnt0), _slog(vote1), pm0, pm1, vote0 / max(cnt0, 1.0) * lp, pm0 * lp)
    return out


def sequence_features(skills: np.ndarray, correct: np.ndarray, num_skills: int, rich: bool = False, aligned: bool = False
                      ) -> tuple[np.ndarray, np.ndarray]:
    """For each step t of one student: features of the skill answered at t and of the skill answered at t+1,
    both after the answer at t has been counted (so neither sees an answer it should predict).

    Returns two [T, FEATURES] (``rich``: [T, RICH_FEATURES]; ``aligned``, which needs ``rich``:
    [T, ALIGNED_FEATURES]) arrays; the last row of the second is zero (there is no next answer).
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
    outcomes = np.zeros((num_skills, ALIGN), dtype=np.float64)
    last_skill, prev_skill = -1, -1
    al_cur = np.zeros((n_steps, ALIGN_FEATURES), dtype=np.float64)
    al_next = np.zeros_like(al_cur)
    for t in range(n_steps):
        k, y = int(skills[t]), int(correct[t])
        sign = 1.0 if y else -1.0
        if aligned:
            if n[k] < ALIGN:
                outcomes[k, int(n[k])] = sign
            if k != last_skill and last_skill >= 0:
                prev_skill = last_skill
            last_skill = k
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
        if aligned:
            al_cur[t] = aligned_features(outcomes, n, k, last_skill, prev_skill)
        if t + 1 < n_steps:
            j = int(skills[t + 1])
            same = 1.0 if j == k else 0.0
            raw_next[t] = (n[j], c[j], last[j], streak[j], t - seen_at[j], same, same * sign)
            if rich:
                extra_next[t, :2] = fast[j], slow[j]
                extra_next[t, 2 : 2 + WINDOW] = win_sign * (win_skill == j + 1)
                extra_next[t, 2 + WINDOW :] = extra_cur[t, 2 + WINDOW :]
            if aligned:
                al_next[t] = aligned_features(outcomes, n, j, last_skill, prev_skill)
    cur = features(*(raw_cur[:, i] for i in range(7)))
    nxt = features(*(raw_next[:, i] for i in range(7)))
    if rich:
        def extra(e: np.ndarray) -> np.ndarray:
            return rich_features(e[:, 0], e[:, 1], e[:, 2 : 2 + WINDOW], e[:, 2 + WINDOW], e[:, 3 + WINDOW], e[:, 4 + WINDOW])

        cur = np.concatenate([cur, extra(extra_cur)], axis=1)
        nxt = np.concatenate([nxt, extra(extra_next)], axis=1)
    if aligned:
        cur = np.concatenate([cur, al_cur.astype(np.float32)], axis=1)
        nxt = np.concatenate([nxt, al_next.astype(np.float32)], axis=1)
    nxt[-1] = 0.0
    return cur, nxt
