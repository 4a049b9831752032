"""How often an earlier run repeats the current one, position by position (training split only).

    .venv/bin/python -m models.kt.aligned_runs

In the DKT split a student's answers on one skill form one run, and a problem tagged with several
skills appears in each of their runs, so a later run can copy an earlier one. For every answer at
position i >= ``--min-position`` of its run, this finds the most recent earlier run of the same
student that is longer than i and agrees with the current run on all positions before i (the
immediately preceding run separately), and counts how often that run's outcome at i is the answer.
The measurement that led to ``train.py --aligned``; it reads ``builder_train.csv`` only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from models.kt.dataset import DEFAULT_DIR, TRAIN_FILE, read_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--min-position", type=int, nargs="+", default=[1, 3, 5, 8])
    args = ap.parse_args()
    rows = []  # position, answer, last answer in the run (-1 none), distance to the agreeing run (0 none), its outcome
    for s in read_split(args.data / TRAIN_FILE):
        bounds = [0] + [t for t in range(1, len(s.skills)) if s.skills[t] != s.skills[t - 1]] + [len(s.skills)]
        runs = [s.correct[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        for r, o in enumerate(runs):
            for i in range(len(o)):
                if r == 0 and i == 0:
                    continue  # the student's first answer is never predicted
                dist, copy = 0, -1
                for q in range(r - 1, -1, -1):
                    if len(runs[q]) > i and np.array_equal(runs[q][:i], o[:i]):
                        dist, copy = r - q, int(runs[q][i])
                        break
                rows.append((i, int(o[i]), int(o[i - 1]) if i else -1, dist, copy))
    a = np.array(rows)
    pos, y, last, dist, copy = a.T
    out = {"answers": len(a)}
    for m in args.min_position:
        for name, sel in (("any_earlier_run", dist > 0), ("the_run_before", dist == 1)):
            k = sel & (pos >= m)
            says_flip = k & (copy != last)
            out[f"{name}_position_ge_{m}"] = {
                "answers": int(k.sum()), "share": round(float(k.mean()), 4), "copy_right": round(float((copy[k] == y[k]).mean()), 4),
                "answer_right": round(float(y[k].mean()), 4), "copy_says_change": int(says_flip.sum()),
                "then_right": round(float((copy[says_flip] == y[says_flip]).mean()), 4),
                "change_when_copy_says_same": round(float((y[k & ~says_flip] != last[k & ~says_flip]).mean()), 4),
            }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
