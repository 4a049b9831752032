"""Choose the members of an ensemble on the validation students only (never the test file).

    .venv/bin/python -m models.kt.select --candidates runs/*/checkpoint.pt --max-members 4 --out selection.json

Every candidate is a ``train.py`` checkpoint trained on the fit students of the same
validation split (``--split-seed``). Each candidate's next-answer logits on the validation
students are computed once; an ensemble's score is the AUC of the members' mean logit
(what ``ensemble.EnsembleStep`` computes in one step). Greedy forward selection: start from
the best single network, add the candidate that raises the AUC most, stop at
``--max-members`` or when nothing helps by ``--min-gain``. Every pair is scored too, so
the record shows how far the chosen set is from the alternatives. The record (``--out``)
is what ``ensemble.py --selection`` copies into the manifest.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import torch

from models.kt.dataset import DEFAULT_DIR, TRAIN_FILE, auc, read_split
from models.kt.ensemble import load_member, member_logits
from models.kt.train import split_validation


def _score(z: list[np.ndarray], y: np.ndarray) -> float:
    return auc(np.mean(z, 0), y)  # AUC is rank-based: the mean logit needs no sigmoid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", type=Path, nargs="+", required=True, help="checkpoint.pt files of train.py validation runs")
    ap.add_argument("--data", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--num-skills", type=int, default=124)
    ap.add_argument("--split-seed", type=int, default=7)
    ap.add_argument("--max-members", type=int, default=4)
    ap.add_argument("--min-gain", type=float, default=0.0, help="stop adding members when the validation AUC rises by less than this")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="write the selection record here (JSON)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train = read_split(args.data / TRAIN_FILE)
    _, val = split_validation(train, args.split_seed)
    val_idx = [i for i, _ in split_validation(list(enumerate(train)), args.split_seed)[1]]  # type: ignore[arg-type]
    names = [p.parent.name for p in args.candidates]
    logits: dict[str, np.ndarray] = {}
    epochs: dict[str, int] = {}
    y = np.empty(0)
    for name, path in zip(names, args.candidates, strict=True):
        saved = torch.load(path)
        if saved.get("args", {}).get("all_students"):
            raise SystemExit(f"{path}: trained on every student, it has no validation students")
        epochs_seen = [h for h in saved["history"] if h.get("val_auc") is not None and "epoch" in h]
        if saved.get("args", {}).get("average"):
            best = max(epochs_seen, key=lambda h: h["val_auc"])
        else:
            # Written at its best epoch, so the history ends there (the rounded AUCs can tie with an earlier epoch).
            best = epochs_seen[-1]
        epochs[name] = int(best["epoch"])
        logits[name], y = member_logits(load_member(path, args.num_skills), val, args.num_skills)
    singles = {n: round(_score([logits[n]], y), 4) for n in names}
    print(json.dumps({"single": singles, "best_epoch": epochs}), flush=True)
    pairs = sorted(((round(_score([logits[a], logits[b]], y), 4), a, b) for a, b in itertools.combinations(names, 2)), reverse=True)
    print(json.dumps({"best_pairs": [list(p) for p in pairs[:8]]}), flush=True)
    every = round(_score([logits[n] for n in names], y), 4)  # no selection at all: a check on the greedy set's optimism
    print(json.dumps({"all_candidates": every}), flush=True)
    chosen = [max(names, key=lambda n: singles[n])]
    path_record = [{"members": list(chosen), "val_auc": singles[chosen[0]]}]
    while len(chosen) < args.max_members:
        current = _score([logits[n] for n in chosen], y)
        gains = {n: _score([logits[m] for m in chosen] + [logits[n]], y) for n in names if n not in chosen}
        if not gains:
            break
        nxt = max(gains, key=lambda n: gains[n])
        if gains[nxt] - current <= args.min_gain:
            break
        chosen.append(nxt)
        path_record.append({"members": list(chosen), "val_auc": round(gains[nxt], 4)})
        print(json.dumps(path_record[-1]), flush=True)
    record = {
        "method": f"greedy forward selection of networks by the validation AUC of their mean logit (split seed {args.split_seed}, "
                  f"{len(val)} validation students, {len(y)} next answers); the test file was not read",
        "candidates": {n: {"val_auc": singles[n], "best_epoch": epochs[n]} for n in names},
        "best_pairs": [{"members": [a, b], "val_auc": s} for s, a, b in pairs[:5]],
        "all_candidates_val_auc": every,
        "greedy": path_record,
        "chosen": chosen,
        "validation_students": {"split": f"train.split_validation(seed {args.split_seed})", "index_of": "0-based position among the students of "
                                "builder_train.csv with >= 2 answers, in file order", "indices": sorted(val_idx)},
    }
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
