"""Processes a test starts end with the test run, even when pytest is killed.

A fixture stops its hub, broker or ingest when the test ends. When pytest itself is
killed (SIGKILL from a CI timeout, or a developer's ``kill -9``) no fixture runs, and
those processes lived on, holding their ports, their data directories and the
machine's two cores. :func:`dies_with_parent` starts a command under util-linux's
``setpriv --pdeathsig KILL``, which asks the kernel to send the child SIGKILL when the
thread that started it ends; ``setpriv`` then execs the command, so the process (and
its pid) is the command's own. A hub's workers follow their arbiter out (gunicorn's
workers watch their parent).

The signal follows the starting *thread*: start these processes from the test's own
thread (fixtures are), not from a helper thread that ends before they should.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence

SETPRIV = shutil.which("setpriv")


def dies_with_parent(argv: Sequence[str]) -> list[str]:
    """``argv`` run so that it is killed when the starting thread (pytest) ends."""
    if SETPRIV is None:  # util-linux is on every Debian; without it, only the fixtures stop them
        return list(argv)
    return [SETPRIV, "--pdeathsig", "KILL", "--", *argv]
