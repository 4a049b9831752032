"""A model installed through one worker of the real server is used by every worker, without a restart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import requests

from edge import inbox
from edge.storage.db import connect
from tests.hub.support import HttpHub, bearer

TINY = Path(__file__).resolve().parent / "data"


def test_every_worker_swaps_to_a_newly_installed_model(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(workers=2).start(timeout=60)
    hub = HttpHub(server)
    admin, teacher = hub.login("admin"), hub.login("teacher")

    def versions() -> set[str]:
        # Enough requests that both workers answer some (each loads and caches the model it sees).
        return {requests.get(server.url + "/api/v1/learning/model", headers=bearer(teacher), timeout=10).json()["version"] for _ in range(24)}

    bundled = versions()
    assert len(bundled) == 1 and "dkt-tiny-test" not in bundled
    # The sync agent's part: a verified download recorded in the inbox.
    drop = tmp_path / "download"
    shutil.copytree(TINY, drop)
    sha = json.loads((drop / "manifest.json").read_text())["sha256"]
    db = connect(server.data_dir / "hub.sqlite3")
    try:
        inbox.add(db, "model", drop / "manifest.json", sha)
    finally:
        db.conn.close()
    r = requests.post(server.url + "/api/v1/learning/model/install", headers=bearer(admin), timeout=30)
    assert r.status_code == 200 and r.json()["active"] == "dkt-tiny-test", r.text
    assert versions() == {"dkt-tiny-test"}
    assert server.proc is not None and server.proc.poll() is None  # no restart
