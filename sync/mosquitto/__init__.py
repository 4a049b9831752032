"""The district broker's Mosquitto configuration, rendered from ``district.conf.in``."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
TEMPLATE = HERE / "district.conf.in"
ACL = HERE / "district.acl"


def render(conf_dir: Path, data_dir: Path, cert_port: int = 8883, password_port: int = 8884, bind: str = "0.0.0.0",
           run_user: str = "mosquitto", persistence: bool = True) -> str:
    """The broker configuration with its paths and ports filled in.

    ``conf_dir`` must hold ca.pem, server.pem, server.key, passwords and district.acl.
    """
    values = {
        "@CONF_DIR@": str(conf_dir), "@DATA_DIR@": str(data_dir), "@CERT_PORT@": str(cert_port),
        "@PASSWORD_PORT@": str(password_port), "@BIND@": bind, "@RUN_USER@": run_user,
        "@PERSISTENCE@": "true" if persistence else "false",
    }
    text = TEMPLATE.read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(key, value)
    if "@" in "".join(line for line in text.splitlines() if not line.startswith("#")):
        raise ValueError("unfilled field in the broker template")
    return text
