"""Fixtures for the lesson tests: a district key, lesson folders built like the
district builds them, and hubs (in-process or the real gunicorn server) that
trust that key. Reuses the hub's seeded template (tests/hub/support.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge import signing
from tests.hub.support import HubEnv, build_hub, hub, module_hub, server_factory, template  # noqa: F401


@pytest.fixture(scope="session")
def district_keys() -> tuple[str, str]:
    return signing.generate_key()


@pytest.fixture
def make_folder(tmp_path: Path) -> Callable[..., Path]:
    """A lesson source folder: lesson.toml plus files (path -> bytes)."""
    counter = [0]

    def make(lesson_id: str = "math-3-test", version: int = 1, files: dict[str, bytes] | None = None,
             pages: list[tuple[str, str]] | None = None, quizzes: str = "") -> Path:
        counter[0] += 1
        folder = tmp_path / f"src{counter[0]}"
        folder.mkdir()
        files = files if files is not None else {
            "cover.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
            "video.webm": os.urandom(300_000),
            "page.html": b"<!doctype html><title>t</title><p>hello</p>",
        }
        for name, data in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        pages = pages if pages is not None else [(name, name) for name in files]
        toml = [f'id = "{lesson_id}"', f"version = {version}", 'title = "测试课"', 'subject = "数学"', "grade = 3",
                'chapter = "第一单元"', 'knowledge_points = ["kp1"]']
        for title, file in pages:
            toml += ["[[pages]]", f'title = "{title}"', f'file = "{file}"']
        (folder / "lesson.toml").write_text("\n".join(toml) + "\n" + quizzes, encoding="utf-8")
        return folder

    return make


@pytest.fixture
def package(tmp_path: Path, make_folder: Callable[..., Path], district_keys: tuple[str, str]) -> Callable[..., Path]:
    """Build and sign a package: package(**make_folder kwargs)."""
    from edge.lessons.build import build_package

    counter = [0]

    def make(**kwargs: Any) -> Path:
        counter[0] += 1
        out = tmp_path / f"lesson{counter[0]}.zip"
        build_package(make_folder(**kwargs), out, district_keys[0])
        return out

    return make


@pytest.fixture
def lesson_hub(template: tuple[Path, Any], tmp_path: Path, district_keys: tuple[str, str]) -> HubEnv:  # noqa: F811
    return build_hub(template, tmp_path / "data", district={"public_key": district_keys[1]}, storage={"disk_reserve_mb": 1})
