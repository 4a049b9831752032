"""The knowledge-tracing model: verified before use, swapped in without a restart,
and a corrupt or mismatched file refused with the old model kept."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from edge import inbox
from edge.learning import registry
from edge.learning.errors import ModelRejected
from edge.learning.kt_model import KTModel, bundled_manifest_path
from edge.learning.service import mastery_of, record_answer
from edge.storage.db import Database, transaction
from tests.hub.support import HubEnv, bearer

from .conftest import students

TINY = Path(__file__).resolve().parent / "data" / "manifest.json"
# A tiny model that also keeps per-skill answer counts in its state (c wider than h), made with
# models/kt/train.py --features --head 8 --hidden 16 --epochs 1 on the first 200 students of each file.
TINY_COUNTS = Path(__file__).resolve().parent / "data_counts" / "manifest.json"


def _copy(tmp: Path, edit: Any = None, blob_edit: Any = None, source: Path = TINY) -> Path:
    """A copy of a tiny test model, with its manifest and/or file edited."""
    tmp.mkdir(parents=True, exist_ok=True)
    manifest = json.loads(source.read_text())
    blob = (source.parent / manifest["file"]).read_bytes()
    if blob_edit:
        blob = blob_edit(blob)
    (tmp / manifest["file"]).write_bytes(blob)
    if edit:
        edit(manifest)
    (tmp / "manifest.json").write_text(json.dumps(manifest))
    return tmp / "manifest.json"


def test_the_bundled_model_verifies_and_records_its_figures() -> None:
    model = KTModel(bundled_manifest_path())
    m = model.manifest
    assert m["sha256"] == hashlib.sha256(model.path.read_bytes()).hexdigest()
    assert 0.5 < m["evaluation"]["auc"] <= 1 and "auc_consecutive_duplicates_removed" in m["evaluation"]
    assert m["training"]["data"].startswith("ASSISTments 2009")
    p, h, c = model.step(3, 1, *model.zero_state())
    assert p.shape == (model.num_skills,) and ((p > 0) & (p < 1)).all()
    assert (h.shape[0], c.shape[0]) == model.state_widths and h.shape == (model.hidden,)


def _flip_weights(blob: bytes) -> bytes:
    b = bytearray(blob)
    for i in range(len(b) // 2, len(b) // 2 + 64):
        b[i] ^= 0x5A
    return bytes(b)


@pytest.mark.parametrize(
    ("case", "edit", "blob_edit", "reason"),
    [
        ("truncated file", None, lambda b: b[: len(b) // 3], "sha256"),
        ("flipped bytes", None, _flip_weights, "sha256"),
        ("not onnx at all", "rehash", lambda b: b"this is not a model" * 10, "not a loadable ONNX"),
        ("weights changed, hash updated", "rehash", _flip_weights, ""),
        ("wrong skill count", lambda m: m.update(num_skills=50), None, "skills"),
        ("wrong state width", lambda m: m.update(hidden=200), None, "width"),
        ("declared state wider than the file's", lambda m: m.update(state={"h": 16, "c": 636}), None, "width"),
        ("malformed state", lambda m: m.update(state={"h": 16}), None, "state"),
        ("golden case not reproduced", lambda m: m["golden"].update(p=[0.5] * m["num_skills"]), None, "golden"),
        ("unsupported schema", lambda m: m.update(schema=99), None, "schema"),
        ("path in file name", lambda m: m.update(file="../x.onnx"), None, "file name"),
        ("bkt out of range", lambda m: m["bkt_fallback"].update(slip=1.5), None, "BKT"),
    ],
)
def test_a_corrupt_or_mismatched_model_is_refused_and_the_old_one_kept(
    lhub: HubEnv, ldb: Database, tmp_path: Path, case: str, edit: Any, blob_edit: Any, reason: str
) -> None:
    old = registry.active_model(ldb).version
    if edit == "rehash":

        def edit(m: dict[str, Any]) -> None:
            m["sha256"] = hashlib.sha256(blob_edit((TINY.parent / m["file"]).read_bytes())).hexdigest()

    path = _copy(tmp_path / "cand", edit, blob_edit)
    before = lhub.snapshot()
    with pytest.raises(ModelRejected) as err:
        registry.install(ldb, lhub.config.hub.data_dir, path)
    assert reason in str(err.value), (case, str(err.value))
    assert registry.active_model(ldb).version == old
    assert lhub.snapshot() == before


def test_a_new_model_is_swapped_in_without_a_restart_and_states_rebuilt(lhub: HubEnv, ldb: Database, tmp_path: Path) -> None:
    sid = students(lhub)[0]
    for i, ok in enumerate([True, True, False, True]):
        with transaction(ldb):
            record_answer(ldb, sid, "m.add-2", None, ok, 100.0 + i)
    before = mastery_of(ldb, sid)["m.add"]
    installed = registry.install(ldb, lhub.config.hub.data_dir, _copy(tmp_path / "new"))
    assert installed.version == "dkt-tiny-test" == registry.active_model(ldb).version
    assert (lhub.config.hub.data_dir / "models" / "kt" / "dkt-tiny-test" / "manifest.json").exists()
    # Mastery now comes from the new model, replaying the same history: equal to a fresh replay.
    after = mastery_of(ldb, sid)["m.add"]
    h, c = installed.zero_state()
    for ok in [True, True, False, True]:
        p, h, c = installed.step(11, ok, h, c)
    assert after == pytest.approx(float(p[11]), abs=1e-6) and after != pytest.approx(before, abs=1e-4)
    # The next answer rebuilds the stored state under the new version, then steps once.
    with transaction(ldb):
        record_answer(ldb, sid, "m.add-2", None, True, 200.0)
    assert ldb.execute("SELECT model_version, steps FROM learning_state WHERE student_id = ?", (sid,)).fetchone() == ("dkt-tiny-test", 5)
    # The running app's API reports the new model (same process, no restart).
    r = lhub.client().get("/api/v1/learning/model", headers=bearer(lhub.staff_token("teacher")))
    assert r.get_json()["version"] == "dkt-tiny-test" and r.get_json()["bundled"] is False


def test_a_class_after_a_swap_is_rebuilt_together_exactly_as_one_by_one(lhub: HubEnv, ldb: Database, tmp_path: Path) -> None:
    from edge.learning.service import _rebuild, mastery_table

    sids = students(lhub)[:4]
    with transaction(ldb):
        for n, sid in enumerate(sids):
            for i in range(3 + 2 * n):  # histories of different lengths, mixed points
                record_answer(ldb, sid, ["m.count-1", "m.add-2", "m.shape-0", "m.mul-3"][(i + n) % 4], None, (i + n) % 3 != 0, 10.0 * i)
    model = registry.install(ldb, lhub.config.hub.data_dir, _copy(tmp_path / "new"))
    table = mastery_table(ldb, sids, ["m.count", "m.add", "m.mul"])
    for row, sid in enumerate(sids):
        one = _rebuild(ldb, sid, model, 10**9)
        assert one.p is not None
        for kp, skill in (("m.count", 10), ("m.add", 11), ("m.mul", 13)):
            assert table.p[row, table.kp_ids.index(kp)] == pytest.approx(float(one.p[skill]), abs=1e-5)


def test_a_model_keeping_per_skill_counts_in_its_state_swaps_in_and_replays_exactly(lhub: HubEnv, ldb: Database, tmp_path: Path) -> None:
    from edge.learning.service import mastery_table

    sids = students(lhub)[:3]
    pattern = ["m.count-1", "m.add-2", "m.add-3", "m.shape-0", "m.add-2", "m.mul-3"]
    with transaction(ldb):
        for n, sid in enumerate(sids):
            for i in range(2 + 2 * n):
                record_answer(ldb, sid, pattern[i % len(pattern)], None, (i + n) % 3 != 0, 10.0 * i)
    model = registry.install(ldb, lhub.config.hub.data_dir, _copy(tmp_path / "counts", source=TINY_COUNTS))
    assert model.version == "dkt-tiny-counts" and model.state_widths == (16, 16 + 124 * 5)
    skill = {"m.count": 10, "m.add": 11, "m.mul": 13}
    table = mastery_table(ldb, sids, list(skill))  # all three rebuilt together, batched
    for row, (n, sid) in enumerate(zip(range(3), sids, strict=True)):
        h, c = model.zero_state()
        for i in range(2 + 2 * n):
            kp = pattern[i % len(pattern)].rsplit("-", 1)[0]
            if kp in skill:
                p, h, c = model.step(skill[kp], (i + n) % 3 != 0, h, c)
        for kp, k in skill.items():
            assert table.p[row, table.kp_ids.index(kp)] == pytest.approx(float(p[k]), abs=1e-5)
    # The counts really are in the state: attempts on m.add (skill 11) of the last student.
    assert c[16 + 11 * 5] == sum(1 for i in range(6) if pattern[i % len(pattern)].startswith("m.add"))
    # The next answer stores the whole wider state and steps once from it.
    with transaction(ldb):
        record_answer(ldb, sids[-1], "m.add-2", None, True, 500.0)
    stored = ldb.execute("SELECT model_version, steps, length(h), length(c) FROM learning_state WHERE student_id = ?", (sids[-1],)).fetchone()
    assert stored == ("dkt-tiny-counts", 6, 16 * 4, (16 + 124 * 5) * 4)


def test_models_from_the_district_inbox_install_or_fail_with_the_reason(lhub: HubEnv, ldb: Database, tmp_path: Path) -> None:
    bad = _copy(tmp_path / "bad", blob_edit=_flip_weights)
    good = _copy(tmp_path / "good")
    inbox.add(ldb, "model", bad, "a" * 64)
    r = lhub.client().post("/api/v1/learning/model/install", headers=bearer(lhub.staff_token("admin")))
    assert r.status_code == 200
    assert r.get_json()["results"][0]["outcome"].startswith("refused: ") and r.get_json()["active"] != "dkt-tiny-test"
    assert ldb.execute("SELECT error FROM inbox WHERE path = ?", (str(bad),)).fetchone()[0]
    inbox.add(ldb, "model", good, "b" * 64)
    r = lhub.client().post("/api/v1/learning/model/install", headers=bearer(lhub.staff_token("admin")))
    assert r.get_json()["active"] == "dkt-tiny-test"
    # The refused file is refused again on the next pass, never served.
    error = ldb.execute("SELECT error FROM inbox WHERE path = ?", (str(bad),)).fetchone()[0]
    assert [x["outcome"] for x in r.get_json()["results"]] == ["refused: " + error, "installed dkt-tiny-test"]


def test_the_same_version_with_other_content_is_refused(lhub: HubEnv, ldb: Database, tmp_path: Path) -> None:
    registry.install(ldb, lhub.config.hub.data_dir, _copy(tmp_path / "one"))

    def other(m: dict[str, Any]) -> None:
        m["sha256"] = hashlib.sha256(b"x" + (TINY.parent / m["file"]).read_bytes()).hexdigest()

    path = _copy(tmp_path / "two", other, lambda b: b"x" + b)
    with pytest.raises(ModelRejected):
        registry.install(ldb, lhub.config.hub.data_dir, path)


def test_an_installed_file_damaged_on_disk_falls_back_to_the_bundled_model(lhub: HubEnv, ldb: Database, tmp_path: Path) -> None:
    model = registry.install(ldb, lhub.config.hub.data_dir, _copy(tmp_path / "m"))
    registry._loaded.clear()  # as in a worker that has not loaded it yet
    model.path.write_bytes(b"damaged")
    assert registry.active_model(ldb).version == KTModel(bundled_manifest_path()).version
    shutil.rmtree(tmp_path / "m")
