"""A hub a test started does not outlive a killed test run (``tests/proc.py``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil

from tests.hub.support import clone_data_dir

ROOT = Path(__file__).resolve().parents[2]

# Stands in for pytest: starts a hub as the fixtures do (tests.hub.support.Server), says its
# processes, then waits to be killed.
PARENT = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from tests.hub.support import Server
    srv = Server(Path(sys.argv[2]), workers=2).start(timeout=60)
    print(json.dumps([p.pid for p in srv.processes()]), flush=True)
    time.sleep(600)
    """
)


def test_a_hub_started_by_a_test_run_dies_when_the_run_is_killed(template, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data_dir = clone_data_dir(template[0], tmp_path / "hub")
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(ROOT), str(data_dir)], stdout=subprocess.PIPE, text=True,
                              env={k: v for k, v in os.environ.items() if not k.startswith("HUB_")})
    hub: list[psutil.Process] = []
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line, f"the stand-in test run exited with {parent.wait(5)} before its hub was ready"
        hub = [psutil.Process(pid) for pid in json.loads(line)]
        assert len(hub) >= 3  # the arbiter and two workers
        os.kill(parent.pid, signal.SIGKILL)  # as a CI timeout kills pytest: no fixture runs
        parent.wait(10)
        _, alive = psutil.wait_procs(hub, timeout=15)
        assert not alive, f"still running after the test run was killed: {[(p.pid, p.name()) for p in alive]}"
    finally:
        parent.kill()
        for p in hub:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
