"""Photo answers: an image a student takes of their work, size- and pixel-limited.

The bytes must decode as JPEG, PNG or WebP (Pillow reads the header and verifies
the data; the declared Content-Type is not trusted). Stored once per content
hash under ``<data_dir>/quiz-photos/``, written to a temporary file, fsynced
and renamed so a crash never leaves half a photo under a real name.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

from edge.storage.db import Database, transaction

_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


class PhotoError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def photo_dir(data_dir: Path) -> Path:
    return data_dir / "quiz-photos"


def store_photo(db: Database, data_dir: Path, student_id: int, data: bytes, max_bytes: int, max_pixels: int) -> dict[str, object]:
    # Pillow is imported on use: most workers never see a photo answer.
    from PIL import Image, UnidentifiedImageError

    if len(data) > max_bytes:
        raise PhotoError(413, f"the photo is larger than {max_bytes // 1024} KiB; take it again at a lower resolution")
    if not data:
        raise PhotoError(422, "the photo is empty")
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, (w, h) = im.format, im.size
            if fmt not in _FORMATS:
                raise PhotoError(415, "the photo must be a JPEG, PNG or WebP image")
            if w * h > max_pixels:
                raise PhotoError(413, f"the photo has more than {max_pixels} pixels")
            im.verify()
    except PhotoError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise PhotoError(415, "this is not a readable image (JPEG, PNG or WebP)") from None
    digest = hashlib.sha256(data).hexdigest()
    folder = photo_dir(data_dir)
    folder.mkdir(mode=0o700, exist_ok=True)
    final = folder / digest
    if not final.exists():
        tmp = folder / f".{digest}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    with transaction(db):
        db.conn.execute("INSERT OR IGNORE INTO quiz_photos (id, student_id, mime, bytes, width, height, created_at) VALUES (?,?,?,?,?,?,?)",
                        (digest, student_id, _FORMATS[fmt], len(data), w, h, time.time()))
    return {"photo_id": digest, "mime": _FORMATS[fmt], "width": w, "height": h, "bytes": len(data)}
