"""Every MQTT topic, spelled once.

Layout ``edu/<district>/<school>/<hub>/<direction>/<what>``:

- ``up/batch``   hub -> district: compressed event batches (QoS 1)
- ``up/hello``   hub -> district: "everything up to my floor is gone from my outbox; what do you hold?"
- ``up/status``  hub -> district: retained ``online``/``offline`` (the last will)
- ``down/ack``   district -> hub: batch acks and the reply to hello (the high-water mark)
- ``down/notice/<kind>`` district -> hub: files to fetch (retained: the latest of each kind)
- ``edu/<district>/broadcast/notice/<kind>``: files for every hub of the district

The broker's ACL (``sync/mosquitto/district.acl``) grants each hub exactly its own
``up/#`` for writing and its own ``down/#`` plus the broadcast for reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROOT = "edu"
SHARE_GROUP = "district-ingest"

_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def check_id(value: str, what: str) -> str:
    """An id used as a topic level: no wildcards, separators or empty levels."""
    if not _ID.match(value):
        raise ValueError(f"{what} {value!r} cannot be a topic level (letters, digits, _ . - only, at most 64)")
    return value


@dataclass(frozen=True)
class HubTopics:
    district: str
    school: str
    hub: str

    def __post_init__(self) -> None:
        check_id(self.district, "district id")
        check_id(self.school, "school id")
        check_id(self.hub, "hub id")

    @property
    def prefix(self) -> str:
        return f"{ROOT}/{self.district}/{self.school}/{self.hub}"

    @property
    def batch(self) -> str:
        return f"{self.prefix}/up/batch"

    @property
    def hello(self) -> str:
        return f"{self.prefix}/up/hello"

    @property
    def status(self) -> str:
        return f"{self.prefix}/up/status"

    @property
    def ack(self) -> str:
        return f"{self.prefix}/down/ack"

    def notice(self, kind: str) -> str:
        return f"{self.prefix}/down/notice/{check_id(kind, 'kind')}"

    @property
    def notices(self) -> str:
        return f"{self.prefix}/down/notice/+"

    @property
    def broadcast_notices(self) -> str:
        return broadcast_notice(self.district, "+")


def broadcast_notice(district: str, kind: str) -> str:
    return f"{ROOT}/{check_id(district, 'district id')}/broadcast/notice/{kind}"


def ingest_filters(district: str = "+") -> list[str]:
    """Shared-subscription filters of the ingest service (MQTT v5 ``$share``)."""
    return [f"$share/{SHARE_GROUP}/{ROOT}/{district}/+/+/up/batch", f"$share/{SHARE_GROUP}/{ROOT}/{district}/+/+/up/hello"]


def status_filter(district: str = "+") -> str:
    return f"{ROOT}/{district}/+/+/up/status"


def parse_up(topic: str) -> tuple[HubTopics, str] | None:
    """(hub topics, 'batch'|'hello'|'status') for an uplink topic, else None."""
    parts = topic.split("/")
    if len(parts) != 6 or parts[0] != ROOT or parts[4] != "up" or parts[5] not in ("batch", "hello", "status"):
        return None
    try:
        return HubTopics(parts[1], parts[2], parts[3]), parts[5]
    except ValueError:
        return None
