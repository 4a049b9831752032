"""The district public key lesson packages are verified with ([district] in the configuration)."""

from __future__ import annotations

from edge.config import ConfigError, HubConfig

DATA_DIR_KEY = "district.pub"


def district_public_key(config: HubConfig) -> str:
    """The configured key (base64), or "" when none is configured."""
    if config.district.public_key:
        return config.district.public_key.strip()
    path = config.district.public_key_file
    if path is None:
        # The data directory (0700, the hub's own) may hold the key: the demo puts its key there.
        path = config.hub.data_dir / DATA_DIR_KEY
        if not path.exists():
            return ""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"district.public_key_file {path} cannot be read: {exc}") from None
