"""Train the knowledge-tracing model offline and export it for the hub.

    /work/venvs/train/bin/python -m models.kt.train --out models/kt

Deep Knowledge Tracing (Piech et al. 2015): an LSTM reads each answer as one
token (skill, correct) and predicts, for every skill, the probability that the
next answer on it is correct. Trained on ``builder_train.csv`` of the DKT split
only; ``builder_test.csv`` is used once, for the figures in the manifest.

Training runs the way the hub runs the model: each student's whole history in
order, with the recurrent state carried from one chunk to the next (truncated
back-propagation), so the exported one-step model sees the same kind of state
on the hub as in training.

Exports ``dkt-<version>.onnx``: ONE step, inputs ``skill`` [B] int64,
``correct`` [B] int64, ``h``/``c`` [B, H] float32; outputs ``p`` [B, K] (mastery:
probability of a correct next answer per skill) and the new ``h_out``/``c_out``.
Also fits a pooled BKT (one parameter set for all skills) on the same
training split: the hub's fallback for knowledge points the network never saw.

Needs torch (CPU build), onnx, onnxruntime; never imported by the hub or the tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.kt.dataset import DEFAULT_DIR, TEST_FILE, TRAIN_FILE, Sequence, auc, dedup_consecutive, read_split
from models.kt.features import (
    ALIGN,
    ALIGN_RAW,
    ALIGNED_FEATURES,
    FAST,
    FEATURES,
    GLOBAL,
    GLOBAL_RAW,
    RAW,
    RICH_FEATURES,
    RICH_RAW,
    SLOW,
    WINDOW,
    sequence_features,
)


class DKT(nn.Module):
    """LSTM over (skill, correct) tokens; with ``features``, also the per-skill counts of ``features.py``:
    the counts of the skill just answered go into the LSTM input, and every skill's own counts
    add to that skill's output logit (weights shared plus a per-skill correction), and the answer just
    given adds a learnt amount to every skill's logit directly (a split row is often one of several rows
    of the same problem tagged with several skills: the LSTM need not learn to carry that)."""

    def __init__(self, num_skills: int, hidden: int, dropout: float, use_features: bool = False, head: int = 0, rich: bool = False,
                 aligned: bool = False) -> None:
        super().__init__()
        self.num_skills = num_skills
        self.hidden = hidden
        self.use_features = use_features
        self.rich = rich
        self.aligned = aligned
        nf = ALIGNED_FEATURES if aligned else RICH_FEATURES if rich else FEATURES
        self.embed = nn.Embedding(2 * num_skills, hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_skills)
        if use_features:
            self.feat_in = nn.Linear(nf, hidden)
            self.feat_w = nn.Parameter(torch.zeros(nf))
            self.feat_v = nn.Embedding(num_skills, nf)
            nn.init.zeros_(self.feat_v.weight)
            self.skip = nn.Embedding(2 * num_skills, num_skills)
            nn.init.zeros_(self.skip.weight)
        # head > 0: a small MLP per skill over (the student's state, the skill, the skill's counts), so the
        # prediction for skill k can depend on k's own history non-linearly (e.g. "wrong last time, after a
        # long right streak"). Written as sums so the exported step computes all skills with one broadcast.
        self.head = head
        if head:
            self.head_h = nn.Linear(hidden, head)
            self.head_k = nn.Embedding(num_skills, head)
            self.head_f = nn.Linear(nf, head, bias=False) if use_features else None
            self.head_out = nn.Linear(head, 1, bias=False)
            nn.init.zeros_(self.head_out.weight)

    @property
    def state_widths(self) -> tuple[int, int]:
        """Widths of the hub's two state vectors: h, and c (LSTM cell, then the raw per-skill counts)."""
        if not self.use_features:
            return self.hidden, self.hidden
        if self.rich:
            return self.hidden, self.hidden + self.num_skills * RICH_RAW + GLOBAL_RAW + (self.num_skills * ALIGN + ALIGN_RAW if self.aligned else 0)
        return self.hidden, self.hidden + self.num_skills * RAW

    def forward(self, tokens: torch.Tensor, fcur: torch.Tensor | None, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        x = self.embed(tokens)
        if self.use_features:
            x = x + self.feat_in(fcur)
        y, state = self.lstm(x, state)
        self._y = self.drop(y)  # read by next_logit/all_logits (the head needs the hidden outputs)
        logits = self.out(self._y)
        if self.use_features:
            logits = logits + self.skip(tokens)
        return logits, state

    def next_logit(self, logits: torch.Tensor, nskill: torch.Tensor, fnext: torch.Tensor | None) -> torch.Tensor:
        picked = logits.gather(2, nskill.unsqueeze(2)).squeeze(2)
        if self.use_features:
            picked = picked + (fnext * (self.feat_w + self.feat_v(nskill))).sum(-1)
        if self.head:
            z = self.head_h(self._y) + self.head_k(nskill)
            if self.head_f is not None:
                z = z + self.head_f(fnext)
            picked = picked + self.head_out(torch.relu(z)).squeeze(-1)
        return picked


def _torch_features(n: torch.Tensor, c: torch.Tensor, last: torch.Tensor, streak: torch.Tensor, gap: torch.Tensor, just: torch.Tensor, sign: torch.Tensor
                    ) -> torch.Tensor:
    """``features.features`` in torch, for the exported graph."""
    seen = (n > 0).to(torch.float32)
    return torch.stack(
        [torch.log1p(n), torch.log1p(c), torch.log1p(n - c), last, torch.sign(streak) * torch.log1p(streak.abs()), torch.log1p(gap) * seen, just, sign], dim=-1
    )


def _torch_rich(fast: torch.Tensor, slow: torch.Tensor, glob: torch.Tensor, skill: torch.Tensor, y: torch.Tensor, sign: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``features.rich_features`` for every skill ([B, K, ...]) after this answer, and the student's new global state
    (answers, right answers, moving average, last ``WINDOW`` skills + 1 and outcomes; ``features.GLOBAL_RAW`` wide)."""
    k = fast.shape[1]
    total = glob[:, 0:1] + 1
    right = glob[:, 1:2] + y
    overall = (1 - GLOBAL) * glob[:, 2:3] + GLOBAL * sign
    win_skill = torch.cat([(skill + 1).to(torch.float32).unsqueeze(1), glob[:, 3 : 2 + WINDOW]], dim=1)
    win_sign = torch.cat([sign, glob[:, 3 + WINDOW : 2 + 2 * WINDOW]], dim=1)
    ids = (torch.arange(k, dtype=torch.float32) + 1).view(1, k, 1)
    recent = win_sign.unsqueeze(1) * (win_skill.unsqueeze(1) == ids).to(torch.float32)  # [B, K, WINDOW]
    student = torch.cat([torch.log1p(total), (2 * right - total) / (total + 2), overall], dim=1).unsqueeze(1).expand(-1, k, 3)
    f = torch.cat([torch.stack([fast, slow], dim=-1), recent, student], dim=-1)
    return f, torch.cat([total, right, overall, win_skill, win_sign], dim=1)


def _slog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def _torch_aligned(outcomes: torch.Tensor, prevd: torch.Tensor, n_before: torch.Tensor, n: torch.Tensor, hot: torch.Tensor, sign: torch.Tensor,
                   last_before: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``features.aligned_features`` for every skill ([B, K, ALIGN_FEATURES]) after this answer, and the new aligned state.

    ``outcomes`` [B, K, ALIGN] every skill's first outcomes, ``prevd`` [B, 1] the previous distinct skill (id + 1),
    ``n_before``/``n`` [B, K] the answers per skill before and after this one, ``hot`` [B, K] the skill answered,
    ``last_before`` [B, 1] the skill answered before this one (id + 1, 0 = none). Only the run just answered is
    compared with the others (one row, not every pair); a skill not answered yet needs no comparison."""
    k = n.shape[1]
    pos = torch.arange(ALIGN, dtype=torch.float32)
    outcomes = outcomes + (hot * sign).unsqueeze(2) * (n_before.unsqueeze(2) == pos).to(torch.float32)
    sk1 = (hot * (torch.arange(k, dtype=torch.float32) + 1)).sum(1, keepdim=True)  # [B, 1]: the skill answered, id + 1
    prevd = torch.where((last_before != sk1) & (last_before > 0), last_before, prevd)
    mine = hot.unsqueeze(1) @ outcomes  # [B, 1, L]: the current run's outcomes
    p = (hot * n).sum(1, keepdim=True)  # [B, 1]: its length
    d = p - (mine @ outcomes.transpose(1, 2)).squeeze(1)  # [B, K]: twice the mismatches of k's run with it, where k's covers it
    valid = (n > p).to(torch.float32)  # (never the current run itself)
    at = (p.unsqueeze(2) == pos).to(torch.float32)  # [B, 1, L]: its next position
    vval = valid * (at @ outcomes.transpose(1, 2)).squeeze(1)  # [B, K]: k's outcome there, where k's run covers it
    exact = (d == 0).to(torch.float32)
    qi = (prevd - 1).clamp(min=0).to(torch.int64)
    vq = torch.gather(vval, 1, qi) * (prevd > 0).to(torch.float32)  # the run before the current one
    pm0 = vq * torch.gather(exact, 1, qi)
    first = outcomes[:, :, 0]
    # Sums over the other runs, for the current run and for a skill not answered yet (position 0, where every
    # earlier run agrees on no positions and the run before it is the current one): one reduction.
    terms = torch.stack([vval * exact, valid * exact, vval * (d == 2).to(torch.float32), first, (n > 0).to(torch.float32), hot * first], dim=2)
    vote0, cnt0, vote1, vnew, cnew, pnew = terms.sum(1).split(1, dim=1)
    sl = _slog(torch.cat([vote0, vote1, vnew], dim=1))
    lg = torch.log1p(torch.cat([cnt0, cnew, p], dim=1))
    lp = lg[:, 2:3]
    zero = torch.zeros_like(p)
    inr = (p < ALIGN).to(torch.float32)  # zero past the stored positions
    cur = torch.cat([sl[:, 0:1], lg[:, 0:1], sl[:, 1:2], pm0, vq - pm0, vote0 / cnt0.clamp(min=1.0) * lp, pm0 * lp], dim=1) * inr
    new = torch.cat([sl[:, 2:3], lg[:, 1:2], zero, pnew, zero, zero, zero], dim=1)
    f = torch.stack([hot, (n == 0).to(torch.float32)], dim=2) @ torch.stack([cur, new], dim=1)  # [B, K, F]
    return f, outcomes, prevd


class DKTStep(nn.Module):
    """The exported graph: one answer in, all skills' probabilities and the new state out."""

    def __init__(self, model: DKT) -> None:
        super().__init__()
        self.m = model

    def forward(self, skill: torch.Tensor, correct: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m = self.m
        token = (skill * 2 + correct).unsqueeze(1)
        if not m.use_features:
            logits, (h2, c2) = m(token, None, (h.unsqueeze(0), c.unsqueeze(0)))
            return torch.sigmoid(logits[:, 0, :]), h2[0], c2[0]
        k = m.num_skills
        width = RICH_RAW if m.rich else RAW
        raw = c[:, m.hidden : m.hidden + k * width].reshape(-1, k, width)
        n_before = raw[:, :, 0]
        n, cor, last, streak, gap = raw[:, :, 0], raw[:, :, 1], raw[:, :, 2], raw[:, :, 3], raw[:, :, 4]
        hot = nn.functional.one_hot(skill, k).to(torch.float32)
        y = correct.to(torch.float32).unsqueeze(1)
        sign = 2 * y - 1
        n = n + hot
        cor = cor + hot * y
        last = hot * sign + (1 - hot) * last
        grown = torch.where(y > 0, torch.where(streak > 0, streak + 1, torch.ones_like(streak)), torch.where(streak < 0, streak - 1, -torch.ones_like(streak)))
        streak = hot * grown + (1 - hot) * streak
        gap = (1 - hot) * (gap + 1)
        f_all = _torch_features(n, cor, last, streak, gap, hot, hot * sign)
        kept = [n, cor, last, streak, gap]
        if m.rich:
            fast = hot * ((1 - FAST) * raw[:, :, 5] + FAST * sign) + (1 - hot) * raw[:, :, 5]
            slow = hot * ((1 - SLOW) * raw[:, :, 6] + SLOW * sign) + (1 - hot) * raw[:, :, 6]
            kept += [fast, slow]
            g0 = m.hidden + k * width
            f_rich, glob = _torch_rich(fast, slow, c[:, g0 : g0 + GLOBAL_RAW], skill, y, sign)
            f_all = torch.cat([f_all, f_rich], dim=-1)
            if m.aligned:
                a0 = g0 + GLOBAL_RAW
                outcomes = c[:, a0 : a0 + k * ALIGN].reshape(-1, k, ALIGN)
                f_al, outcomes, prevd = _torch_aligned(outcomes, c[:, a0 + k * ALIGN :], n_before, n, hot, sign, c[:, g0 + 3 : g0 + 4])
                f_all = torch.cat([f_all, f_al], dim=-1)
                glob = torch.cat([glob, outcomes.reshape(-1, k * ALIGN), prevd], dim=1)
        f_cur = (f_all * hot.unsqueeze(2)).sum(1).unsqueeze(1)
        logits, (h2, c2) = m(token, f_cur, (h.unsqueeze(0), c[:, : m.hidden].unsqueeze(0)))
        logits = logits[:, 0, :] + (f_all * (m.feat_w + m.feat_v.weight)).sum(-1)
        if m.head:
            assert m.head_f is not None
            z = m.head_h(h2[0]).unsqueeze(1) + m.head_k.weight.unsqueeze(0) + m.head_f(f_all)
            logits = logits + m.head_out(torch.relu(z)).squeeze(-1)
        raw2 = torch.stack(kept, dim=-1).reshape(-1, k * width)
        if m.rich:
            return torch.sigmoid(logits), h2[0], torch.cat([c2[0], raw2, glob], dim=1)
        return torch.sigmoid(logits), h2[0], torch.cat([c2[0], raw2], dim=1)


@dataclass(frozen=True)
class Prepared:
    """One student's training arrays: input tokens, the next answer, per-skill counts (or None)."""

    tok: np.ndarray
    nskill: np.ndarray
    ncorr: np.ndarray
    fcur: np.ndarray | None
    fnext: np.ndarray | None


def prepare(seqs: list[Sequence], num_skills: int, use_features: bool, rich: bool = False, aligned: bool = False) -> list[Prepared]:
    out = []
    for s in seqs:
        fcur, fnext = sequence_features(s.skills, s.correct, num_skills, rich, aligned) if use_features else (None, None)
        out.append(Prepared(s.skills * 2 + s.correct, s.skills[1:], s.correct[1:].astype(np.float32), fcur, fnext))
    return out


def _batches(seqs: list[Prepared], batch: int, shuffle: bool) -> list[list[Prepared]]:
    # Students of similar length together: little padding, whole histories kept.
    order = sorted(seqs, key=lambda s: len(s.tok))
    groups = [order[i : i + batch] for i in range(0, len(order), batch)]
    if shuffle:
        random.shuffle(groups)
    return groups


def _pad(group: list[Prepared]) -> dict[str, torch.Tensor]:
    n = max(len(s.tok) for s in group)
    b = len(group)
    arr = {"tok": np.zeros((b, n), dtype=np.int64), "nskill": np.zeros((b, n), dtype=np.int64),
           "ncorr": np.zeros((b, n), dtype=np.float32), "mask": np.zeros((b, n), dtype=np.float32)}
    feats = group[0].fcur is not None
    if feats:
        nf = group[0].fcur.shape[1]
        arr["fcur"] = np.zeros((b, n, nf), dtype=np.float32)
        arr["fnext"] = np.zeros((b, n, nf), dtype=np.float32)
    for i, s in enumerate(group):
        k = len(s.tok)
        arr["tok"][i, :k] = s.tok
        arr["nskill"][i, : k - 1] = s.nskill
        arr["ncorr"][i, : k - 1] = s.ncorr
        arr["mask"][i, : k - 1] = 1.0
        if feats:
            arr["fcur"][i, :k] = s.fcur
            arr["fnext"][i, :k] = s.fnext
    return {key: torch.from_numpy(v) for key, v in arr.items()}


def run_epoch(model: DKT, seqs: list[Prepared], batch: int, chunk: int, opt: torch.optim.Optimizer | None) -> tuple[float, np.ndarray, np.ndarray]:
    training = opt is not None
    model.train(training)
    total, count = 0.0, 0.0
    scores: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for group in _batches(seqs, batch, shuffle=training):
        d = _pad(group)
        state = (torch.zeros(1, len(group), model.hidden), torch.zeros(1, len(group), model.hidden))
        for t0 in range(0, d["tok"].shape[1], chunk):
            sl = slice(t0, t0 + chunk)
            m = d["mask"][:, sl]
            if m.sum() == 0:
                break
            fcur = d["fcur"][:, sl] if "fcur" in d else None
            fnext = d["fnext"][:, sl] if "fnext" in d else None
            with torch.set_grad_enabled(training):
                logits, state = model(d["tok"][:, sl], fcur, state)
                picked = model.next_logit(logits, d["nskill"][:, sl], fnext)
                loss = (nn.functional.binary_cross_entropy_with_logits(picked, d["ncorr"][:, sl], reduction="none") * m).sum()
            if training:
                opt.zero_grad()
                (loss / m.sum()).backward()
                nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                opt.step()
                state = (state[0].detach(), state[1].detach())
            else:
                sel = m.bool()
                scores.append(torch.sigmoid(picked[sel]).numpy())
                labels.append(d["ncorr"][:, sl][sel].numpy())
            total += float(loss.detach())
            count += float(m.sum())
    if training:
        return total / count, np.empty(0), np.empty(0)
    return total / count, np.concatenate(scores), np.concatenate(labels)


def _bkt_nll(params: np.ndarray, obs: np.ndarray, mask: np.ndarray) -> float:
    """Negative log-likelihood of pooled BKT (prior, learn, guess, slip) on [N, T] answer runs."""
    prior, learn, guess, slip = params
    p = np.full(obs.shape[0], prior)
    nll = 0.0
    # Candidates at the edges (a parameter of ~0 or ~1) overflow here; their NaN likelihood loses every comparison.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for t in range(obs.shape[1]):
            o, m = obs[:, t], mask[:, t]
            pc = np.clip(p * (1 - slip) + (1 - p) * guess, 1e-9, 1 - 1e-9)
            nll -= float((m * np.where(o > 0, np.log(pc), np.log(1 - pc))).sum())
            post = np.where(o > 0, p * (1 - slip) / pc, p * slip / (1 - pc))
            p = np.where(m > 0, post + (1 - post) * learn, p)
    return nll


def fit_pooled_bkt(seqs: list[Sequence], max_len: int = 200) -> dict[str, float]:
    """One BKT parameter set for all skills: maximum likelihood by a shrinking coordinate search.

    No gradients: the earlier autograd fit went to NaN on the whole split (an infinite value in
    the branch of a where() not taken), and 4 parameters need only a few hundred likelihood passes.
    """
    subs: list[np.ndarray] = []
    for s in seqs:
        for k in np.unique(s.skills):
            subs.append(s.correct[s.skills == k][:max_len])
    n = max(len(x) for x in subs)
    obs = np.zeros((len(subs), n), dtype=np.float64)
    mask = np.zeros((len(subs), n), dtype=np.float64)
    for i, x in enumerate(subs):
        obs[i, : len(x)] = x
        mask[i, : len(x)] = 1
    # Logits of prior, learn, 2*guess, 2*slip (guess, slip < 0.5 keeps the model identifiable).
    def params(z: np.ndarray) -> np.ndarray:
        q = 1 / (1 + np.exp(-z))
        return np.array([q[0], q[1], q[2] * 0.5, q[3] * 0.5])

    z = np.array([-1.0, -2.0, -1.5, -2.0])
    best = _bkt_nll(params(z), obs, mask)
    step = 1.0
    while step > 0.01:
        improved = False
        for i in range(4):
            for d in (step, -step):
                cand = z.copy()
                cand[i] += d
                f = _bkt_nll(params(cand), obs, mask)
                if f < best:
                    z, best, improved = cand, f, True
                    break
        if not improved:
            step /= 2
    prior, learn, guess, slip = params(z).tolist()
    return {"prior": round(prior, 4), "learn": round(learn, 4), "guess": round(guess, 4), "slip": round(slip, 4)}


def export_onnx(model: DKT, path: Path) -> None:
    export_step(DKTStep(model).eval(), path, model.state_widths)


def export_step(step: nn.Module, path: Path, widths: tuple[int, int]) -> None:
    """Export a one-step module (``DKTStep``, ``ensemble.EnsembleStep``) whose state is ``h``/``c`` of these widths."""
    hw, cw = widths
    args = (torch.zeros(2, dtype=torch.int64), torch.ones(2, dtype=torch.int64), torch.zeros(2, hw), torch.zeros(2, cw))
    torch.onnx.export(
        step,
        args,
        str(path),
        input_names=["skill", "correct", "h", "c"],
        output_names=["p", "h_out", "c_out"],
        dynamic_axes={name: {0: "batch"} for name in ("skill", "correct", "h", "c", "p", "h_out", "c_out")},
        opset_version=17,
        dynamo=False,
    )


def _session(path: Path) -> tuple[Any, int, int]:
    """An onnxruntime session (imported here: exporting needs only torch) and the widths of h and c."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    widths = {i.name: i.shape[-1] for i in sess.get_inputs()}
    return sess, widths["h"], widths["c"]


def onnx_scores(path: Path, seqs: list[Sequence]) -> tuple[np.ndarray, np.ndarray]:
    """Next-answer predictions from the exported file, stepped one answer at a time as on the hub."""
    sess, hw, cw = _session(path)
    # All students advance together (batch = students still active at step t).
    n = max(len(s.skills) for s in seqs)
    h = np.zeros((len(seqs), hw), dtype=np.float32)
    c = np.zeros((len(seqs), cw), dtype=np.float32)
    lens = np.array([len(s.skills) for s in seqs])
    sk = np.zeros((len(seqs), n), dtype=np.int64)
    co = np.zeros((len(seqs), n), dtype=np.int64)
    for i, s in enumerate(seqs):
        sk[i, : lens[i]] = s.skills
        co[i, : lens[i]] = s.correct
    scores, labels = [], []
    for t in range(n - 1):
        act = np.nonzero(lens > t + 1)[0]
        p, h2, c2 = sess.run(None, {"skill": sk[act, t], "correct": co[act, t], "h": h[act], "c": c[act]})
        h[act], c[act] = h2, c2
        scores.append(p[np.arange(len(act)), sk[act, t + 1]])
        labels.append(co[act, t + 1])
    return np.concatenate(scores), np.concatenate(labels)


def golden_case(path: Path) -> dict[str, object]:
    """A fixed input and what this file gives for it: the hub checks a new file reproduces it.

    The input visits every (skill, correct) token once, so a change to any weight
    shows in the trace (mean probability after each step) or the final probabilities.
    """
    sess, hw, cw = _session(path)
    num_skills = sess.get_outputs()[0].shape[-1]
    tokens = list(range(2 * num_skills))
    random.Random(2009).shuffle(tokens)
    skills, correct = [t // 2 for t in tokens], [t % 2 for t in tokens]
    h = np.zeros((1, hw), dtype=np.float32)
    c = np.zeros((1, cw), dtype=np.float32)
    trace = []
    for s, k in zip(skills, correct, strict=True):
        p, h, c = sess.run(None, {"skill": np.array([s]), "correct": np.array([k]), "h": h, "c": c})
        trace.append(round(float(p.mean()), 6))
    return {"skills": skills, "correct": correct, "p": [round(float(x), 6) for x in p[0]], "trace": trace, "tolerance": 1e-4}


def refresh_golden(manifest_path: Path) -> None:
    """Recompute the golden case and hash of an exported model (after a change of the check's format)."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    onnx_path = manifest_path.parent / manifest["file"]
    manifest["sha256"] = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    manifest["golden"] = golden_case(onnx_path)
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def bkt_fallback(train: list[Sequence]) -> dict[str, object]:
    bkt: dict[str, object] = dict(fit_pooled_bkt(train))
    bkt["fitted_on"] = f"pooled over skills, all {len(train)} students of builder_train.csv with >= 2 answers (first 200 answers per student and skill)"
    return bkt


def refit_bkt(manifest_path: Path, data: Path) -> None:
    """Refit only the BKT fallback of a manifest on the whole training split (the network is untouched)."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["bkt_fallback"] = bkt_fallback(read_split(data / TRAIN_FILE))
    print(json.dumps({"pooled_bkt": manifest["bkt_fallback"]}), flush=True)
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def split_validation(train: list[Sequence], seed: int) -> tuple[list[Sequence], list[Sequence]]:
    """Model selection on 10 % of the training students; the test split is not looked at until the end."""
    idx = list(range(len(train)))
    random.Random(seed).shuffle(idx)
    n_val = len(train) // 10
    return [train[i] for i in idx[n_val:]], [train[i] for i in idx[:n_val]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--refresh-golden", type=Path, help="only recompute the golden case of this manifest")
    ap.add_argument("--refit-bkt", type=Path, help="only refit the BKT fallback of this manifest on the whole training split")
    ap.add_argument("--from-checkpoint", type=Path, help="export and evaluate the best weights of a stopped run (same --hidden, --features)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--version", default="dkt-1")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--features", action="store_true", help="feed the per-skill answer counts of features.py (state grows by 4 floats per skill)")
    ap.add_argument("--rich", action="store_true",
                    help="also the moving averages, the recent pattern per skill and the student's totals of features.py (needs --features)")
    ap.add_argument("--aligned", action="store_true",
                    help="also the aligned-run features of features.py: votes of earlier runs that agree with the current one "
                         "position by position (needs --rich; state grows by ALIGN floats per skill)")
    ap.add_argument("--head", type=int, default=0, help="width of the per-skill MLP output head (0: linear output only; needs --features)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--patience", type=int, default=3, help="stop after this many epochs without a better validation AUC")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--lr-decay", type=float, default=0.8, help="learning rate factor after every epoch")
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--weight-decay", type=float, default=0.0, help="AdamW decoupled weight decay (0: plain Adam)")
    ap.add_argument("--cosine", action="store_true", help="cosine learning-rate schedule over --epochs instead of --lr-decay")
    ap.add_argument("--average", type=int, default=0,
                    help="after training, also try the mean weights of 2..N consecutive epochs' snapshots (checkpoint averaging, "
                         "one model at inference); the window with the best validation AUC wins if it beats the best single epoch")
    ap.add_argument("--num-skills", type=int, default=124, help="skill ids 0..K-1 (124 covers both files)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--split-seed", type=int, help="seed of the validation split (default: --seed); keep it fixed to compare runs of other seeds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--all-students", action="store_true",
                    help="train on every training student (no validation, no early stop: the weights after --epochs are kept); "
                         "for the final model, with the configuration and epoch count chosen on the validation students")
    ap.add_argument("--no-test", action="store_true", help="train and checkpoint only (model selection); no export, no test figures")
    args = ap.parse_args()
    if args.refresh_golden:
        refresh_golden(args.refresh_golden)
        return
    if args.refit_bkt:
        torch.set_num_threads(args.threads)
        refit_bkt(args.refit_bkt, args.data)
        return
    if (args.head or args.rich) and not args.features:
        ap.error("--head and --rich need --features")
    if args.aligned and not args.rich:
        ap.error("--aligned needs --rich")
    if args.all_students and args.average:
        ap.error("--average chooses on the validation students; --all-students has none")

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(args.threads)
    train = read_split(args.data / TRAIN_FILE)
    fit, val = split_validation(train, args.seed if args.split_seed is None else args.split_seed)
    if args.all_students:
        # The configuration and epoch count were chosen on the validation students; now they train too.
        fit, val = train, []
    model = DKT(args.num_skills, args.hidden, args.dropout, args.features, args.head, args.rich, args.aligned)
    if args.from_checkpoint:
        saved = torch.load(args.from_checkpoint)
        model.load_state_dict(saved["state"])
        model.eval()
        finish(model, args, saved["history"], saved["seconds"], len(fit), len(val), train)
        return

    fit_p = prepare(fit, args.num_skills, args.features, args.rich, args.aligned)
    val_p = prepare(val, args.num_skills, args.features, args.rich, args.aligned)
    opt = (torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay) if args.weight_decay
           else torch.optim.Adam(model.parameters(), lr=args.lr))
    best, best_state, history = -1.0, None, []
    snapshots: list[dict[str, torch.Tensor]] = []
    t_start = time.time()
    for epoch in range(args.epochs):
        t0 = time.time()
        loss, _, _ = run_epoch(model, fit_p, args.batch, args.chunk, opt)
        if args.all_students:
            val_auc = float(epoch)  # no validation: the last epoch is kept
        else:
            _, s, y = run_epoch(model, val_p, 64, 1000, None)
            val_auc = auc(s, y)
        history.append({"epoch": epoch + 1, "train_loss": round(loss, 4), "val_auc": None if args.all_students else round(val_auc, 4),
                        "s": round(time.time() - t0, 1)})
        print(json.dumps(history[-1]), flush=True)
        if args.average:
            snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
            args.out.mkdir(parents=True, exist_ok=True)
            torch.save(snapshots, args.out / "snapshots.pt")
        if val_auc > best:
            best, best_state = val_auc, {k: v.clone() for k, v in model.state_dict().items()}
            # The best weights so far survive a stopped run: --from-checkpoint exports them.
            args.out.mkdir(parents=True, exist_ok=True)
            torch.save({"state": best_state, "history": history, "seconds": time.time() - t_start, "args": _args_record(args)}, args.out / "checkpoint.pt")
        elif epoch + 1 - max(h["epoch"] for h in history if h["val_auc"] == round(best, 4)) >= args.patience:  # never with --all-students
            print(json.dumps({"early_stop": epoch + 1, "best_val_auc": round(best, 4)}), flush=True)
            break
        for g in opt.param_groups:
            g["lr"] = 0.5 * args.lr * (1 + math.cos(math.pi * (epoch + 1) / args.epochs)) if args.cosine else g["lr"] * args.lr_decay
    assert best_state is not None
    if args.average:
        best_state, best, history = average_snapshots(model, snapshots, val_p, best_state, best, history, args)
        torch.save({"state": best_state, "history": history, "seconds": time.time() - t_start}, args.out / "checkpoint.pt")
    if args.no_test:
        return
    model.load_state_dict(best_state)
    model.eval()
    finish(model, args, history, time.time() - t_start, len(fit), len(val), train)


def _args_record(args: argparse.Namespace) -> dict[str, Any]:
    """The run's command-line settings, kept in its checkpoint (``ensemble.py`` writes them into the manifest)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def average_snapshots(model: DKT, snapshots: list[dict[str, torch.Tensor]], val_p: list[Prepared], best_state: dict[str, torch.Tensor],
                      best: float, history: list[dict[str, Any]], args: argparse.Namespace
                      ) -> tuple[dict[str, torch.Tensor], float, list[dict[str, Any]]]:
    """Checkpoint averaging: the mean weights of epochs i..j (2 <= j-i+1 <= --average), scored on the validation students.

    Still one network at inference (no per-answer cost); the averaged weights replace the best single epoch
    only if their validation AUC is higher. Every window tried is printed and added to the history."""
    chosen, chosen_auc = best_state, best
    best_epoch = max(h["epoch"] for h in history if h.get("val_auc") == round(best, 4))
    for j in range(max(0, best_epoch - 2), len(snapshots)):  # windows ending near or after the best epoch
        for w in range(2, args.average + 1):
            i = j - w + 1
            if i < 0:
                continue
            mean = {k: torch.stack([snapshots[e][k].float() for e in range(i, j + 1)]).mean(0).to(snapshots[j][k].dtype) for k in snapshots[j]}
            model.load_state_dict(mean)
            _, s, y = run_epoch(model, val_p, 64, 1000, None)
            a = auc(s, y)
            history.append({"average_epochs": [i + 1, j + 1], "val_auc": round(a, 4)})
            print(json.dumps(history[-1]), flush=True)
            if a > chosen_auc:
                chosen, chosen_auc = mean, a
    print(json.dumps({"chosen_val_auc": round(chosen_auc, 4), "averaged": chosen is not best_state}), flush=True)
    return chosen, chosen_auc, history


def finish(model: DKT, args: argparse.Namespace, history: list[dict[str, float]], train_s: float, n_fit: int, n_val: int, train: list[Sequence]) -> None:
    """Export the trained network, evaluate the exported file on the test split (once), write the manifest."""

    test = read_split(args.data / TEST_FILE)
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / f"{args.version}.onnx"
    export_onnx(model, onnx_path)
    _, st, yt = run_epoch(model, prepare(test, args.num_skills, model.use_features, model.rich, model.aligned), 64, 1000, None)
    test_auc, dedup_auc, n_predictions = evaluate_exported(onnx_path, test, st, yt)
    bkt = bkt_fallback(train)
    print(json.dumps({"pooled_bkt": bkt}), flush=True)

    state_doc = f"LSTM cell ({model.hidden})"
    if model.use_features:
        state_doc += ", then " + counts_layout(args.num_skills, model.rich, model.aligned)
    architecture = "DKT (LSTM), one step per answer"
    if model.use_features:
        architecture += ", plus per-skill answer counts" + (", moving averages, recent pattern and the student's totals" if model.rich else "")
        architecture += ", aligned earlier runs' outcomes" if model.aligned else ""
        architecture += " in the state (features.py)"
    write_manifest(
        args, onnx_path, model.state_widths,
        architecture=architecture,
        hidden=args.hidden, c_layout=state_doc, n_fit=n_fit, n_val=n_val,
        training={
            "hyperparameters": {
                k: getattr(args, k) for k in ("hidden", "features", "rich", "aligned", "head", "epochs", "patience", "batch", "chunk", "lr", "lr_decay",
                                               "dropout", "seed", "split_seed", "weight_decay", "cosine", "average", "all_students")
            },
            "history": history,
            "seconds": round(train_s, 1),
        },
        evaluation=(test_auc, dedup_auc, n_predictions), bkt=bkt,
    )


def counts_layout(num_skills: int, rich: bool, aligned: bool = False) -> str:
    """What follows the LSTM cell(s) in ``c``, for the manifest."""
    if not rich:
        return f"per skill: attempts, correct, last outcome, signed streak, answers since ({num_skills} x {RAW})"
    if aligned:
        return counts_layout(num_skills, rich) + (f"; then per skill its first {ALIGN} outcomes as +1/-1, 0 = none yet ({num_skills} x {ALIGN}), "
                                                   f"and the previous distinct skill answered, id + 1 ({ALIGN_RAW})")
    return (f"per skill: attempts, correct, last outcome, signed streak, answers since, fast and slow moving average of its outcomes "
            f"({num_skills} x {RICH_RAW}); then the student's answers, right answers, moving average of all outcomes, "
            f"the last {WINDOW} answers' skill ids + 1 and their outcomes as +1/-1 ({GLOBAL_RAW})")


def evaluate_exported(onnx_path: Path, test: list[Sequence], torch_scores: np.ndarray, torch_labels: np.ndarray) -> tuple[float, float, int]:
    """Test AUC of the exported file (also with consecutive duplicates removed) and how many predictions it made.

    Prints the trained network's own AUC beside it: the exported file must give what the network gives."""
    s, y = onnx_scores(onnx_path, test)
    test_auc = auc(s, y)
    print(json.dumps({"test_auc_torch": round(auc(torch_scores, torch_labels), 4),
                      "max_abs_diff": float(np.abs(np.sort(torch_scores) - np.sort(s)).max())}), flush=True)
    s2, y2 = onnx_scores(onnx_path, dedup_consecutive(test))
    dedup_auc = auc(s2, y2)
    print(json.dumps({"test_auc_onnx": round(test_auc, 4), "test_auc_dedup": round(dedup_auc, 4)}), flush=True)
    if not math.isfinite(test_auc):
        raise SystemExit("evaluation failed")
    return test_auc, dedup_auc, int(len(y))


def write_manifest(args: argparse.Namespace, onnx_path: Path, widths: tuple[int, int], *, architecture: str, hidden: int, c_layout: str,
                   n_fit: int, n_val: int, training: dict[str, Any], evaluation: tuple[float, float, int], bkt: dict[str, float]) -> None:
    """The manifest the hub verifies and loads beside the exported file."""
    hw, cw = widths
    test_auc, dedup_auc, n_predictions = evaluation
    blob = onnx_path.read_bytes()
    manifest = {
        "format": "classroom-hub.kt-model",
        "schema": 1,
        "version": args.version,
        "file": onnx_path.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
        "architecture": architecture,
        "inputs": {"skill": "int64[B]", "correct": "int64[B]", "h": f"float32[B,{hw}]", "c": f"float32[B,{cw}]"},
        "outputs": {"p": f"float32[B,{args.num_skills}]", "h_out": f"float32[B,{hw}]", "c_out": f"float32[B,{cw}]"},
        "num_skills": args.num_skills,
        "hidden": hidden,
        "state": {"h": hw, "c": cw, "c_layout": c_layout},
        "skill_vocabulary": "ASSISTments 2009 skill-builder skill ids of the DKT split (0-based)",
        "training": {
            "data": "ASSISTments 2009-2010 skill builder, DKT split (Piech et al. 2015), builder_train.csv",
            "train_sha256": hashlib.sha256((args.data / TRAIN_FILE).read_bytes()).hexdigest(),
            "students_fit": n_fit,
            "students_validation": n_val,
            **training,
            "torch": torch.__version__,
            "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
        "evaluation": {
            "data": "builder_test.csv, students with >= 2 answers, every next answer predicted from the exported file",
            "auc": round(test_auc, 4),
            "auc_consecutive_duplicates_removed": round(dedup_auc, 4),
            "predictions": n_predictions,
        },
        "bkt_fallback": bkt,
        "golden": golden_case(onnx_path),
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {onnx_path} and manifest.json")

if __name__ == "__main__":
    main()
