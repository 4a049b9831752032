"""Prometheus metrics, aggregated across gunicorn workers.

Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` is set by the arbiter before the
workers fork, so each worker writes its samples to files there and a scrape of
any worker sees the sum. Values that live in the database (outbox depth,
students signed in today) are read at scrape time instead of counted.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from edge.context import Hub

REQUESTS = Counter("hub_http_requests_total", "HTTP requests handled", ["method", "endpoint", "status"])
LATENCY = Histogram(
    "hub_http_request_seconds", "Time to produce a response (streams: time to first byte)", ["endpoint"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
# (method, endpoint, status) -> the children of REQUESTS and LATENCY. ``labels()`` takes the
# metric's lock and builds a key on every call; the children never change, so each request
# after the first of its kind finds them with one dict lookup (a racing first insert is
# harmless: ``labels()`` returns the same children).
_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def request_metrics(method: str, endpoint: str, status: int) -> tuple[Any, Any]:
    """The request counter and latency histogram children for one kind of request."""
    key = (method, endpoint, status)
    children = _CHILDREN.get(key)
    if children is None:
        children = _CHILDREN[key] = (REQUESTS.labels(method, endpoint, str(status)), LATENCY.labels(endpoint))
    return children


LIVE_STREAMS = Gauge("hub_live_streams", "Open live-event (SSE) streams", multiprocess_mode="livesum")


class HubStateCollector(Collector):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[GaugeMetricFamily]:
        db = self.hub.db
        depth, oldest = db.execute("SELECT COUNT(*), MIN(created_at) FROM outbox").fetchone()
        yield GaugeMetricFamily("hub_outbox_depth", "Events waiting to be sent to the district", value=depth)
        yield GaugeMetricFamily(
            "hub_outbox_oldest_age_seconds", "Age of the oldest unsent event", value=(time.time() - oldest) if oldest else 0.0
        )
        last_sync = db.execute("SELECT value FROM hub_meta WHERE key = 'last_sync_at'").fetchone()
        yield GaugeMetricFamily(
            "hub_last_sync_timestamp_seconds", "When the district last acknowledged a batch", value=float(last_sync[0]) if last_sync else 0.0
        )
        devices = db.execute("SELECT COUNT(*) FROM devices WHERE revoked_at IS NULL").fetchone()[0]
        yield GaugeMetricFamily("hub_enrolled_devices", "Enrolled, unrevoked tablets", value=devices)
        free = shutil.disk_usage(self.hub.config.hub.data_dir).free
        yield GaugeMetricFamily("hub_disk_free_bytes", "Free bytes on the data volume", value=free)
        try:
            size = os.path.getsize(self.hub.config.db_path)
        except OSError:
            size = 0
        yield GaugeMetricFamily("hub_database_bytes", "Size of the main database file", value=size)
        waiting, queued = _learning_backlog(db)
        yield GaugeMetricFamily("hub_learning_pending", "Graded answers waiting for their mastery update", value=waiting)
        yield GaugeMetricFamily(
            "hub_learning_pending_oldest_age_seconds", "Age of the oldest of them", value=(time.time() - queued) if queued else 0.0
        )


def _learning_backlog(db: Any) -> tuple[int, float | None]:
    try:
        from edge.learning.pending import backlog
    except ModuleNotFoundError:  # a hub built without personalised learning
        return 0, None
    return backlog(db)


def render(hub: Hub) -> bytes:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    state = CollectorRegistry()
    state.register(HubStateCollector(hub))
    return generate_latest(registry) + generate_latest(state)
