"""What a tablet remembers between runs: its hub and its device token.

The file holds a credential, so it is created 0600 and replaced atomically (a crash
mid-write must not leave a tablet that has forgotten its enrolment).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_VERSION = 1


@dataclass(slots=True)
class TabletState:
    """The remembered hub (id, last addresses, port) and this device's enrolment."""

    hub_id: str | None = None
    hub_name: str = ""
    addresses: list[str] = field(default_factory=list)
    port: int | None = None
    device_id: str | None = None
    device_token: str | None = None
    kind: str | None = None

    @property
    def knows_hub(self) -> bool:
        """True when there is an address worth trying before browsing."""
        return bool(self.hub_id and self.addresses and self.port)


def load_state(path: Path | None) -> TabletState:
    """The state stored at ``path``; an empty state if there is none or it is unreadable."""
    if path is None or not path.exists():
        return TabletState()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return TabletState()
    if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
        return TabletState()
    known = {k: raw[k] for k in TabletState.__dataclass_fields__ if k in raw}
    return TabletState(**known)


def save_state(path: Path | None, state: TabletState) -> None:
    """Write ``state`` to ``path`` atomically with mode 0600; no-op when ``path`` is None."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"version": STATE_VERSION, **asdict(state)}, ensure_ascii=False, indent=2)
    # mkstemp creates the file 0600, so the token is never readable by others, even briefly.
    fd, tmp = tempfile.mkstemp(prefix=".tablet-state-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
