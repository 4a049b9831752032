"""Processes run inside a test network namespace: a hub advertiser and a hub watcher.

Run as ``python tests/discovery/ns_agents.py hub|watch ...`` (under ``ip netns exec``).
Each prints JSON lines on stdout; times are ``time.time()`` so the test process, on
the same clock, can measure across namespaces.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def emit(**fields: object) -> None:
    print(json.dumps({"t": time.time(), **fields}, ensure_ascii=False), flush=True)


def run_hub(args: argparse.Namespace) -> None:
    from edge.discovery import HubAdvertiser

    if args.poll_only:
        # Benchmark baseline: what the hub would do without netlink.
        import edge.discovery.addresses as addresses
        import edge.discovery.advertiser as advertiser

        class PollOnly(addresses.AddressWatcher):
            def __init__(self, poll_s: float) -> None:
                super().__init__(poll_s)
                if self._sock is not None:
                    self._sock.close()
                    self._sock = None

        advertiser.AddressWatcher = PollOnly  # type: ignore[misc]

    adv = HubAdvertiser(hub_id=args.id, school=args.school, room=args.room, port=args.port, address_poll_s=args.poll)
    adv.start()
    emit(event="ready", addresses=adv.current_addresses(), names=adv.names)
    last = adv.current_addresses()
    # Exit when the test closes stdin, so a crashed test cannot leave a hub running.
    import select

    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 0.05)
        if ready and not sys.stdin.readline():
            break
        now = adv.current_addresses()
        if now != last:
            emit(event="reannounced", addresses=now)
            last = now
    adv.stop()
    emit(event="stopped")


def run_watch(args: argparse.Namespace) -> None:
    from edge.tablet_client.discover import HubWatcher

    watcher = HubWatcher(on_change=lambda e: emit(event="endpoint", id=e.id, addresses=list(e.addresses)))
    emit(event="watching")
    try:
        sys.stdin.read()
    finally:
        watcher.close()


def run_resolve(args: argparse.Namespace) -> None:
    from edge.tablet_client.discover import resolve_hub

    for _ in range(args.count):
        start = time.monotonic()
        endpoint = resolve_hub(args.id, args.timeout)
        emit(event="resolved", seconds=time.monotonic() - start, addresses=list(endpoint.addresses))
        time.sleep(args.gap)


def run_baseline(args: argparse.Namespace) -> None:
    """A plain zeroconf ServiceBrowser with default settings, as most example code does it."""
    import threading

    from zeroconf import ServiceBrowser, ServiceInfo, Zeroconf

    from edge.discovery.records import SERVICE_TYPE

    for _ in range(args.count):
        start = time.monotonic()
        zc = Zeroconf()
        done = threading.Event()
        found: list[str] = []

        def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: object) -> None:
            info = ServiceInfo(service_type, name)
            if info.request(zeroconf, 3000) and info.decoded_properties.get("id") == args.id:
                found[:] = info.parsed_addresses()
                done.set()

        browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[on_change])
        ok = done.wait(args.timeout)
        seconds = time.monotonic() - start
        browser.cancel()
        zc.close()
        emit(event="resolved" if ok else "timeout", seconds=seconds, addresses=found)
        time.sleep(args.gap)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    hub = sub.add_parser("hub")
    hub.add_argument("--id", required=True)
    hub.add_argument("--school", default="测试学校")
    hub.add_argument("--room", default="101")
    hub.add_argument("--port", type=int, default=8080)
    hub.add_argument("--poll", type=float, default=2.0)
    hub.add_argument("--poll-only", action="store_true")
    sub.add_parser("watch")
    res = sub.add_parser("resolve")
    res.add_argument("--id", required=True)
    res.add_argument("--count", type=int, default=1)
    res.add_argument("--timeout", type=float, default=5.0)
    res.add_argument("--gap", type=float, default=0.0)
    base = sub.add_parser("baseline")
    for a in res._actions[1:]:
        base._add_action(a)
    args = parser.parse_args()
    {"hub": run_hub, "watch": run_watch, "resolve": run_resolve, "baseline": run_baseline}[args.cmd](args)


if __name__ == "__main__":
    main()
