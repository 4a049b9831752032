"""The knowledge-tracing network on the hub: load, verify, step.

A model is an ONNX file plus its manifest (``models/kt/manifest.json`` for the
one shipped with the software; the district ships newer ones). Before a file is
used it is verified: its sha256 matches the manifest, its inputs and outputs
have the names, types and sizes the manifest states, and it reproduces the
manifest's golden case (a fixed answer sequence and the probabilities it must
give). A file that fails any check is refused with the reason.

One step = one answer: (skill, correct, h, c) -> (p for every skill, h', c').
The state vectors are opaque to the hub: their widths come from the manifest's
``state`` ({"h": .., "c": ..}; without it both are ``hidden`` wide, as in plain
DKT). A model may keep more than the LSTM's state there, e.g. per-skill answer
counts; the hub only stores them per student and hands them back.
onnxruntime runs it single-threaded: a step is tens of microseconds and the
worker's other threads need the cores more than one step needs two.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.learning.errors import ModelRejected

MANIFEST_FORMAT = "classroom-hub.kt-model"
SUPPORTED_SCHEMA = 1
_INPUTS = {"skill": "tensor(int64)", "correct": "tensor(int64)", "h": "tensor(float)", "c": "tensor(float)"}
_OUTPUTS = {"p": "tensor(float)", "h_out": "tensor(float)", "c_out": "tensor(float)"}


@functools.cache
def bundled_manifest_path() -> Path:
    """The model shipped with the software (``models/kt/manifest.json``)."""
    import models  # the artefact folder only; training code is never imported

    return Path(models.__file__).resolve().parent / "kt" / "manifest.json"


@dataclass(frozen=True)
class BktParams:
    prior: float
    learn: float
    guess: float
    slip: float


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelRejected(f"cannot read model manifest {path.name}: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ModelRejected(f"{path.name} is not a knowledge-tracing model manifest")
    if manifest.get("schema") != SUPPORTED_SCHEMA:
        raise ModelRejected(f"manifest schema {manifest.get('schema')!r} is not supported (this hub reads {SUPPORTED_SCHEMA})")
    for key, kind in (("version", str), ("file", str), ("sha256", str), ("num_skills", int), ("hidden", int), ("bkt_fallback", dict), ("golden", dict)):
        if not isinstance(manifest.get(key), kind):
            raise ModelRejected(f"manifest field {key!r} is missing or not a {kind.__name__}")
    if not 1 <= manifest["num_skills"] <= 10_000 or not 1 <= manifest["hidden"] <= 4096:
        raise ModelRejected("manifest sizes are out of range")
    state = manifest.get("state", {"h": manifest["hidden"], "c": manifest["hidden"]})
    if not isinstance(state, dict) or not all(isinstance(state.get(k), int) and 1 <= state[k] <= 65_536 for k in ("h", "c")):
        raise ModelRejected("manifest 'state' needs the widths 'h' and 'c' (1-65536)")
    if Path(manifest["file"]).name != manifest["file"]:
        raise ModelRejected("manifest 'file' must be a file name beside the manifest")
    return manifest


class KTModel:
    """A verified, loaded model. Thread-safe: onnxruntime sessions may be shared."""

    def __init__(self, manifest_path: Path) -> None:
        import onnxruntime as ort

        manifest = read_manifest(manifest_path)
        onnx_path = manifest_path.parent / manifest["file"]
        try:
            blob = onnx_path.read_bytes()
        except OSError as err:
            raise ModelRejected(f"cannot read model file {onnx_path.name}: {err.strerror}") from None
        digest = hashlib.sha256(blob).hexdigest()
        if digest != manifest["sha256"]:
            raise ModelRejected(f"{onnx_path.name}: sha256 {digest[:12]}… does not match the manifest's {manifest['sha256'][:12]}…")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own types for every kind of bad file
            raise ModelRejected(f"{onnx_path.name} is not a loadable ONNX model: {str(err)[:200]}") from None
        self.version: str = manifest["version"]
        self.num_skills: int = manifest["num_skills"]
        self.hidden: int = manifest["hidden"]
        state = manifest.get("state", {"h": self.hidden, "c": self.hidden})
        self.state_widths: tuple[int, int] = (state["h"], state["c"])
        self.manifest = manifest
        self.path = onnx_path
        self.sha256 = digest
        b = manifest["bkt_fallback"]
        try:
            self.bkt = BktParams(float(b["prior"]), float(b["learn"]), float(b["guess"]), float(b["slip"]))
        except (KeyError, TypeError, ValueError):
            raise ModelRejected("manifest 'bkt_fallback' needs prior, learn, guess and slip") from None
        if not all(0.0 < x < 1.0 for x in (self.bkt.prior, self.bkt.learn, self.bkt.guess, self.bkt.slip)):
            raise ModelRejected("BKT fallback parameters must lie strictly between 0 and 1")
        self._session = session
        self._check_signature()
        self._check_golden(manifest["golden"])

    def _check_signature(self) -> None:
        ins = {i.name: i for i in self._session.get_inputs()}
        outs = {o.name: o for o in self._session.get_outputs()}
        if set(ins) != set(_INPUTS) or set(outs) != set(_OUTPUTS):
            raise ModelRejected(f"model inputs {sorted(ins)} / outputs {sorted(outs)} are not the knowledge-tracing step signature")
        for name, kind in _INPUTS.items():
            if ins[name].type != kind:
                raise ModelRejected(f"input {name} is {ins[name].type}, expected {kind}")
        for name, out, width in (("h", "h_out", self.state_widths[0]), ("c", "c_out", self.state_widths[1])):
            if ins[name].shape[-1] != width or outs[out].shape[-1] != width:
                raise ModelRejected(f"state {name} has width {ins[name].shape[-1]} in, {outs[out].shape[-1]} out; the manifest says {width}")
        if outs["p"].shape[-1] != self.num_skills:
            raise ModelRejected(f"output p has {outs['p'].shape[-1]} skills, the manifest says {self.num_skills}")

    def _check_golden(self, golden: dict[str, Any]) -> None:
        try:
            skills = [int(x) for x in golden["skills"]]
            correct = [int(x) for x in golden["correct"]]
            expected = np.asarray(golden["p"], dtype=np.float32)
            trace = np.asarray(golden["trace"], dtype=np.float32)
            tol = float(golden.get("tolerance", 1e-4))
        except (KeyError, TypeError, ValueError):
            raise ModelRejected("manifest 'golden' case is malformed") from None
        if not skills or len(skills) != len(correct) or len(trace) != len(skills) or max(skills) >= self.num_skills or min(skills) < 0:
            raise ModelRejected("manifest 'golden' case does not fit the model")
        h, c = self.zero_state()
        p = np.empty(0, dtype=np.float32)
        got_trace = np.empty(len(skills), dtype=np.float32)
        try:
            for i, (s, k) in enumerate(zip(skills, correct, strict=True)):
                p, h, c = self.step(s, k, h, c)
                got_trace[i] = p.mean()
        except Exception as err:
            raise ModelRejected(f"model failed on the golden case: {str(err)[:200]}") from None
        if p.shape != expected.shape or not np.all(np.isfinite(p)) or not np.all(np.isfinite(got_trace)):
            raise ModelRejected("model output does not reproduce the manifest's golden case (wrong shape or not finite)")
        if float(np.max(np.abs(p - expected))) > tol or float(np.max(np.abs(got_trace - trace))) > tol:
            raise ModelRejected("model output does not reproduce the manifest's golden case (wrong or corrupt weights)")

    def zero_state(self) -> tuple[np.ndarray, np.ndarray]:
        """The state of a student with no answers yet."""
        return np.zeros(self.state_widths[0], dtype=np.float32), np.zeros(self.state_widths[1], dtype=np.float32)

    def step(self, skill: int, correct: int, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One answer: probabilities for every skill and the new state (1-D arrays)."""
        p, h2, c2 = self._session.run(
            None,
            {
                "skill": np.array([skill], dtype=np.int64),
                "correct": np.array([1 if correct else 0], dtype=np.int64),
                "h": h.reshape(1, -1),
                "c": c.reshape(1, -1),
            },
        )
        return p[0], h2[0], c2[0]

    def step_batch(self, skills: np.ndarray, correct: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One answer each for a batch of students (replays and evaluation): [B] ints, [B, H] states."""
        p, h2, c2 = self._session.run(
            None, {"skill": skills.astype(np.int64), "correct": correct.astype(np.int64), "h": h.astype(np.float32), "c": c.astype(np.float32)}
        )
        return p, h2, c2
