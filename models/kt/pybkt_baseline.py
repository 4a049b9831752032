"""The baseline for the knowledge-tracing benchmark: pyBKT fitted on the same training split.

    PYTHONPATH=. <venv with pyBKT>/bin/python -m models.kt.pybkt_baseline --out preds.json

pyBKT 1.4 needs numpy<2, pandas<2.3, scikit-learn<1.6, so it runs in a virtual
environment of its own (``tests/bench/bench_learning.py`` makes one) and hands
its predictions back as JSON: for the original test split and for the test split
with consecutive duplicate rows removed, one probability per (student, step).
Test rows whose skill never occurs in training are left out (pyBKT has no
parameters for them); the benchmark scores both models on the same rows.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
from pyBKT.models import Model

from models.kt.dataset import DEFAULT_DIR, TEST_FILE, TRAIN_FILE, Sequence, dedup_consecutive, read_split


def frame(seqs: list[Sequence], skills: set[int] | None = None) -> pd.DataFrame:
    rows = []
    order = 0
    for i, s in enumerate(seqs):
        for t, (k, c) in enumerate(zip(s.skills.tolist(), s.correct.tolist(), strict=True)):
            order += 1
            if skills is None or k in skills:
                rows.append((f"u{i}", str(k), int(c), order, i, t))
    return pd.DataFrame(rows, columns=["user_id", "skill_name", "correct", "order_id", "student", "step"])


def predict(model: Model, seqs: list[Sequence], skills: set[int]) -> list[list[float]]:
    df = frame(seqs, skills)
    out = model.predict(data=df)
    merged = df[["order_id", "student", "step"]].merge(out[["order_id", "correct_predictions"]], on="order_id")
    return merged[["student", "step", "correct_predictions"]].values.tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description="pyBKT baseline predictions on the DKT split")
    ap.add_argument("--data", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    train = read_split(args.data / TRAIN_FILE)
    test = read_split(args.data / TEST_FILE)
    seen = {int(k) for s in train for k in set(s.skills.tolist())}
    t0 = time.time()
    model = Model(seed=args.seed, num_fits=1)
    model.fit(data=frame(train))
    fit_s = time.time() - t0
    result = {
        "fit_seconds": round(fit_s, 1),
        "skills_seen": sorted(seen),
        "test": predict(model, test, seen),
        "test_dedup": predict(model, dedup_consecutive(test), seen),
    }
    args.out.write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
