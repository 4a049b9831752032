"""Several trained DKT networks as ONE exported step (mean of their logits).

    /work/venvs/train/bin/python -m models.kt.ensemble --members run1/checkpoint.pt run2/checkpoint.pt --no-test
    /work/venvs/train/bin/python -m models.kt.ensemble --members ... --version dkt-4 --out models/kt

The members must share ``--features`` and ``--head`` (hidden sizes may differ). In the
exported graph the per-skill counts are updated once for all members, the members'
LSTMs run side by side on one concatenated state, and everything after them is linear
up to the heads, so it is merged into single layers: the per-answer cost grows by one
LSTM, not by a whole network. ``--no-test`` reports the validation AUC of the exported
file (stepped per answer, as on the hub) and never reads the test file.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.kt.dataset import DEFAULT_DIR, TEST_FILE, TRAIN_FILE, Sequence, auc, read_split
from models.kt.features import ALIGN, ALIGN_RAW, ALIGNED_FEATURES, FAST, GLOBAL_RAW, RAW, RICH_FEATURES, RICH_RAW, SLOW
from models.kt.train import (
    DKT,
    _torch_aligned,
    _torch_features,
    _torch_rich,
    bkt_fallback,
    counts_layout,
    evaluate_exported,
    export_step,
    onnx_scores,
    prepare,
    run_epoch,
    split_validation,
    write_manifest,
)


class EnsembleStep(nn.Module):
    """The exported graph of an ensemble: same signature as ``train.DKTStep``; ``h`` and the cell part of ``c``
    are the members' states side by side, then the per-skill counts once."""

    def __init__(self, members: list[DKT]) -> None:
        super().__init__()
        m0 = members[0]
        assert all(m.use_features and m.head for m in members), "members need --features and --head"
        assert len({(m.rich, m.aligned) for m in members}) == 1, "members need the same --rich and --aligned"
        n = len(members)
        self.k = m0.num_skills
        self.rich = m0.rich
        self.aligned = m0.aligned
        self.raw = RICH_RAW if self.rich else RAW
        self.widths = [m.hidden for m in members]
        self.hidden = sum(self.widths)
        self.lstms = nn.ModuleList([copy.deepcopy(m.lstm) for m in members])
        for lstm in self.lstms:
            lstm.batch_first = False  # one step: [1, B, H] in and out, no transposes in the graph
        with torch.no_grad():
            self.embed = nn.Embedding.from_pretrained(torch.cat([m.embed.weight for m in members], 1))
            self.feat_in = nn.Linear(m0.feat_in.in_features, self.hidden)
            self.feat_in.weight.copy_(torch.cat([m.feat_in.weight for m in members], 0))
            self.feat_in.bias.copy_(torch.cat([m.feat_in.bias for m in members], 0))
            self.out = nn.Linear(self.hidden, self.k)
            self.out.weight.copy_(torch.cat([m.out.weight for m in members], 1) / n)
            self.out.bias.copy_(torch.stack([m.out.bias for m in members]).mean(0))
            self.skip = nn.Parameter(torch.stack([m.skip.weight for m in members]).mean(0))
            self.feat_kw = nn.Parameter(torch.stack([m.feat_w + m.feat_v.weight for m in members]).mean(0))  # [K, F]
            heads = [m.head for m in members]
            self.head_h = nn.Linear(self.hidden, sum(heads))
            self.head_h.weight.copy_(torch.block_diag(*[m.head_h.weight for m in members]))
            self.head_h.bias.copy_(torch.cat([m.head_h.bias for m in members]))
            self.head_k = nn.Parameter(torch.cat([m.head_k.weight for m in members], 1))
            self.head_f = nn.Parameter(torch.cat([m.head_f.weight for m in members], 0).T.contiguous())  # [F, sum heads]
            self.head_out = nn.Parameter(torch.cat([m.head_out.weight for m in members], 1).T.contiguous() / n)  # [sum heads, 1]

    @property
    def state_widths(self) -> tuple[int, int]:
        return self.hidden, self.hidden + self.k * self.raw + (GLOBAL_RAW if self.rich else 0) + (self.k * ALIGN + ALIGN_RAW if self.aligned else 0)

    def forward(self, skill: torch.Tensor, correct: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        k = self.k
        token = skill * 2 + correct
        # One Split each for h and c (members' states, then the counts) instead of a slice per member.
        h_parts = h.unsqueeze(0).split(self.widths, dim=2)
        rest = self.state_widths[1] - self.hidden - k * self.raw
        if self.aligned:
            *c_parts, raw, glob, al = c.unsqueeze(0).split([*self.widths, k * self.raw, GLOBAL_RAW, rest - GLOBAL_RAW], dim=2)
        else:
            *c_parts, raw, glob = c.unsqueeze(0).split([*self.widths, k * self.raw, rest], dim=2)
        raw = raw.reshape(-1, k, self.raw)
        n_before = raw[:, :, 0]
        n, cor, last, streak, gap = raw[:, :, 0], raw[:, :, 1], raw[:, :, 2], raw[:, :, 3], raw[:, :, 4]
        # train.DKTStep's update in fewer graph nodes (a step costs about a microsecond per node on the hub):
        # a streak grows away from zero in the answer's direction, or restarts at +-1 if the answer turned it.
        mask = skill.unsqueeze(1) == torch.arange(k)
        hot = mask.to(torch.float32)
        y = correct.to(torch.float32).unsqueeze(1)
        sign = 2 * y - 1
        n = n + hot
        cor = cor + hot * y
        last = torch.where(mask, sign, last)
        streak = torch.where(mask, sign * (torch.relu(streak * sign) + 1), streak)
        gap = torch.where(mask, torch.zeros_like(gap), gap + 1)
        f_all = _torch_features(n, cor, last, streak, gap, hot, hot * sign)  # [B, K, F]
        kept = [n, cor, last, streak, gap]
        if self.rich:
            fast = torch.where(mask, (1 - FAST) * raw[:, :, 5] + FAST * sign, raw[:, :, 5])
            slow = torch.where(mask, (1 - SLOW) * raw[:, :, 6] + SLOW * sign, raw[:, :, 6])
            kept += [fast, slow]
            f_rich, glob2 = _torch_rich(fast, slow, glob[0], skill, y, sign)
            f_all = torch.cat([f_all, f_rich], dim=-1)
            if self.aligned:
                outcomes, prevd = al[0].split([k * ALIGN, ALIGN_RAW], dim=1)
                f_al, outcomes, prevd = _torch_aligned(outcomes.reshape(-1, k, ALIGN), prevd, n_before, n, hot, sign, glob[0][:, 3:4])
                f_all = torch.cat([f_all, f_al], dim=-1)
                glob2 = torch.cat([glob2, outcomes.reshape(-1, k * ALIGN), prevd], dim=1)
        f_cur = (f_all * hot.unsqueeze(2)).sum(1)  # [B, F]
        x = (self.embed(token) + self.feat_in(f_cur)).unsqueeze(0).split(self.widths, dim=2)  # [1, B, H_i] each
        hs, cs = [], []
        for lstm, x_i, h_i, c_i in zip(self.lstms, x, h_parts, c_parts, strict=True):
            _, (h_i, c_i) = lstm(x_i, (h_i, c_i))
            hs.append(h_i)
            cs.append(c_i)
        h2 = torch.cat(hs, 2)[0]
        logits = self.out(h2) + self.skip[token] + (f_all * self.feat_kw).sum(-1)
        z = self.head_h(h2).unsqueeze(1) + self.head_k.unsqueeze(0) + f_all @ self.head_f
        logits = logits + (torch.relu(z) @ self.head_out).squeeze(-1)
        raw2 = torch.stack(kept, dim=-1).reshape(1, -1, k * self.raw)
        if self.rich:
            return torch.sigmoid(logits), h2, torch.cat([*cs, raw2, glob2.unsqueeze(0)], dim=2)[0]
        return torch.sigmoid(logits), h2, torch.cat([*cs, raw2], dim=2)[0]


def load_member(path: Path, num_skills: int) -> DKT:
    """A DKT from a train.py checkpoint; hidden and head widths are read from the weights."""
    state = torch.load(path)["state"]
    hidden = state["lstm.weight_hh_l0"].shape[1]
    head = state["head_h.weight"].shape[0] if "head_h.weight" in state else 0
    nf = state["feat_in.weight"].shape[1] if "feat_in.weight" in state else 0
    m = DKT(num_skills, hidden, 0.0, nf > 0, head, rich=nf in (RICH_FEATURES, ALIGNED_FEATURES), aligned=nf == ALIGNED_FEATURES)
    m.load_state_dict(state)
    return m.eval()


def member_logits(m: DKT, seqs: list[Sequence], num_skills: int) -> tuple[np.ndarray, np.ndarray]:
    _, s, y = run_epoch(m, prepare(seqs, num_skills, m.use_features, m.rich, m.aligned), 64, 1000, None)
    s = np.clip(s.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(s / (1 - s)), y


def member_record(path: Path, m: DKT) -> dict[str, object]:
    """What the manifest says about one member: its run, widths, the train.py settings it was trained with, its epochs."""
    saved = torch.load(path)
    record: dict[str, object] = {"run": path.parent.name, "hidden": m.hidden, "head": m.head, "rich": m.rich}
    if "args" in saved:
        keys = ("hidden", "features", "rich", "aligned", "head", "epochs", "batch", "chunk", "lr", "lr_decay", "dropout", "seed", "split_seed", "all_students")
        record["hyperparameters"] = {k: saved["args"][k] for k in keys if k in saved["args"]}
    record["history"] = saved["history"]
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", type=Path, nargs="+", required=True, help="checkpoint.pt files of train.py runs")
    ap.add_argument("--data", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--version", default="dkt-ensemble")
    ap.add_argument("--num-skills", type=int, default=124)
    ap.add_argument("--split-seed", type=int, default=7, help="the validation split the members were selected on")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-test", action="store_true", help="validation AUC of the exported ensemble only; the test file is not read")
    ap.add_argument("--selection", type=Path, help="a JSON file recording how the members were chosen (copied into the manifest)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    members = [load_member(p, args.num_skills) for p in args.members]
    train = read_split(args.data / TRAIN_FILE)
    fit, val = split_validation(train, args.split_seed)
    if all(torch.load(p).get("args", {}).get("all_students") for p in args.members):
        fit, val = train, []  # members trained with train.py --all-students
    step = EnsembleStep(members).eval()
    if args.no_test:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"{args.version}.onnx"
        export_step(step, path, step.state_widths)
        zs = [member_logits(m, val, args.num_skills) for m in members]
        y = zs[0][1]
        z = np.mean([a for a, _ in zs], 0)
        s, yo = onnx_scores(path, val)
        print(json.dumps({"members_val_auc": [round(auc(1 / (1 + np.exp(-a)), y), 4) for a, _ in zs],
                          "ensemble_val_auc_torch": round(auc(1 / (1 + np.exp(-z)), y), 4),
                          "ensemble_val_auc_onnx": round(auc(s, yo), 4)}), flush=True)
        return
    finish_ensemble(step, members, args, train, len(fit), len(val))


def finish_ensemble(step: EnsembleStep, members: list[DKT], args: argparse.Namespace, train: list[Sequence], n_fit: int, n_val: int) -> None:
    """Export, evaluate the exported file on the test split (once), write the manifest (as ``train.finish``)."""
    test = read_split(args.data / TEST_FILE)
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / f"{args.version}.onnx"
    export_step(step, onnx_path, step.state_widths)
    zs = [member_logits(m, test, args.num_skills) for m in members]
    pt, yt = 1 / (1 + np.exp(-np.mean([a for a, _ in zs], 0))), zs[0][1]
    evaluation = evaluate_exported(onnx_path, test, pt, yt)
    widths = " + ".join(str(w) for w in step.widths)
    write_manifest(
        args, onnx_path, step.state_widths,
        architecture=f"{len(members)} DKT (LSTM) networks averaged in one step (mean logit; hidden {widths}), one step per answer, "
                     "plus per-skill answer counts" + (", moving averages, recent pattern and the student's totals" if step.rich else "")
                     + (", aligned earlier runs' outcomes" if step.aligned else "")
                     + " in the state (features.py), shared by the networks",
        hidden=step.hidden,
        c_layout=f"the networks' LSTM cells ({widths}), then " + counts_layout(args.num_skills, step.rich, step.aligned),
        n_fit=n_fit, n_val=n_val,
        training={"members": [member_record(p, m) for p, m in zip(args.members, members, strict=True)],
                  **({"model_selection": json.loads(args.selection.read_text(encoding="utf-8"))} if args.selection else {})},
        evaluation=evaluation, bkt=bkt_fallback(train),
    )

if __name__ == "__main__":
    main()
