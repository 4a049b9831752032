"""The hub under gunicorn.

Why gunicorn with gthread workers (measured in ``tests/bench/bench_wsgi.py``,
figures in the README; the workers are gthread's with one change, ``edge/server/worker.py``):
several processes (http.workers, two per core) get both cores working on
bursts from 55 tablets, and a thread per connection lets ~60 Server-Sent-Event
streams stay open without starving ordinary requests, with no monkey-patching
(gevent) of SQLite, zeroconf or argon2.

The arbiter (main process, the one systemd watches) owns:
- READY=1 once migrations are done (before the app is loaded), mDNS is
  registered and a worker answers ``/readyz``;
- WATCHDOG=1 from its main loop, only while workers exist and the advertiser
  is alive, so a wedged arbiter or a dead mDNS thread gets the unit restarted;
- goodbyes on mDNS and STOPPING=1 on SIGTERM, before workers are told to stop.
"""

from __future__ import annotations

import gc
import http.client
import logging
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from edge.config import HubConfig
from edge.runtime import systemd

log = logging.getLogger(__name__)

DISCOVERY_STATE_FILE = "discovery.state"


class _Advertising:
    """Starts the mDNS advertiser off the arbiter's loop and reports its state.

    A registration normally takes ~2 s (probing, then three announcements). One that has
    not finished after ``REGISTER_DEADLINE_S`` is logged with every thread's stack, set
    aside and started again with a fresh zeroconf instance: a hung registration must not
    keep the hub from ever reporting READY (systemd would kill it at its start timeout
    and the classroom would see restarts with nothing in the journal to say why).
    """

    REGISTER_DEADLINE_S = 12.0
    ATTEMPTS = 3

    def __init__(self, config: HubConfig, hub_id: str) -> None:
        self.config = config
        self.hub_id = hub_id
        self.advertiser: Any = None
        self.registered = threading.Event()
        self.failed: str | None = None

    def start(self) -> None:
        if not self.config.discovery.enabled:
            self._record("disabled")
            self.registered.set()
            return
        threading.Thread(target=self._run, name="mdns-start", daemon=True).start()

    def _new_advertiser(self) -> Any:
        from edge.discovery.advertiser import HubAdvertiser

        d = self.config.discovery
        return HubAdvertiser(
            hub_id=self.hub_id,
            school=self.config.hub.school,
            room=self.config.hub.room,
            port=self.config.http.port,
            hostname=d.hostname,
            interfaces=d.interfaces or None,
            address_poll_s=d.address_poll_s,
        )

    def _run(self) -> None:
        for attempt in range(1, self.ATTEMPTS + 1):
            registration = _Registration(self._new_advertiser(), attempt)
            if registration.wait(self.REGISTER_DEADLINE_S):
                if registration.error is None:
                    self.advertiser = registration.advertiser
                else:
                    self.failed = registration.error
                break
            log.warning(
                "mDNS registration did not finish; starting it again",
                extra={"attempt": attempt, "deadline_s": self.REGISTER_DEADLINE_S, "threads": _thread_stacks()},
            )
            registration.abandon()
        else:
            self.failed = f"registration did not finish in {self.ATTEMPTS} attempts of {self.REGISTER_DEADLINE_S:g} s"
        if self.failed:  # the hub still serves by address without mDNS
            log.error("mDNS advertising failed; tablets must be given the address", extra={"error": self.failed})
        self._record(f"failed: {self.failed}" if self.failed else "registered")
        self.registered.set()

    def _record(self, state: str) -> None:
        # The workers' /readyz reads this: the arbiter's advertiser is not theirs to ask.
        write_discovery_state(self.config, state)

    def alive(self) -> bool:
        if not self.config.discovery.enabled or self.failed:
            return True
        return self.advertiser is None or bool(self.advertiser.is_alive())

    def stop(self) -> None:
        if self.advertiser is not None:
            try:
                self.advertiser.stop()
            except Exception:
                log.exception("mDNS goodbye failed")


class _Registration:
    """One attempt at ``HubAdvertiser.start()``, in its own thread so the caller can stop waiting."""

    def __init__(self, advertiser: Any, attempt: int) -> None:
        self.advertiser = advertiser
        self.error: str | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._abandoned = False
        threading.Thread(target=self._run, name=f"mdns-register-{attempt}", daemon=True).start()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)

    def abandon(self) -> None:
        """Give up on this attempt; if it finishes later, it withdraws quietly."""
        with self._lock:
            self._abandoned = True
            finished = self._done.is_set() and self.error is None
        if finished:
            self._discard()

    def _run(self) -> None:
        try:
            self.advertiser.start()
        except Exception as exc:
            self.error = str(exc) or type(exc).__name__
        with self._lock:
            self._done.set()
            late = self._abandoned and self.error is None
        if late:
            log.warning("an abandoned mDNS registration finished late; withdrawing it")
            self._discard()

    def _discard(self) -> None:
        # No goodbyes: the attempt that replaced this one announces the same names.
        try:
            self.advertiser.discard()
        except Exception:
            log.exception("discarding an abandoned mDNS registration failed")


def _thread_stacks() -> dict[str, str]:
    """Every thread's current stack, for a log line about something stuck."""
    names = {t.ident: t.name for t in threading.enumerate()}
    return {
        f"{names.get(ident, 'thread')}-{ident}": "".join(traceback.format_stack(frame)[-12:])
        for ident, frame in sys._current_frames().items()
    }


class HubArbiter(Arbiter):
    """gunicorn's arbiter plus readiness, watchdog and mDNS lifecycle."""

    advertising: _Advertising
    hub_config: HubConfig

    def __init__(self, app: HubApplication) -> None:
        super().__init__(app)
        self.advertising = app.advertising
        self.hub_config = app.hub_config
        self._ready_sent = False
        self._watchdog_every = systemd.watchdog_interval_s()
        self._last_ping = 0.0
        self._started = time.monotonic()

    def start(self) -> None:
        # gunicorn sends its own READY=1 as soon as it has bound the port, before
        # any worker exists or mDNS is up; hide the socket from it so systemd
        # hears READY only from _tick().
        saved = os.environ.pop("NOTIFY_SOCKET", None)
        try:
            super().start()
        finally:
            if saved is not None:
                os.environ["NOTIFY_SOCKET"] = saved

    def wait_for_signals(self, timeout: float = 1.0) -> list[int]:
        # The main loop pings the watchdog once per turn, and a turn waits up to a second
        # for a signal: with WatchdogSec under 2 s the pings would come later than half of it.
        if self._watchdog_every is not None:
            timeout = min(timeout, self._watchdog_every)
        return super().wait_for_signals(timeout)

    def murder_workers(self) -> None:
        super().murder_workers()
        self._tick()

    def _tick(self) -> None:
        if not self._ready_sent and self.advertising.registered.is_set() and self.WORKERS and self._probe_ready():
            self._ready_sent = True
            elapsed = time.monotonic() - self._started
            systemd.ready(f"serving on port {self.hub_config.http.port}")
            log.info("hub ready", extra={"seconds_since_start": round(elapsed, 3), "workers": len(self.WORKERS)})
        if self._watchdog_every is not None and time.monotonic() - self._last_ping >= self._watchdog_every:
            if self.WORKERS and self.advertising.alive():
                systemd.watchdog()
                self._last_ping = time.monotonic()

    def _probe_ready(self) -> bool:
        host = self.hub_config.http.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        try:
            conn = http.client.HTTPConnection(host, self.hub_config.http.port, timeout=0.5)
            conn.request("GET", "/readyz")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def stop(self, graceful: bool = True) -> None:
        systemd.stopping("stopping")
        self.advertising.stop()
        super().stop(graceful)


class HubApplication(BaseApplication):
    def __init__(self, config: HubConfig, hub_id: str) -> None:
        self.hub_config = config
        self.advertising = _Advertising(config, hub_id)
        super().__init__()

    def load_config(self) -> None:
        c = self.hub_config
        settings: dict[str, Any] = {
            "bind": [f"[{c.http.host}]:{c.http.port}" if ":" in c.http.host else f"{c.http.host}:{c.http.port}"],
            "workers": c.http.workers,
            # gthread, with kept-alive connections served by their own thread (edge/server/worker.py)
            "worker_class": "edge.server.worker.LingeringThreadWorker",
            "threads": c.http.threads,
            "preload_app": True,  # load once in the arbiter; workers share the pages
            "graceful_timeout": c.http.graceful_timeout_s,
            "timeout": 30,
            "keepalive": 75,  # tablets poll; reusing connections saves handshakes
            "backlog": 512,
            "max_requests": 0,
            "limit_request_line": 8190,
            "limit_request_fields": 100,
            "limit_request_field_size": 8190,
            "control_socket_disable": True,
            "worker_tmp_dir": str(c.run_dir),
            "proc_name": "classroom-hub",
            "accesslog": None,
            "logger_class": "edge.server.gunicorn_app.HubGunicornLogger",
            "errorlog": "-",
            "loglevel": c.logging.level.lower(),
            "logconfig_dict": _log_config(c),
            "when_ready": self._when_ready,
            "pre_fork": _pre_fork,
            "post_worker_init": _post_worker_init,
            "child_exit": _child_exit,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from edge.app import create_app

        app = create_app(self.hub_config)
        app.extensions["classroom_hub"].discovery_state = self.hub_config.run_dir / DISCOVERY_STATE_FILE
        return app

    def _when_ready(self, server: Arbiter) -> None:
        self.advertising.start()

    def run(self) -> None:
        HubArbiter(self).run()


class HubGunicornLogger(glogging.Logger):
    """gunicorn's logger without its access log.

    With ``logconfig_dict`` set, gunicorn builds the access-log atoms of every request
    (a strftime, every header and environ key lower-cased and escaped) and then drops the
    line at WARNING: 26 µs of CPU per request for a tablet's GET, measured. Requests are
    logged by the app's ``after_request`` hook instead, when ``logging.access_log`` is on.
    """

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None


def _log_config(c: HubConfig) -> dict[str, Any]:
    """gunicorn's own messages in the same structured format as ours."""
    formatter = "edge.logs.JsonFormatter" if c.logging.format == "json" else "edge.logs.TextFormatter"
    handler = {"class": "logging.StreamHandler", "formatter": "hub", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"hub": {"()": formatter}},
        "handlers": {"console": handler},
        "root": {"level": c.logging.level, "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": c.logging.level, "handlers": ["console"], "propagate": False},
            # Our own after_request hook logs requests when logging.access_log is on.
            "gunicorn.access": {"level": "WARNING", "handlers": ["console"], "propagate": False},
        },
    }


def _pre_fork(server: Arbiter, worker: Any) -> None:
    # Move everything the arbiter has loaded out of the collector's reach so the
    # workers' first collections don't write to (and so un-share) those pages.
    gc.freeze()


def _post_worker_init(worker: Any) -> None:
    from edge.live.bus import shutting_down

    # gunicorn installed its own SIGTERM handler; chain ours so open SSE
    # streams end within a second and the worker exits well inside the
    # graceful timeout.
    previous = signal.getsignal(signal.SIGTERM)

    def _on_term(signum: int, frame: Any) -> None:
        shutting_down.set()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, _on_term)
    wsgi = worker.wsgi

    import atexit

    atexit.register(lambda: wsgi.extensions["classroom_hub"].bus.close())


def _child_exit(server: Arbiter, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def write_discovery_state(config: HubConfig, state: str) -> None:
    path = config.run_dir / DISCOVERY_STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(state, encoding="utf-8")
    os.replace(tmp, path)


def prepare_metrics_dir(config: HubConfig) -> None:
    """Point prometheus-client at a fresh per-boot directory (before it is imported)."""
    path = config.run_dir / "metrics"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def serve(config: HubConfig) -> None:
    """Run the hub in the foreground until SIGTERM/SIGINT."""
    from edge.runtime.malloc import return_large_blocks

    return_large_blocks()  # before the workers are forked: they inherit it
    prepare_metrics_dir(config)
    from edge.storage.setup import prepare_storage

    hub_id, _, applied = prepare_storage(config)
    (config.run_dir / DISCOVERY_STATE_FILE).unlink(missing_ok=True)
    if applied:
        log.info("database migrated", extra={"versions": applied})
    HubApplication(config, hub_id).run()
