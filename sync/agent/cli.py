"""``classroom-sync``: the district sync agent.

``classroom-sync`` (or ``classroom-sync run``) is the service the systemd unit
starts; ``classroom-sync now`` uploads everything waiting, printing progress,
and exits 0 once the district acknowledged it all.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from pathlib import Path

import click

from edge.config import ConfigError, HubConfig, load_config
from edge.runtime.systemd import notify
from sync.agent.schedule import SyncSchedule
from sync.agent.service import NotConfigured, build_agent

log = logging.getLogger("sync.agent")


def _config(config_path: Path | None, data_dir: Path | None) -> HubConfig:
    try:
        overrides = {"hub": {"data_dir": str(data_dir)}} if data_dir else None
        return load_config(config_path, overrides=overrides)
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None


def _logging(config: HubConfig) -> None:
    from edge.logs import setup_logging  # the hub's structured formatter: one log format for all units

    setup_logging(config.logging.level, config.logging.format)


@click.group(invoke_without_command=True, help="District sync agent (MQTT over TLS).")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), help="Configuration file (TOML).")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), help="Override hub.data_dir.")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, data_dir: Path | None) -> None:
    ctx.obj = (config_path, data_dir)
    if ctx.invoked_subcommand is None:
        ctx.invoke(run)


@main.command()
@click.pass_obj
def run(obj: tuple[Path | None, Path | None]) -> None:
    """Run the agent: nightly window, idle uploads, downloads, status (the systemd service)."""
    config = _config(*obj)
    _logging(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        agent = build_agent(config)
    except NotConfigured as exc:
        # A fresh install is not yet enrolled: stay up (no restart loop) and say so.
        log.warning("sync not configured", extra={"reason": str(exc)})
        notify("READY=1\nSTATUS=not configured: no district broker")
        while not stop.wait(20):
            notify("WATCHDOG=1")
        return
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    s = config.sync
    schedule = SyncSchedule(
        agent.hub_id, config.hub.timezone, s.window_start, s.window_end, s.window_spread_min,
        agent.uplink.enable, agent.uplink.disable, agent.idle if s.opportunistic else None, agent.housekeeping,
    )
    agent.downloader.start()
    agent.uplink.start()
    schedule.start(agent.last_sync_at())
    notify("READY=1\nSTATUS=running")
    log.info("sync agent running", extra={"hub": agent.hub_id, "broker": f"{s.broker_host}:{s.broker_port}"})
    while not stop.wait(10):
        state = "connected" if agent.uplink.connected else f"offline ({agent.uplink.link.last_error or 'connecting'})"
        notify(f"WATCHDOG=1\nSTATUS={state}; acked {agent.uplink.progress.acked_events} events")
    notify("STOPPING=1")
    schedule.stop()
    agent.uplink.stop()
    agent.downloader.stop()


@main.command()
@click.option("--timeout", default=600.0, show_default=True, help="Give up after this many seconds.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
@click.pass_obj
def now(obj: tuple[Path | None, Path | None], timeout: float, quiet: bool) -> None:
    """Upload everything waiting now; exit 0 once the district acknowledged all of it."""
    from edge import outbox

    config = _config(*obj)
    try:
        agent = build_agent(config, client_suffix="-now")
    except (NotConfigured, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    up = agent.uplink
    up.upto = outbox.high_water(agent.db)
    waiting, _ = outbox.depth(agent.db)
    up.enable("now")
    up.start()
    started = time.monotonic()
    last_line = 0.0
    code = 1
    try:
        while time.monotonic() - started < timeout:
            up.tick()
            if up.drained():
                code = 0
                break
            if not quiet and time.monotonic() - last_line >= 1.0:
                last_line = time.monotonic()
                p = up.progress
                state = "connected" if up.connected else f"connecting ({up.link.last_error or '...'})"
                click.echo(f"{state}: {p.acked_events}/{waiting} events acked, {p.sent_batches} batches sent, {p.sent_bytes} bytes")
            time.sleep(0.05)
    finally:
        up.stop()
    p = up.progress
    if code == 0:
        click.echo(f"done: {p.acked_events} events in {p.acked_batches} batches, {p.sent_bytes} bytes, {time.monotonic() - started:.2f} s")
    else:
        click.echo(f"not finished after {timeout:.0f} s: {p.acked_events}/{waiting} acked", err=True)
    sys.exit(code)
