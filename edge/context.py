"""The running hub's shared objects, reachable from any request."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flask import current_app

from edge.config import HubConfig
from edge.storage.db import Database, ThreadLocalDatabase

if TYPE_CHECKING:
    from edge.live.bus import LiveBus
    from edge.quiz.writer import GroupWriter


@dataclass
class Hub:
    config: HubConfig
    databases: ThreadLocalDatabase
    hub_id: str
    hub_secret: str
    bus: LiveBus
    #: Under ``serve``: the file where the arbiter records mDNS registration.
    discovery_state: Path | None = None
    #: The quiz answers' group-commit writer, made on first use (``edge.quiz.writer.writer_for``).
    quiz_writer: GroupWriter | None = None

    @property
    def db(self) -> Database:
        return self.databases.get()

    @property
    def name(self) -> str:
        return f"{self.config.hub.school} {self.config.hub.room}"


def current_hub() -> Hub:
    return current_app.extensions["classroom_hub"]


def db() -> Database:
    return current_hub().db
