"""Which vosk model the worker loads, and whether it is intact.

The model is named by the pointer manifest ``models/speech/manifest.json`` (or
``speech.model_path``/``speech.model_sha256`` in the configuration, which is how a
district-delivered Chinese model is installed). A model folder is identified by
its *tree hash*: sha256 over every file's relative path and sha256, in path
order, so a missing, extra or altered file changes it. The code does not care
which language the model speaks.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from edge.config import SpeechSection

# Files every vosk (Kaldi nnet3) model folder has; checked before the slow hash and load.
REQUIRED_FILES = ("am/final.mdl", "conf/mfcc.conf")


class ModelProblem(Exception):
    """The model cannot be used. ``state`` is 'missing' or 'corrupt'; the message is for people."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state


@dataclass(frozen=True)
class ModelPointer:
    name: str
    path: Path | None
    sha256: str


def manifest() -> dict:
    """The pointer manifest shipped in ``models/speech``."""
    text = resources.files("models.speech").joinpath("manifest.json").read_text(encoding="utf-8")
    return json.loads(text)


def resolve(cfg: SpeechSection, installed: ModelPointer | None = None) -> ModelPointer:
    """The model to load: the configured folder, else one the district installed
    (``installed``, see ``edge.speech.install``), else the manifest's default entry."""
    data = manifest()
    entry = next(m for m in data["models"] if m["name"] == data["default"])
    if cfg.model_path is not None:
        return ModelPointer(cfg.model_path.name, cfg.model_path, cfg.model_sha256)
    if installed is not None:
        return installed
    path = None
    spec = importlib.util.find_spec(entry["python_package"])
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / entry["path_in_package"]
    return ModelPointer(entry["name"], path, cfg.model_sha256 or entry["sha256"])


def tree_hash(folder: Path) -> str:
    """sha256 over (relative path, sha256 of content) of every file under ``folder``."""
    outer = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        inner = hashlib.sha256()
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                inner.update(block)
        outer.update(path.relative_to(folder).as_posix().encode() + b"\0" + inner.hexdigest().encode() + b"\n")
    return outer.hexdigest()


def check(pointer: ModelPointer, verify_hash: bool = True) -> Path:
    """The model folder if it is present and intact; raises ModelProblem otherwise."""
    if pointer.path is None:
        raise ModelProblem("missing", f"speech model {pointer.name} is not installed (no package or speech.model_path)")
    if not pointer.path.is_dir():
        raise ModelProblem("missing", f"speech model folder {pointer.path} does not exist")
    for rel in REQUIRED_FILES:
        if not (pointer.path / rel).is_file():
            raise ModelProblem("corrupt", f"speech model {pointer.path} is incomplete: {rel} is missing")
    if verify_hash and pointer.sha256:
        actual = tree_hash(pointer.path)
        if actual != pointer.sha256:
            raise ModelProblem("corrupt", f"speech model {pointer.path} does not match its expected hash (got {actual[:12]}…, want {pointer.sha256[:12]}…)")
    return pointer.path
