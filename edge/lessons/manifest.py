"""The lesson manifest: the one schema of a lesson package's ``manifest.json``.

The district signs the exact bytes of ``manifest.json``; the manifest lists every
file of the package with its size and sha256, so one signature covers every byte
a tablet will ever be shown. History of ``format``: 1 = first version.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

FORMAT_VERSION = 1
SUPPORTED_FORMATS = frozenset({1})
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.json.sig"
FILES_PREFIX = "files/"
MAX_MANIFEST_BYTES = 1_048_576

# What a lesson may contain, by extension. Explicit because the system mimetypes
# database differs between machines, and a tablet must get the same type everywhere.
MEDIA_TYPES: dict[str, str] = {
    ".html": "text/html", ".htm": "text/html", ".css": "text/css", ".js": "text/javascript",
    ".json": "application/json", ".txt": "text/plain", ".md": "text/markdown",
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
    ".webp": "image/webp", ".svg": "image/svg+xml",
    ".mp4": "video/mp4", ".webm": "video/webm", ".mp3": "audio/mpeg", ".m4a": "audio/mp4",
    ".ogg": "audio/ogg", ".oga": "audio/ogg", ".wav": "audio/wav", ".pdf": "application/pdf",
    ".woff2": "font/woff2", ".vtt": "text/vtt",
}
ALLOWED_MEDIA_TYPES = frozenset(MEDIA_TYPES.values())

_PATH_CHARS = r"^[A-Za-z0-9_\-./]{1,200}$"


def _safe_path(value: str) -> str:
    """A relative '/'-separated path without empty, '.' or '..' parts (ASCII only, so every file system takes it)."""
    parts = value.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"path {value!r} must be relative, without empty, '.' or '..' parts")
    return value


SafePath = Annotated[str, Field(pattern=_PATH_CHARS), AfterValidator(_safe_path)]


class ManifestError(ValueError):
    """The manifest is not valid; the message says what is wrong."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class FileEntry(_Strict):
    path: SafePath = Field(description="Path inside files/ of the archive, '/'-separated.")
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    media_type: str

    @model_validator(mode="after")
    def _known_type(self) -> FileEntry:
        if self.media_type not in ALLOWED_MEDIA_TYPES:
            raise ValueError(f"file {self.path}: media type {self.media_type} is not allowed in a lesson")
        return self


class Page(_Strict):
    title: str = Field(min_length=1, max_length=200)
    file: SafePath = Field(description="The file shown on this page (a path from 'files').")


class QuizRef(_Strict):
    """An attached quiz: opaque to lessons; the quiz capability reads the file."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")
    file: SafePath | None = None


class Manifest(_Strict):
    format: Literal[1] = Field(description="Manifest format version.")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$", description="Lesson id, stable across versions.")
    version: int = Field(ge=1, le=1_000_000)
    title: str = Field(min_length=1, max_length=200)
    subject: str = Field(min_length=1, max_length=64)
    grade: int = Field(ge=1, le=12)
    chapter: str = Field("", max_length=200, description="Textbook chapter.")
    knowledge_points: list[str] = Field(default_factory=list, max_length=200)
    pages: list[Page] = Field(min_length=1, max_length=1000)
    files: list[FileEntry] = Field(min_length=1, max_length=10_000)
    quizzes: list[QuizRef] = Field(default_factory=list, max_length=200)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        paths = [f.path for f in self.files]
        if len(set(paths)) != len(paths):
            raise ValueError("a file is listed twice")
        known = set(paths)
        for page in self.pages:
            if page.file not in known:
                raise ValueError(f"page '{page.title}' shows {page.file}, which is not in 'files'")
        for quiz in self.quizzes:
            if quiz.file is not None and quiz.file not in known:
                raise ValueError(f"quiz {quiz.id} names {quiz.file}, which is not in 'files'")
        return self

    def file(self, path: str) -> FileEntry:
        return next(f for f in self.files if f.path == path)


def parse_manifest(raw: bytes) -> Manifest:
    """Validate manifest bytes; raise :class:`ManifestError` with a clear reason."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest.json is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"manifest.json is not UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ManifestError("manifest.json must be a JSON object")
    fmt = data.get("format")
    if fmt not in SUPPORTED_FORMATS:
        raise ManifestError(f"unknown manifest format {fmt!r}: this hub reads format {sorted(SUPPORTED_FORMATS)}; update the hub software")
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "manifest"
        raise ManifestError(f"manifest.json: {where}: {first['msg']}") from None


def dump_manifest(manifest: Manifest) -> bytes:
    """Canonical bytes (sorted keys, UTF-8) - what the district signs."""
    return json.dumps(manifest.model_dump(mode="json"), ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")


MediaKind = Literal["image", "video", "audio", "html", "other"]


def media_kind(media_type: str) -> MediaKind:
    if media_type == "text/html":
        return "html"
    head = media_type.split("/", 1)[0]
    return head if head in ("image", "video", "audio") else "other"  # type: ignore[return-value]
