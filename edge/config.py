"""The hub's one typed configuration.

Sources, later ones winning: built-in defaults, a TOML file
(``/etc/classroom-hub/hub.toml`` or ``--config``), then ``HUB_<SECTION>_<KEY>``
environment variables. Every key has a type, a default and a description; the
README's configuration reference is generated from this module
(``classroom-hub config --reference``). Unknown keys are errors that name the key.

Secrets are never part of this model's dump: they are read on demand from a
systemd credential (``$CREDENTIALS_DIRECTORY/<name>``) or a file readable only by
its owner (mode 0600), see :func:`read_secret`.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_CONFIG_PATH = Path("/etc/classroom-hub/hub.toml")
ENV_PREFIX = "HUB_"


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class HubSection(_Section):
    school: str = Field("示范学校", min_length=1, max_length=64, description="School name, shown to tablets and in mDNS.")
    room: str = Field("101", min_length=1, max_length=32, description="Classroom name or number.")
    data_dir: Path = Field(Path("/var/lib/classroom-hub"), description="Database, content store and backups live here.")
    timezone: str = Field("Asia/Shanghai", description="IANA time zone of the school (attendance days, schedules).")


class HttpSection(_Section):
    host: str = Field("0.0.0.0", description="Address the HTTP server binds to.")
    port: int = Field(8080, ge=1, le=65535, description="TCP port of the API and web UI.")
    workers: int = Field(
        4, ge=1, le=16,
        description="gunicorn worker processes. Two per core: a process runs its Python under one GIL and, between "
        "its waits (commits, fsyncs, the write lock), keeps ~0.7 of a core busy (README, Quizzes: workers).",
    )
    threads: int = Field(
        128, ge=8, le=512,
        description="Threads per worker. Each open live-event (SSE) stream holds one, so this must "
        "exceed the tablets per class plus headroom for bursts.",
    )
    max_streams_per_worker: int | None = Field(
        None, ge=1, le=500,
        description="Live-event streams one worker holds before answering 503 + Retry-After, so threads stay "
        "free for ordinary requests (streams do not spread evenly over workers). Default: three quarters of http.threads.",
    )

    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest request body accepted (bytes) on JSON endpoints.")
    max_upload_bytes: int = Field(
        64 * 1_048_576, ge=1024,
        description="Largest upload accepted (bytes) on upload endpoints.",
    )
    graceful_timeout_s: int = Field(5, ge=1, le=30, description="Seconds a worker may take to finish requests on shutdown.")
    sse_heartbeat_s: float = Field(15.0, gt=0, le=120, description="Seconds between keep-alive comments on live-event streams.")

    @model_validator(mode="after")
    def _streams_leave_threads_free(self) -> HttpSection:
        if self.max_streams_per_worker is not None and self.max_streams_per_worker > self.threads - 8:
            raise ValueError(
                f"http.max_streams_per_worker ({self.max_streams_per_worker}) must leave at least 8 of "
                f"http.threads ({self.threads}) for ordinary requests"
            )
        return self

    @property
    def stream_limit(self) -> int:
        return self.max_streams_per_worker if self.max_streams_per_worker is not None else (self.threads * 3) // 4


class DiscoverySection(_Section):
    enabled: bool = Field(True, description="Advertise the hub by mDNS/DNS-SD.")
    hostname: str = Field("", max_length=63, description="mDNS host name (without .local); empty means classroom-hub-<first 8 of hub id>.")
    interfaces: list[str] = Field(default_factory=list, description="Interface names to advertise on; empty means all.")
    address_poll_s: float = Field(2.0, gt=0, le=60, description="Fallback poll period for address changes when netlink is unavailable.")


class StorageSection(_Section):
    busy_timeout_ms: int = Field(5000, ge=100, le=60000, description="How long a writer waits for the database lock.")
    synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="SQLite synchronous mode. FULL fsyncs the WAL at every commit so an acknowledged "
        "write survives power loss; NORMAL survives process crashes only.",
    )
    disk_reserve_mb: int = Field(512, ge=0, description="Free disk below this makes /readyz fail and refuses new recordings.")
    backups_kept: int = Field(5, ge=1, le=100, description="Pre-migration and manual backups kept in <data_dir>/backups.")


class SecuritySection(_Section):
    pairing_code_ttl_s: int = Field(600, ge=30, le=86400, description="Seconds a tablet pairing code stays valid.")
    pairing_code_max_uses: int = Field(60, ge=1, le=200, description="Upper bound on tablets one pairing code may enrol.")
    pairing_max_failures: int = Field(10, ge=1, le=1000, description="Wrong pairing codes (hub-wide, per 10 minutes) before all open codes are withdrawn.")
    pin_max_failures: int = Field(5, ge=1, le=100, description="Wrong PINs in a row before a student's sign-in is locked.")
    pin_lockout_s: int = Field(300, ge=1, le=86400, description="Seconds a student's sign-in stays locked after too many wrong PINs.")
    password_max_failures: int = Field(10, ge=1, le=1000, description="Wrong passwords in a row before an account is locked.")
    session_ttl_s: int = Field(12 * 3600, ge=60, description="Lifetime of a sign-in session (a school day).")
    device_token_ttl_days: int = Field(365, ge=1, description="Lifetime of a tablet's enrolment.")
    trusted_proxy_count: int = Field(0, ge=0, le=4, description="Reverse proxies in front of the hub whose X-Forwarded-For is trusted.")


class LoggingSection(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    format: Literal["json", "text"] = Field("json", description="json for journald/log shippers, text for a terminal.")
    access_log: bool = Field(False, description="Log every HTTP request (noisy during bursts).")


class SyncSection(_Section):
    """The district uplink (classroom-sync). Secrets: credentials district-mqtt-password, district-tls-key."""

    broker_host: str = Field("", description="District MQTT broker host name; empty means not enrolled with a district (the agent idles).")
    broker_port: int = Field(8883, ge=1, le=65535, description="District broker port (MQTT over TLS).")
    tls: bool = Field(True, description="Use TLS to the broker. Only a test broker on loopback may run without.")
    ca_file: Path = Field(Path("/etc/classroom-hub/district-ca.pem"), description="CA certificate(s) that sign the district broker's certificate.")
    cert_file: Path | None = Field(None, description="This hub's client certificate (PEM); its key is the district-tls-key credential.")
    key_file: Path | None = Field(None, description="Client key file when not given as the district-tls-key credential (mode 0600).")
    username: str = Field("", max_length=128, description="MQTT user name; empty means the hub id (password: credential district-mqtt-password).")
    district: str = Field("district", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="District id, first level of every topic.")
    school_id: str = Field("school", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="School id the district registered this hub under.")
    window_start: str = Field("22:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="Start of the nightly upload window (school time zone).")
    window_end: str = Field("05:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="End of the nightly upload window.")
    window_spread_min: int = Field(60, ge=0, le=600, description="Each hub starts at a deterministic offset in [0, spread) minutes after window_start.")
    opportunistic: bool = Field(True, description="Also upload outside the window when connected and the classroom is idle.")
    idle_after_s: int = Field(300, ge=10, description="Seconds without a new outbox event after which the classroom counts as idle.")
    batch_max_events: int = Field(2000, ge=1, le=50000, description="Events per batch at most.")
    batch_max_raw_bytes: int = Field(1_048_576, ge=4096, description="Uncompressed bytes per batch at most.")
    batch_max_wire_bytes: int = Field(131_072, ge=4096, description="Compressed bytes per batch at most (well under common broker packet limits).")
    inflight_batches: int = Field(8, ge=1, le=64, description="Batches published and awaiting the district's ack at once.")
    ack_timeout_s: float = Field(30.0, gt=0, le=3600, description="Seconds without an ack before a batch is sent again.")
    delete_every_batches: int = Field(
        4, ge=1, le=64, description="Acked batches whose rows leave the outbox in one transaction (each such commit rewrites the outbox's event-id index).")
    delete_within_s: float = Field(
        30.0, gt=0, le=600, description="Longest an acked batch's rows wait for that transaction; they also leave when nothing is in flight.")
    reconnect_min_s: float = Field(1.0, gt=0, description="First reconnect delay; doubles with jitter up to reconnect_max_s.")
    reconnect_max_s: float = Field(120.0, gt=0, description="Longest reconnect delay.")
    download_retries: int = Field(5, ge=0, le=100, description="Attempts per download before the notice waits for the next sync.")


class SpeechSection(_Section):
    """Micro-lesson recording and the classroom-speech transcription worker (edge/speech)."""

    enabled: bool = Field(True, description="Accept recordings and run transcription. The hub runs without speech when the model is missing.")
    model_path: Path | None = Field(None, description="Folder of the vosk model; empty means the model named in models/speech/manifest.json.")
    model_sha256: str = Field(
        "", pattern=r"^([0-9a-f]{64})?$",
        description="Expected tree hash of the model folder (sha256 over each file's path and hash); empty takes it from the manifest.",
    )
    concurrency: int = Field(1, ge=1, le=8, description="Recordings transcribed at once by the worker (each uses about one core).")
    silence_dbfs: float = Field(
        -55.0, le=0,
        description="Audio quieter than this (dBFS RMS) for over a second is not fed to the recognizer; its time still counts.",
    )
    live_idle_timeout_s: float = Field(
        30.0, gt=0, le=3600,
        description="A live stream without new audio for this long is closed and its partial transcript kept.",
    )
    max_recording_s: int = Field(3 * 3600, ge=60, description="Longest recording accepted (seconds).")
    max_upload_bytes: int = Field(
        2 * 1024**3, ge=1_048_576,
        description="Largest recording file accepted (a 45-minute lesson is ~90 MB as WAV, more as video).",
    )
    retention_days: int = Field(180, ge=1, description="Recordings' audio is deleted after this many days; transcripts stay.")
    outbox_audio: bool = Field(False, description="Also offer the recording's audio to the district (a file reference in the transcript event).")


class QuizSection(_Section):
    """In-class quizzes (edge/quiz)."""

    photo_max_bytes: int = Field(2_097_152, ge=16_384, le=16_777_216, description="Largest photo answer accepted (bytes).")
    photo_max_pixels: int = Field(16_000_000, ge=10_000, description="Largest photo answer accepted (width x height).")
    default_grace_s: float = Field(
        120.0, ge=0, le=86400,
        description="Answers made offline before a question closed are accepted this long after the close, unless the teacher sets otherwise.",
    )
    import_max_bytes: int = Field(8_388_608, ge=4096, description="Largest question-bank file accepted for import (bytes).")


class DistrictSection(_Section):
    """The district that signs what the hub installs: lesson packages, sync notices, firmware. One key, configured once."""

    public_key: str = Field(
        "", description="The district's Ed25519 public key (base64 of 32 bytes) that signs lesson packages, sync notices and firmware.",
    )
    public_key_file: Path | None = Field(None, description="File holding the district public key (base64); used when public_key is empty.")


class DevicesSection(_Section):
    """Charging carts and the tablet fleet."""

    end_of_day: str = Field(
        "17:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Local time (HH:MM) after which tablets still checked out raise a not-returned alert, once a day.",
    )


class HubConfig(_Section):
    hub: HubSection = Field(default_factory=HubSection)
    http: HttpSection = Field(default_factory=HttpSection)
    discovery: DiscoverySection = Field(default_factory=DiscoverySection)
    storage: StorageSection = Field(default_factory=StorageSection)
    security: SecuritySection = Field(default_factory=SecuritySection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    sync: SyncSection = Field(default_factory=SyncSection)
    speech: SpeechSection = Field(default_factory=SpeechSection)
    district: DistrictSection = Field(default_factory=DistrictSection)
    quiz: QuizSection = Field(default_factory=QuizSection)
    devices: DevicesSection = Field(default_factory=DevicesSection)

    @property
    def db_path(self) -> Path:
        return self.hub.data_dir / "hub.sqlite3"

    @property
    def backups_dir(self) -> Path:
        return self.hub.data_dir / "backups"

    @property
    def run_dir(self) -> Path:
        return self.hub.data_dir / "run"


SECTIONS: dict[str, type[_Section]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in HubConfig.model_fields.items()
}


def _env_overrides(environ: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Map HUB_<SECTION>_<KEY> variables onto sections; unknown ones are errors."""
    out: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _NON_CONFIG_ENV:
            continue
        rest = name[len(ENV_PREFIX):].lower()
        section, _, key = rest.partition("_")
        if section not in SECTIONS or key not in SECTIONS[section].model_fields:
            raise ConfigError(f"unknown configuration variable {name}: no key {section}.{key}")
        field = SECTIONS[section].model_fields[key]
        value: Any = raw
        if field.annotation is bool:
            value = raw.strip().lower() in ("1", "true", "yes", "on")
        elif field.annotation == list[str]:
            value = [part.strip() for part in raw.split(",") if part.strip()]
        out.setdefault(section, {})[key] = value
    return out


# Variables with the prefix that are not configuration keys.
_NON_CONFIG_ENV = {"HUB_CONFIG"}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in override.items():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section].update(values)
        else:
            merged[section] = values
    return merged


# Keys that moved: the error names the new place, so an upgraded hub's operator knows what to change.
_MOVED = {"sync.district_public_key": "district.public_key"}


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden" and key in _MOVED:
            parts.append(f"configuration key {key} is now {_MOVED[key]}")
        elif e["type"] == "extra_forbidden":
            parts.append(f"unknown configuration key {key}")
        else:
            parts.append(f"{key}: {e['msg']}")
    return "; ".join(parts)


def load_config(
    path: Path | None = None,
    environ: dict[str, str] | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> HubConfig:
    """Build the configuration from file, environment and explicit overrides.

    ``path`` None means ``$HUB_CONFIG`` or the default path if it exists.
    Raises :class:`ConfigError` naming the first offending key(s).
    """
    environ = dict(os.environ if environ is None else environ)
    data: dict[str, Any] = {}
    if path is None and environ.get("HUB_CONFIG"):
        path = Path(environ["HUB_CONFIG"])
    if path is None and DEFAULT_CONFIG_PATH.exists():
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
        for section, values in data.items():
            if section not in SECTIONS:
                raise ConfigError(f"unknown configuration section [{section}] in {path}")
            if not isinstance(values, dict):
                raise ConfigError(f"[{section}] in {path} must be a table")
    data = _merge(data, _env_overrides(environ))
    if overrides:
        data = _merge(data, overrides)
    try:
        return HubConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def read_secret(name: str, fallback_dir: Path | None = None) -> str | None:
    """Read a secret from systemd credentials, else from ``fallback_dir/name``.

    A fallback file must be a regular file not readable by group or others
    (0600 or stricter); anything looser is refused so a secret never sits in a
    world-readable file. Returns None when the secret is not provided.
    """
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    candidates = []
    if cred_dir:
        candidates.append((Path(cred_dir) / name, False))
    if fallback_dir is not None:
        candidates.append((fallback_dir / name, True))
    for candidate, check_mode in candidates:
        try:
            st = candidate.stat()
        except FileNotFoundError:
            continue
        if check_mode and (st.st_mode & (stat.S_IRWXG | stat.S_IRWXO)):
            raise ConfigError(f"secret file {candidate} must be mode 0600 (it is {stat.S_IMODE(st.st_mode):04o})")
        return candidate.read_text(encoding="utf-8").strip()
    return None


def reference_markdown() -> str:
    """The configuration reference as a Markdown table (for the README)."""
    lines = ["| key | env variable | type | default | description |", "|---|---|---|---|---|"]
    for section, model in SECTIONS.items():
        for key, field in model.model_fields.items():
            default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
            ann = getattr(field.annotation, "__name__", str(field.annotation)).replace("typing.", "")
            if str(field.annotation).startswith("typing.Literal"):
                ann = " \\| ".join(repr(a) for a in field.annotation.__args__)  # type: ignore[union-attr]
            lines.append(
                f"| `{section}.{key}` | `HUB_{section.upper()}_{key.upper()}` | {ann} | `{default}` | {field.description} |"
            )
    return "\n".join(lines)
