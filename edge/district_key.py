"""The one district public key of the hub ([district] in the configuration).

The district signs everything it ships with one Ed25519 key: lesson packages,
sync notices (rosters, timetables, models, firmware) and firmware bundles. The
operator configures that key once; every verifier reads it here.
"""

from __future__ import annotations

from edge.config import ConfigError, HubConfig

# The data directory (0700, the hub's own) may hold the key: the demo puts its key there.
DATA_DIR_KEY = "district.pub"


def district_public_key(config: HubConfig) -> str:
    """The configured key (base64): ``public_key``, else ``public_key_file``, else ``<data_dir>/district.pub``; "" when none."""
    if config.district.public_key:
        return config.district.public_key.strip()
    path = config.district.public_key_file
    if path is None:
        path = config.hub.data_dir / DATA_DIR_KEY
        if not path.exists():
            return ""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"district.public_key_file {path} cannot be read: {exc}") from None
