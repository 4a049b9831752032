"""A real Mosquitto started by a test with the repository's district configuration."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

from sync.mosquitto import ACL, render
from tests.proc import dies_with_parent

from .pki import Pki


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


class Broker:
    def __init__(self, directory: Path, pki: Pki, passwords: dict[str, str] | None = None, persistence: bool = True) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.pki = pki
        self.port = free_port()
        self.password_port = free_port()
        conf_dir = directory / "conf"
        conf_dir.mkdir(exist_ok=True)
        shutil.copy(pki.ca_file, conf_dir / "ca.pem")
        shutil.copy(pki.server_cert, conf_dir / "server.pem")
        shutil.copy(pki.server_key, conf_dir / "server.key")
        shutil.copy(ACL, conf_dir / "district.acl")
        pw = conf_dir / "passwords"
        pw.write_text("")
        for user, password in (passwords or {}).items():
            subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True, capture_output=True)
        for f in conf_dir.iterdir():
            f.chmod(0o600)
        data = directory / "data"
        data.mkdir(exist_ok=True)
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(
            render(conf_dir, data, self.port, self.password_port, bind="127.0.0.1", run_user=getpass.getuser(), persistence=persistence)
        )
        self.proc: subprocess.Popen | None = None
        self.log = directory / "mosquitto.log"

    def add_password(self, user: str, password: str) -> None:
        """Another identity for the password listener; before ``start`` (Mosquitto reads the file at start)."""
        pw = self.dir / "conf" / "passwords"
        subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True, capture_output=True)
        pw.chmod(0o600)

    def start(self) -> Broker:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(dies_with_parent(["mosquitto", "-c", str(self.conf)]), stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port)
        wait_port(self.password_port)
        return self

    def kill(self) -> None:
        """SIGKILL, like a crash or a power cut of the broker host."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
