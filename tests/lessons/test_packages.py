"""Lesson packages: build, sign, verified atomic import, content-addressed store,
versions kept while scheduled, and every kind of bad package refused with a
clear message and nothing installed."""

from __future__ import annotations

import io
import json
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge import signing
from edge.lessons import service
from edge.lessons.build import build_package, sign_package
from edge.lessons.importer import ImportRefused, import_package
from edge.lessons.store import blob_path, content_root
from tests.hub.support import HubEnv, bearer

HUB_BIN = Path(sys.executable).with_name("classroom-hub")


def _db(h: HubEnv) -> Any:
    from edge.storage.db import connect

    return connect(h.config.db_path)


def _state(h: HubEnv) -> tuple[list[Any], list[str]]:
    """Every lesson row and every blob in the store: what 'nothing installed' compares."""
    rows = h.sql("SELECT lesson_id, version FROM lessons ORDER BY id") + h.sql("SELECT lesson, path FROM lesson_files ORDER BY 1, 2")
    root = content_root(h.config.hub.data_dir) / "sha256"
    blobs = sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []
    return rows, blobs


def test_built_package_imports_and_is_listed_for_a_student(lesson_hub: HubEnv, package: Callable[..., Path]) -> None:
    pkg = package()
    result = import_package(lesson_hub.config, _db(lesson_hub), pkg)
    assert result.new_blobs == 3 and not result.already_installed
    tablet = lesson_hub.enrol()
    headers = {**bearer(lesson_hub.sign_in(tablet, "03")), "X-Device-Token": tablet.token}
    listed = lesson_hub.client().get("/api/v1/lessons", headers=headers).get_json()["lessons"]
    mine = next(x for x in listed if x["lesson_id"] == "math-3-test")
    detail = lesson_hub.client().get(f"/api/v1/lessons/{mine['id']}", headers=headers).get_json()
    assert [p["title"] for p in detail["pages"]] == ["cover.svg", "video.webm", "page.html"]
    assert [p["kind"] for p in detail["pages"]] == ["image", "video", "html"]
    assert detail["pages"][2]["frame_url"].startswith("/lesson-frame/")
    for f in detail["files"]:
        assert blob_path(lesson_hub.config.hub.data_dir, f["sha256"]).stat().st_size == f["size"]
    # importing the same package again changes nothing
    again = import_package(lesson_hub.config, _db(lesson_hub), pkg)
    assert again.already_installed and again.lesson == result.lesson


def test_the_same_file_in_two_lessons_is_stored_once(lesson_hub: HubEnv, package: Callable[..., Path]) -> None:
    video = b"same video bytes" * 10_000
    import_package(lesson_hub.config, _db(lesson_hub), package(lesson_id="a-one", files={"v.mp4": video}))
    second = import_package(lesson_hub.config, _db(lesson_hub), package(lesson_id="a-two", files={"v.mp4": video, "x.svg": b"<svg/>"}))
    assert second.new_blobs == 1
    shas = {r[0] for r in lesson_hub.sql("SELECT sha256 FROM lesson_files WHERE path = 'v.mp4'")}
    assert len(shas) == 1


def test_a_newer_version_keeps_the_old_one_while_a_schedule_names_it(lesson_hub: HubEnv, package: Callable[..., Path]) -> None:
    h = lesson_hub
    v1 = import_package(h.config, _db(h), package(lesson_id="kept", version=1, files={"old.svg": b"<svg>old</svg>"}))
    r = h.client().put(f"/api/v1/classes/{h.class_id}/schedule/2026-03-02/1", json={"lesson": v1.lesson}, headers=bearer(h.staff_token("teacher")))
    assert r.status_code == 200, r.get_json()
    v2 = import_package(h.config, _db(h), package(lesson_id="kept", version=2, files={"new.svg": b"<svg>new</svg>"}))
    assert {r[0] for r in h.sql("SELECT version FROM lessons WHERE lesson_id = 'kept'")} == {1, 2}
    old_sha = h.sql("SELECT sha256 FROM lesson_files WHERE lesson = ?", (v1.lesson,))[0][0]
    assert blob_path(h.config.hub.data_dir, old_sha).exists()
    # once no schedule names it, the next version removes it and its bytes
    h.client().put(f"/api/v1/classes/{h.class_id}/schedule/2026-03-02/1", json={"lesson": v2.lesson}, headers=bearer(h.staff_token("teacher")))
    import_package(h.config, _db(h), package(lesson_id="kept", version=3, files={"new.svg": b"<svg>new</svg>"}))
    assert {r[0] for r in h.sql("SELECT version FROM lessons WHERE lesson_id = 'kept'")} == {2, 3}
    assert not blob_path(h.config.hub.data_dir, old_sha).exists()


def test_quiz_files_of_a_lesson_are_available_to_the_quiz_capability(lesson_hub: HubEnv, package: Callable[..., Path]) -> None:
    quiz = b'{"questions": []}'
    pkg = package(files={"p.svg": b"<svg/>", "quiz/q1.json": quiz}, pages=[("p", "p.svg")],
                  quizzes='[[quizzes]]\nid = "q-1"\nfile = "quiz/q1.json"\n[[quizzes]]\nid = "bank:42"\n')
    result = import_package(lesson_hub.config, _db(lesson_hub), pkg)
    files = service.lesson_quiz_files(lesson_hub.config.hub.data_dir, _db(lesson_hub), result.lesson)
    assert [(q.quiz_id, q.path) for q in files] == [("q-1", "quiz/q1.json"), ("bank:42", None)]
    assert files[0].file is not None and files[0].file.read_bytes() == quiz


# -- bad packages ----------------------------------------------------------------------------


def _rezip(src: Path, dst: Path, edit: Callable[[zipfile.ZipFile, zipfile.ZipFile], None]) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        edit(zin, zout)
    return dst


def _copy_all(zin: zipfile.ZipFile, zout: zipfile.ZipFile, skip: tuple[str, ...] = ()) -> None:
    for info in zin.infolist():
        if info.filename not in skip:
            zout.writestr(info, zin.read(info))


def _signed_manifest(zout: zipfile.ZipFile, manifest: dict[str, Any], key: str) -> None:
    raw = json.dumps(manifest).encode()
    zout.writestr("manifest.json", raw)
    zout.writestr("manifest.json.sig", signing.sign(raw, key))


def _bad_packages(pkg: Path, tmp: Path, key: str) -> dict[str, tuple[Path, str]]:
    manifest = json.loads(zipfile.ZipFile(pkg).read("manifest.json"))
    out: dict[str, tuple[Path, str]] = {}

    def extra_entry(name: str, data: bytes = b"x", mode: int | None = None) -> Callable[[zipfile.ZipFile, zipfile.ZipFile], None]:
        def edit(zin: zipfile.ZipFile, zout: zipfile.ZipFile) -> None:
            _copy_all(zin, zout)
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.external_attr = mode << 16
                info.create_system = 3
            zout.writestr(info, data)
        return edit

    out["dotdot"] = (_rezip(pkg, tmp / "dotdot.zip", extra_entry("files/../../etc/evil")), "leaves the package folder")
    out["absolute"] = (_rezip(pkg, tmp / "abs.zip", extra_entry("/etc/evil")), "absolute")
    out["symlink"] = (_rezip(pkg, tmp / "link.zip", extra_entry("files/link", b"/etc/passwd", stat.S_IFLNK | 0o777)), "symbolic link")
    out["device"] = (_rezip(pkg, tmp / "dev.zip", extra_entry("files/dev", b"", stat.S_IFCHR | 0o666)), "device")

    def bomb(zin: zipfile.ZipFile, zout: zipfile.ZipFile) -> None:
        _copy_all(zin, zout)
        zout.writestr(zipfile.ZipInfo("files/bomb.txt"), b"\0" * 50_000_000, compress_type=zipfile.ZIP_DEFLATED)
    out["bomb"] = (_rezip(pkg, tmp / "bomb.zip", bomb), "archive bomb")

    def tampered(zin: zipfile.ZipFile, zout: zipfile.ZipFile) -> None:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "files/cover.svg":
                data = data.replace(b"10", b"99")  # same size, other bytes
            zout.writestr(info, data)
    out["hash"] = (_rezip(pkg, tmp / "hash.zip", tampered), "does not match the manifest")

    def resigned_by_stranger(zin: zipfile.ZipFile, zout: zipfile.ZipFile) -> None:
        _copy_all(zin, zout, skip=("manifest.json.sig",))
        zout.writestr("manifest.json.sig", signing.sign(zin.read("manifest.json"), signing.generate_key()[0]))
    out["bad-signature"] = (_rezip(pkg, tmp / "badsig.zip", resigned_by_stranger), "bad signature")
    out["no-signature"] = (_rezip(pkg, tmp / "nosig.zip", lambda zi, zo: _copy_all(zi, zo, skip=("manifest.json.sig",))), "not signed")

    def edited_manifest(zin: zipfile.ZipFile, zout: zipfile.ZipFile) -> None:
        _copy_all(zin, zout, skip=("manifest.json",))
        zout.writestr("manifest.json", zin.read("manifest.json").replace(b"\\u6d4b", b"\\u6d4c").replace("测".encode(), "浊".encode()))
    out["manifest-edited"] = (_rezip(pkg, tmp / "edited.zip", edited_manifest), "bad signature")

    def future_format(zin: zipfile.ZipFile, zout: zipfile.ZipFile) -> None:
        _copy_all(zin, zout, skip=("manifest.json", "manifest.json.sig"))
        _signed_manifest(zout, {**manifest, "format": 2}, key)
    out["format"] = (_rezip(pkg, tmp / "fmt.zip", future_format), "unknown manifest format 2")

    def wrong_listed_hash(zin: zipfile.ZipFile, zout: zipfile.ZipFile) -> None:
        _copy_all(zin, zout, skip=("manifest.json", "manifest.json.sig"))
        files = [dict(f, sha256="0" * 64) if f["path"] == "page.html" else f for f in manifest["files"]]
        _signed_manifest(zout, {**manifest, "files": files}, key)
    out["listed-hash"] = (_rezip(pkg, tmp / "lhash.zip", wrong_listed_hash), "does not match the manifest")

    out["unlisted"] = (_rezip(pkg, tmp / "unlisted.zip", extra_entry("files/extra.js")), "does not list")
    data = pkg.read_bytes()
    (tmp / "truncated.zip").write_bytes(data[: len(data) // 2])
    out["truncated"] = (tmp / "truncated.zip", "not a lesson package")
    return out


BAD = ["dotdot", "absolute", "symlink", "device", "bomb", "hash", "bad-signature", "no-signature", "manifest-edited",
       "format", "listed-hash", "unlisted", "truncated"]


@pytest.mark.parametrize("case", BAD)
def test_bad_package_is_refused_and_nothing_is_installed(
    case: str, lesson_hub: HubEnv, package: Callable[..., Path], tmp_path: Path, district_keys: tuple[str, str]
) -> None:
    bad, expected = _bad_packages(package(), tmp_path, district_keys[0])[case]
    before = _state(lesson_hub)
    with pytest.raises(ImportRefused) as err:
        import_package(lesson_hub.config, _db(lesson_hub), bad)
    assert expected in str(err.value), str(err.value)
    assert _state(lesson_hub) == before
    staging = content_root(lesson_hub.config.hub.data_dir) / "staging"
    assert not staging.exists() or not any(staging.iterdir())


def test_disk_below_the_reserve_refuses_the_import(template: Any, tmp_path: Path, package: Callable[..., Path], district_keys: tuple[str, str]) -> None:
    from tests.hub.support import build_hub

    h = build_hub(template, tmp_path / "full", district={"public_key": district_keys[1]}, storage={"disk_reserve_mb": 100_000_000})
    before = _state(h)
    with pytest.raises(ImportRefused, match="not enough disk"):
        import_package(h.config, _db(h), package())
    assert _state(h) == before


def test_a_hub_without_a_district_key_installs_nothing(hub: HubEnv, package: Callable[..., Path]) -> None:
    (hub.config.hub.data_dir / "district.pub").unlink(missing_ok=True)
    with pytest.raises(ImportRefused, match="no district public key"):
        import_package(hub.config, _db(hub), package())


def test_sign_command_makes_an_unsigned_package_importable(lesson_hub: HubEnv, make_folder: Callable[..., Path], tmp_path: Path,
                                                           district_keys: tuple[str, str]) -> None:
    out = tmp_path / "unsigned.zip"
    build_package(make_folder(lesson_id="to-sign"), out, None)
    with pytest.raises(ImportRefused, match="not signed"):
        import_package(lesson_hub.config, _db(lesson_hub), out)
    sign_package(out, district_keys[0])
    assert import_package(lesson_hub.config, _db(lesson_hub), out).lesson_id == "to-sign"


def test_cli_builds_signs_and_imports_with_progress(lesson_hub: HubEnv, make_folder: Callable[..., Path], tmp_path: Path) -> None:
    data_dir = str(lesson_hub.config.hub.data_dir)
    env = {"PATH": "/usr/bin:/bin", "HUB_DISCOVERY_ENABLED": "false", "HUB_STORAGE_DISK_RESERVE_MB": "1"}
    priv, pub = tmp_path / "district.key", tmp_path / "district.pub"
    run = lambda *args: subprocess.run([str(HUB_BIN), "--data-dir", data_dir, *args], capture_output=True, text=True, env=env, timeout=60)  # noqa: E731
    assert run("lesson", "keygen", "--private-out", str(priv), "--public-out", str(pub)).returncode == 0
    env["HUB_DISTRICT_PUBLIC_KEY_FILE"] = str(pub)
    pkg = tmp_path / "cli.zip"
    built = run("lesson", "build", str(make_folder(lesson_id="cli-lesson")), "--out", str(pkg), "--key", str(priv))
    assert built.returncode == 0 and "signed" in built.stdout, built.stderr
    imported = run("lesson", "import", str(pkg))
    assert imported.returncode == 0, imported.stderr
    assert "installed cli-lesson v1" in imported.stdout and "verifying and installing" in imported.stdout + imported.stderr
    # a package from elsewhere: refused, exit code non-zero, the reason printed
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 not really")
    refused = run("lesson", "import", str(junk))
    assert refused.returncode != 0 and "nothing was installed" in refused.stderr
    listed = run("lesson", "list", "--json")
    assert "cli-lesson" in listed.stdout


def test_manifest_pages_must_name_listed_files(make_folder: Callable[..., Path], tmp_path: Path) -> None:
    from edge.lessons.manifest import ManifestError

    with pytest.raises(ManifestError, match="not in 'files'"):
        build_package(make_folder(files={"a.svg": b"<svg/>"}, pages=[("p", "missing.svg")]), tmp_path / "x.zip", None)
    with pytest.raises(ManifestError, match="cannot go into a lesson"):
        build_package(make_folder(files={"a.exe": b"MZ"}, pages=[("p", "a.exe")]), tmp_path / "y.zip", None)


def test_damaged_compressed_data_is_refused_not_a_crash(lesson_hub: HubEnv, package: Callable[..., Path], tmp_path: Path) -> None:
    """One flipped byte inside a deflated file: refused with a message (zlib or CRC error), nothing installed."""
    pkg = package(files={"a.svg": b"<svg>" + b"a" * 5000 + b"</svg>"}, pages=[("p", "a.svg")])
    raw = bytearray(pkg.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
        info = zf.getinfo("files/a.svg")
    # flip one byte of the compressed data of a.svg
    raw[info.header_offset + 30 + len(info.filename) + 10] ^= 0xFF
    bad = tmp_path / "crc.zip"
    bad.write_bytes(bytes(raw))
    before = _state(lesson_hub)
    with pytest.raises(ImportRefused, match="damaged"):
        import_package(lesson_hub.config, _db(lesson_hub), bad)
    assert _state(lesson_hub) == before
