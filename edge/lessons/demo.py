"""The demo classroom's sample lesson, built and signed with the package tool.

Each demo data directory gets its own district key pair: the private key stays
in ``<data_dir>/demo-district.key`` (0600) and the public key goes to
``<data_dir>/district.pub``, which the hub trusts when ``[district]`` names no key.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import tempfile
import wave
from pathlib import Path
from typing import Any

from edge import signing
from edge.config import HubConfig

SAMPLE_FOLDER = Path(__file__).resolve().parent / "demo_lesson"


def write_tone_wav(path: Path, seconds: float = 2.0, rate: int = 16000) -> None:
    """A real, small audio file: a C-major arpeggio (so 'listen' has something to play)."""
    notes = [261.63, 329.63, 392.0, 523.25]
    frames = bytearray()
    n = int(seconds * rate)
    for i in range(n):
        f = notes[min(len(notes) - 1, i * len(notes) // n)]
        frames += struct.pack("<h", int(9000 * math.sin(2 * math.pi * f * i / rate)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))


def demo_keys(data_dir: Path) -> tuple[str, str]:
    """The demo district's (private, public) key, created on first use."""
    key_file = data_dir / "demo-district.key"
    if not key_file.exists():
        private, public = signing.generate_key()
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(private + "\n")
        (data_dir / "district.pub").write_text(public + "\n")
    private = signing.read_key_file(key_file)
    return private, signing.public_key_of(private)


def build_sample(out: Path, private_key: str) -> None:
    from edge.lessons.build import build_package

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "lesson"
        shutil.copytree(SAMPLE_FOLDER, folder)
        write_tone_wav(folder / "listen.wav")
        build_package(folder, out, private_key)


def add_sample_lesson(config: HubConfig, creds: Any) -> None:
    """DEMO_CONTENT hook: build, sign and import the sample lesson; schedule it for today, period 1."""
    from edge.accounts.service import school_day
    from edge.lessons import service
    from edge.lessons.importer import import_package
    from edge.storage.db import connect

    data_dir = config.hub.data_dir
    private, _ = demo_keys(data_dir)
    package = data_dir / "demo-lesson.zip"
    build_sample(package, private)
    db = connect(config.db_path, config.storage.busy_timeout_ms, config.storage.synchronous)
    try:
        result = import_package(config, db, package)
        class_id = db.execute("SELECT id FROM classes ORDER BY id LIMIT 1").fetchone()[0]
        service.set_period(db, class_id, school_day(config.hub.timezone), 1, result.lesson, None)
    finally:
        db.conn.close()
