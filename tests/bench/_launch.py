"""Launcher for the server variants the benchmarks compare (not a benchmark itself).

    python tests/bench/_launch.py --variant V --data-dir D --port P [--workers N] [--threads N]

Variants (all bind 127.0.0.1, mDNS off):
- ``gthread``          the hub exactly as ``classroom-hub serve`` runs it (HubApplication:
                       same arbiter, settings, hooks); --workers/--threads override the config.
- ``trivial-gthread``  the same gunicorn arbiter and settings serving a bare WSGI function
                       that answers 200 to everything (the floor without Flask, auth, SQLite).
- ``sync``             the hub's app and settings with gunicorn sync workers.
- ``gevent``           the hub's app and settings with gunicorn gevent workers (app loaded in
                       each worker after monkey-patching, i.e. preload off, as gevent needs).
- ``waitress``         the hub's app under waitress (one process, --threads threads).

Configuration comes from ``HUB_*`` variables like the real service; the benchmarks set
HUB_HUB_DATA_DIR, HUB_HTTP_HOST=127.0.0.1, HUB_HTTP_PORT, HUB_DISCOVERY_ENABLED=false.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def trivial_app(environ, start_response):
    body = b'{"status":"ok"}'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", required=True, choices=["gthread", "trivial-gthread", "sync", "gevent", "waitress"])
    ap.add_argument("--workers", type=int)
    ap.add_argument("--threads", type=int)
    args = ap.parse_args()

    if args.workers:
        os.environ["HUB_HTTP_WORKERS"] = str(args.workers)
    if args.threads:
        os.environ["HUB_HTTP_THREADS"] = str(args.threads)

    from edge.config import load_config
    from edge.logs import setup_logging
    from edge.server.gunicorn_app import HubApplication, prepare_metrics_dir
    from edge.storage.setup import prepare_storage

    config = load_config()
    assert config.http.host == "127.0.0.1", "benchmarks bind loopback only"
    setup_logging(config.logging.level, config.logging.format)
    prepare_metrics_dir(config)
    hub_id, _, _ = prepare_storage(config)

    if args.variant == "waitress":
        import waitress

        from edge.app import create_app

        app = create_app(config)
        threads = args.threads or 2 * config.http.threads
        # connection_limit above 60 SSE + 55 clients; default 100 would refuse some.
        waitress.serve(app, host="127.0.0.1", port=config.http.port, threads=threads, connection_limit=1000, channel_timeout=120, ident=None)
        return

    variant = args.variant

    class Variant(HubApplication):
        def load_config(self) -> None:
            super().load_config()
            if variant in ("sync", "gevent"):
                self.cfg.set("worker_class", variant)
                # gunicorn silently turns "sync" with threads > 1 into gthread.
                self.cfg.set("threads", 1)
            if variant == "gevent":
                self.cfg.set("preload_app", False)
                self.cfg.set("worker_connections", 1000)
            if variant == "trivial-gthread":
                self.cfg.set("post_worker_init", _noop)

        def load(self) -> Any:
            if variant == "trivial-gthread":
                return trivial_app
            return super().load()

    Variant(config, hub_id).run()


def _noop(worker: Any) -> None:
    pass


if __name__ == "__main__":
    sys.exit(main())
