"""The DNS-SD record layout of a hub, written once for the advertiser and the tablets.

TXT values are plain UTF-8 strings (RFC 6763 §6.5): a native launcher must be able to
read them without a JSON parser, and nothing secret ever goes here because every
device on the Wi-Fi can read them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

SERVICE_TYPE = "_classroom-hub._tcp.local."
HTTP_SERVICE_TYPE = "_http._tcp.local."
TXT_VERSION = 1

WEB_PATH = "/"
API_PATH = "/api/v1"

# DNS labels are limited to 63 bytes (RFC 6763 §4.1.1); the instance name is "<school> <room>"
# and may grow by a " (N)" suffix on conflicts, so it is cut on a character boundary.
MAX_INSTANCE_BYTES = 63


class TxtError(ValueError):
    """A TXT record that is not a hub we understand (wrong version, bad id, missing key)."""


@dataclass(frozen=True, slots=True)
class HubTxt:
    """The parsed TXT record of a hub."""

    txtvers: int
    id: str
    school: str
    room: str
    api: int
    path: str

    @property
    def api_path(self) -> str:
        """Where the versioned API lives, e.g. ``/api/v1``."""
        return f"/api/v{self.api}"


def build_txt(*, hub_id: str, school: str, room: str, api_major: int = 1) -> dict[str, str]:
    """The TXT properties a hub announces on both service types."""
    return {
        "txtvers": str(TXT_VERSION),
        "id": str(uuid.UUID(hub_id)),
        "school": school,
        "room": room,
        "api": str(api_major),
        "path": WEB_PATH,
    }


def parse_txt(props: Mapping[bytes | str, bytes | str | None]) -> HubTxt:
    """Validate a TXT record as seen by a tablet.

    Raises :class:`TxtError` for anything a tablet should not connect to: an unknown
    ``txtvers`` (a future layout we cannot read), an ``id`` that is not a UUID, or a
    missing key. Keys are case-insensitive (RFC 6763 §6.4).
    """
    values: dict[str, str] = {}
    for key, value in props.items():
        k = key.decode("ascii", "replace") if isinstance(key, bytes) else key
        if value is None:
            continue
        v = value.decode("utf-8") if isinstance(value, bytes) else value
        values.setdefault(k.lower(), v)
    try:
        txtvers = int(values["txtvers"])
    except (KeyError, ValueError) as exc:
        raise TxtError("TXT record has no usable txtvers") from exc
    if txtvers != TXT_VERSION:
        raise TxtError(f"unsupported txtvers {txtvers} (this client reads {TXT_VERSION})")
    try:
        hub_id = str(uuid.UUID(values["id"]))
    except (KeyError, ValueError) as exc:
        raise TxtError("TXT id is missing or not a UUID") from exc
    try:
        api = int(values.get("api", "1"))
    except ValueError as exc:
        raise TxtError(f"TXT api is not an integer: {values.get('api')!r}") from exc
    return HubTxt(
        txtvers=txtvers,
        id=hub_id,
        school=values.get("school", ""),
        room=values.get("room", ""),
        api=api,
        path=values.get("path", WEB_PATH) or WEB_PATH,
    )


def instance_name(school: str, room: str, attempt: int = 1) -> str:
    """The DNS-SD instance label: "<school> <room>", then "<school> <room> (N)" on conflicts.

    The suffix is kept whole and the base is shortened instead, so successive attempts
    always give distinct labels even for very long school names.
    """
    suffix = "" if attempt <= 1 else f" ({attempt})"
    base = f"{school} {room}".strip()
    budget = MAX_INSTANCE_BYTES - len(suffix.encode())
    while len(base.encode()) > budget:
        base = base[:-1]
    return base + suffix


def host_label(hub_id: str, hostname: str = "") -> str:
    """The stable mDNS host name label (without ``.local.``)."""
    return hostname or f"classroom-hub-{uuid.UUID(hub_id).hex[:8]}"
