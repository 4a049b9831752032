"""Reading the DKT split of ASSISTments 2009 (``builder_train.csv``/``builder_test.csv``).

Every student takes three lines: the number of responses, the skill ids, the
correctness flags (both comma separated, a trailing comma allowed). Pure Python
and numpy so the benchmark can read it without the training dependencies.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_DIR = Path(os.environ.get("KT_DATA_DIR", Path(__file__).resolve().parents[3] / "shared" / "data" / "kt" / "assistments2009_dkt"))
TRAIN_FILE = "builder_train.csv"
TEST_FILE = "builder_test.csv"


@dataclass(frozen=True)
class Sequence:
    skills: np.ndarray  # int64, 0-based skill ids
    correct: np.ndarray  # int64, 0/1


def _ints(line: str) -> list[int]:
    return [int(x) for x in line.strip().split(",") if x.strip() != ""]


def read_split(path: Path | str, min_len: int = 2) -> list[Sequence]:
    """All students of one file with at least ``min_len`` responses (the DKT loader drops shorter ones)."""
    lines = Path(path).read_text(encoding="ascii").splitlines()
    if len(lines) % 3:
        raise ValueError(f"{path}: {len(lines)} lines is not a multiple of 3")
    out: list[Sequence] = []
    for i in range(0, len(lines), 3):
        n = int(lines[i].strip())
        skills, correct = _ints(lines[i + 1]), _ints(lines[i + 2])
        if len(skills) != n or len(correct) != n:
            raise ValueError(f"{path}:{i + 1}: length {n} but {len(skills)} skills and {len(correct)} flags")
        if n >= min_len:
            out.append(Sequence(np.asarray(skills, dtype=np.int64), np.asarray(correct, dtype=np.int64)))
    return out


def dedup_consecutive(seqs: list[Sequence]) -> list[Sequence]:
    """Drop a row when it repeats the previous row's (skill, correct) pair for the same student."""
    out = []
    for s in seqs:
        keep = np.ones(len(s.skills), dtype=bool)
        keep[1:] = (s.skills[1:] != s.skills[:-1]) | (s.correct[1:] != s.correct[:-1])
        if keep.sum() >= 2:
            out.append(Sequence(s.skills[keep], s.correct[keep]))
    return out


def num_skills(*splits: list[Sequence]) -> int:
    return int(max(int(s.skills.max()) for split in splits for s in split)) + 1


def next_step_pairs(seqs: list[Sequence]) -> Iterator[tuple[int, int, int, int]]:
    """(student index, step t, skill at t+1, correct at t+1): what a model predicts after step t."""
    for i, s in enumerate(seqs):
        for t in range(len(s.skills) - 1):
            yield i, t, int(s.skills[t + 1]), int(s.correct[t + 1])


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count one half)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties.
    _, start, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = start + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both classes")
    return float((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
