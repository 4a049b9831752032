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
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.kt.dataset import DEFAULT_DIR, TEST_FILE, TRAIN_FILE, Sequence, auc, dedup_consecutive, read_split


class DKT(nn.Module):
    def __init__(self, num_skills: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.num_skills = num_skills
        self.hidden = hidden
        self.embed = nn.Embedding(2 * num_skills, hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_skills)

    def forward(self, tokens: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        y, state = self.lstm(self.embed(tokens), state)
        return self.out(self.drop(y)), state


class DKTStep(nn.Module):
    """The exported graph: one answer in, all skills' probabilities and the new state out."""

    def __init__(self, model: DKT) -> None:
        super().__init__()
        self.m = model

    def forward(self, skill: torch.Tensor, correct: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        token = (skill * 2 + correct).unsqueeze(1)
        logits, (h2, c2) = self.m(token, (h.unsqueeze(0), c.unsqueeze(0)))
        return torch.sigmoid(logits[:, 0, :]), h2[0], c2[0]


def _tokens(s: Sequence) -> np.ndarray:
    return s.skills * 2 + s.correct


def _batches(seqs: list[Sequence], batch: int, shuffle: bool) -> list[list[Sequence]]:
    # Students of similar length together: little padding, whole histories kept.
    order = sorted(seqs, key=lambda s: len(s.skills))
    groups = [order[i : i + batch] for i in range(0, len(order), batch)]
    if shuffle:
        random.shuffle(groups)
    return groups


def _pad(group: list[Sequence]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    n = max(len(s.skills) for s in group)
    tok = np.zeros((len(group), n), dtype=np.int64)
    nxt_skill = np.zeros((len(group), n), dtype=np.int64)
    nxt_correct = np.zeros((len(group), n), dtype=np.float32)
    mask = np.zeros((len(group), n), dtype=np.float32)
    for i, s in enumerate(group):
        k = len(s.skills)
        tok[i, :k] = _tokens(s)
        nxt_skill[i, : k - 1] = s.skills[1:]
        nxt_correct[i, : k - 1] = s.correct[1:]
        mask[i, : k - 1] = 1.0
    return torch.from_numpy(tok), torch.from_numpy(nxt_skill), torch.from_numpy(nxt_correct), torch.from_numpy(mask)


def run_epoch(model: DKT, seqs: list[Sequence], batch: int, chunk: int, opt: torch.optim.Optimizer | None) -> tuple[float, np.ndarray, np.ndarray]:
    training = opt is not None
    model.train(training)
    total, count = 0.0, 0.0
    scores: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    bce = nn.BCEWithLogitsLoss(reduction="sum")
    for group in _batches(seqs, batch, shuffle=training):
        tok, nskill, ncorr, mask = _pad(group)
        state = (torch.zeros(1, len(group), model.hidden), torch.zeros(1, len(group), model.hidden))
        for t0 in range(0, tok.shape[1], chunk):
            sl = slice(t0, t0 + chunk)
            m = mask[:, sl]
            if m.sum() == 0:
                break
            with torch.set_grad_enabled(training):
                logits, state = model(tok[:, sl], state)
                picked = logits.gather(2, nskill[:, sl].unsqueeze(2)).squeeze(2)
                loss = (nn.functional.binary_cross_entropy_with_logits(picked, ncorr[:, sl], reduction="none") * m).sum()
            if training:
                opt.zero_grad()
                (loss / m.sum()).backward()
                nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                opt.step()
                state = (state[0].detach(), state[1].detach())
            else:
                sel = m.bool()
                scores.append(torch.sigmoid(picked[sel]).numpy())
                labels.append(ncorr[:, sl][sel].numpy())
            total += float(loss.detach())
            count += float(m.sum())
    del bce
    if training:
        return total / count, np.empty(0), np.empty(0)
    return total / count, np.concatenate(scores), np.concatenate(labels)


def fit_pooled_bkt(seqs: list[Sequence], iters: int = 150, max_len: int = 200) -> dict[str, float]:
    """One BKT parameter set for all skills (maximum likelihood by gradient descent)."""
    subs: list[np.ndarray] = []
    for s in seqs:
        for k in np.unique(s.skills):
            subs.append(s.correct[s.skills == k][:max_len])
    n = max(len(x) for x in subs)
    obs = np.zeros((len(subs), n), dtype=np.float32)
    mask = np.zeros((len(subs), n), dtype=np.float32)
    for i, x in enumerate(subs):
        obs[i, : len(x)] = x
        mask[i, : len(x)] = 1
    obs_t, mask_t = torch.from_numpy(obs), torch.from_numpy(mask)
    raw = torch.tensor([-1.0, -2.0, -1.5, -2.0], requires_grad=True)  # logits of prior, learn, guess, slip
    opt = torch.optim.Adam([raw], lr=0.05)
    for _ in range(iters):
        prior, learn, guess, slip = torch.sigmoid(raw)
        guess, slip = guess * 0.5, slip * 0.5  # keep the model identifiable: guess, slip < 0.5
        p = prior.expand(len(subs))
        nll = torch.zeros(())
        for t in range(n):
            pc = p * (1 - slip) + (1 - p) * guess
            o, m = obs_t[:, t], mask_t[:, t]
            nll = nll - (m * (o * torch.log(pc + 1e-9) + (1 - o) * torch.log(1 - pc + 1e-9))).sum()
            post = torch.where(o > 0, p * (1 - slip) / (pc + 1e-9), p * slip / (1 - pc + 1e-9))
            p = torch.where(m > 0, post + (1 - post) * learn, p)
        opt.zero_grad()
        nll.backward()
        opt.step()
    prior, learn, guess, slip = torch.sigmoid(raw).detach().tolist()
    return {"prior": round(prior, 4), "learn": round(learn, 4), "guess": round(guess * 0.5, 4), "slip": round(slip * 0.5, 4)}


def export_onnx(model: DKT, path: Path) -> None:
    step = DKTStep(model).eval()
    b, h = 2, model.hidden
    args = (torch.zeros(b, dtype=torch.int64), torch.ones(b, dtype=torch.int64), torch.zeros(b, h), torch.zeros(b, h))
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


def onnx_scores(path: Path, seqs: list[Sequence], hidden: int) -> tuple[np.ndarray, np.ndarray]:
    """Next-answer predictions from the exported file, stepped one answer at a time as on the hub."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    # All students advance together (batch = students still active at step t).
    n = max(len(s.skills) for s in seqs)
    h = np.zeros((len(seqs), hidden), dtype=np.float32)
    c = np.zeros_like(h)
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


def golden_case(path: Path, hidden: int) -> dict[str, object]:
    """A fixed input and what this file gives for it: the hub checks a new file reproduces it.

    The input visits every (skill, correct) token once, so a change to any weight
    shows in the trace (mean probability after each step) or the final probabilities.
    """
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    num_skills = sess.get_outputs()[0].shape[-1]
    tokens = list(range(2 * num_skills))
    random.Random(2009).shuffle(tokens)
    skills, correct = [t // 2 for t in tokens], [t % 2 for t in tokens]
    h = np.zeros((1, hidden), dtype=np.float32)
    c = np.zeros_like(h)
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
    manifest["golden"] = golden_case(onnx_path, manifest["hidden"])
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--refresh-golden", type=Path, help="only recompute the golden case of this manifest")
    ap.add_argument("--from-checkpoint", type=Path, help="export and evaluate the best weights of a stopped run (same --hidden)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--version", default="dkt-1")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--num-skills", type=int, default=124, help="skill ids 0..K-1 (124 covers both files)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.refresh_golden:
        refresh_golden(args.refresh_golden)
        return

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(args.threads)
    train = read_split(args.data / TRAIN_FILE)
    test = read_split(args.data / TEST_FILE)
    if args.from_checkpoint:
        saved = torch.load(args.from_checkpoint)
        model = DKT(args.num_skills, args.hidden, args.dropout)
        model.load_state_dict(saved["state"])
        model.eval()
        n_val = len(train) // 10
        finish(model, args, saved["history"], saved["seconds"], len(train) - n_val, n_val, train, test)
        return
    # Model selection on 10 % of the training students; the test split is not looked at until the end.
    rng = random.Random(args.seed)
    idx = list(range(len(train)))
    rng.shuffle(idx)
    n_val = len(train) // 10
    val = [train[i] for i in idx[:n_val]]
    fit = [train[i] for i in idx[n_val:]]

    model = DKT(args.num_skills, args.hidden, args.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    best, best_state, history = -1.0, None, []
    t_start = time.time()
    for epoch in range(args.epochs):
        t0 = time.time()
        loss, _, _ = run_epoch(model, fit, args.batch, args.chunk, opt)
        _, s, y = run_epoch(model, val, 64, 1000, None)
        val_auc = auc(s, y)
        history.append({"epoch": epoch + 1, "train_loss": round(loss, 4), "val_auc": round(val_auc, 4), "s": round(time.time() - t0, 1)})
        print(json.dumps(history[-1]), flush=True)
        if val_auc > best:
            best, best_state = val_auc, {k: v.clone() for k, v in model.state_dict().items()}
            # The best weights so far survive a stopped run: --from-checkpoint exports them.
            args.out.mkdir(parents=True, exist_ok=True)
            torch.save({"state": best_state, "history": history, "seconds": time.time() - t_start}, args.out / "checkpoint.pt")
        for g in opt.param_groups:
            g["lr"] *= 0.8
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    finish(model, args, history, time.time() - t_start, len(fit), len(val), train, test)


def finish(model: DKT, args: argparse.Namespace, history: list[dict[str, float]], train_s: float, n_fit: int, n_val: int,
           train: list[Sequence], test: list[Sequence]) -> None:
    """Export the trained network, evaluate the exported file on the test split, write the manifest."""

    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / f"{args.version}.onnx"
    export_onnx(model, onnx_path)
    _, st, yt = run_epoch(model, test, 64, 1000, None)
    s, y = onnx_scores(onnx_path, test, args.hidden)
    test_auc = auc(s, y)
    # The exported file must give what the trained network gives.
    print(json.dumps({"test_auc_torch": round(auc(st, yt), 4), "max_abs_diff": float(np.abs(np.sort(st) - np.sort(s)).max())}), flush=True)
    s2, y2 = onnx_scores(onnx_path, dedup_consecutive(test), args.hidden)
    dedup_auc = auc(s2, y2)
    print(json.dumps({"test_auc_onnx": round(test_auc, 4), "test_auc_dedup": round(dedup_auc, 4)}), flush=True)
    bkt = fit_pooled_bkt(train)
    print(json.dumps({"pooled_bkt": bkt}), flush=True)

    blob = onnx_path.read_bytes()
    manifest = {
        "format": "classroom-hub.kt-model",
        "schema": 1,
        "version": args.version,
        "file": onnx_path.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
        "architecture": "DKT (LSTM), one step per answer",
        "inputs": {"skill": "int64[B]", "correct": "int64[B]", "h": f"float32[B,{args.hidden}]", "c": f"float32[B,{args.hidden}]"},
        "outputs": {"p": f"float32[B,{args.num_skills}]", "h_out": f"float32[B,{args.hidden}]", "c_out": f"float32[B,{args.hidden}]"},
        "num_skills": args.num_skills,
        "hidden": args.hidden,
        "skill_vocabulary": "ASSISTments 2009 skill-builder skill ids of the DKT split (0-based)",
        "training": {
            "data": "ASSISTments 2009-2010 skill builder, DKT split (Piech et al. 2015), builder_train.csv",
            "train_sha256": hashlib.sha256((args.data / TRAIN_FILE).read_bytes()).hexdigest(),
            "students_fit": n_fit,
            "students_validation": n_val,
            "hyperparameters": {k: getattr(args, k) for k in ("hidden", "epochs", "batch", "chunk", "lr", "dropout", "seed")},
            "history": history,
            "seconds": round(train_s, 1),
            "torch": torch.__version__,
            "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
        "evaluation": {
            "data": "builder_test.csv, students with >= 2 answers, every next answer predicted from the exported file",
            "auc": round(test_auc, 4),
            "auc_consecutive_duplicates_removed": round(dedup_auc, 4),
            "predictions": int(len(y)),
        },
        "bkt_fallback": bkt,
        "golden": golden_case(onnx_path, args.hidden),
    }
    if not math.isfinite(test_auc):
        raise SystemExit("evaluation failed")
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {onnx_path} and manifest.json")


if __name__ == "__main__":
    main()
