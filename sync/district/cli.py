"""Console scripts of the district: ``district-ingest`` and ``district-publish``."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import threading
from pathlib import Path

import click

from sync.district.ingest import Ingest
from sync.district.lrs import LrsForwarder
from sync.district.publish import sign_notice
from sync.district.store import open_store
from sync.mqttlink import Link, LinkSettings
from sync.wire.messages import NOTICE_KINDS
from sync.wire.topics import HubTopics, broadcast_notice

log = logging.getLogger("sync.district")


def _secret(path: Path | None, env: str) -> str | None:
    if path is not None:
        return path.read_text(encoding="utf-8").strip()
    return os.environ.get(env)


def _broker_options(f):  # noqa: ANN001 - a click decorator stack
    for opt in reversed([
        click.option("--broker", default="127.0.0.1", show_default=True, help="Broker host."),
        click.option("--port", default=8883, show_default=True, type=click.IntRange(1, 65535)),
        click.option("--no-tls", is_flag=True, help="Plain MQTT (a test broker on loopback only)."),
        click.option("--ca", type=click.Path(path_type=Path, dir_okay=False), help="CA that signs the broker's certificate."),
        click.option("--cert", type=click.Path(path_type=Path, dir_okay=False), help="Client certificate (PEM)."),
        click.option("--key", type=click.Path(path_type=Path, dir_okay=False), help="Client key (PEM)."),
        click.option("--username", default=None, help="MQTT user name (with certificate identities, the certificate's CN)."),
        click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), help="MQTT password (or $DISTRICT_MQTT_PASSWORD)."),
    ]):
        f = opt(f)
    return f


def _settings(client_id: str, broker: str, port: int, no_tls: bool, ca: Path | None, cert: Path | None, key: Path | None,
              username: str | None, password_file: Path | None) -> LinkSettings:
    return LinkSettings(
        host=broker, port=port, client_id=client_id, tls=not no_tls, ca_file=ca, cert_file=cert, key_file=key,
        username=username, password=_secret(password_file, "DISTRICT_MQTT_PASSWORD"), min_delay=0.5, max_delay=30.0,
    )


@click.group(help="District ingest service: MQTT batches from every hub into the district database.")
def ingest_main() -> None:
    logging.basicConfig(level=os.environ.get("DISTRICT_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s %(message)s")


@ingest_main.command("run")
@_broker_options
@click.option("--database", required=True, help="sqlite:///PATH or postgresql://...")
@click.option("--pg-schema", default="public", show_default=True, help="PostgreSQL schema for the tables.")
@click.option("--district", default="+", show_default=True, help="Only this district's hubs ('+' for all).")
@click.option("--instance", default="1", show_default=True, help="Instance name; the MQTT client id is district-ingest-<instance>.")
@click.option("--lrs-url", default=None, help="Forward xAPI statements to this LRS endpoint (…/xAPI).")
@click.option("--lrs-user", default=None)
@click.option("--lrs-password-file", type=click.Path(path_type=Path, dir_okay=False))
def ingest_run(broker: str, port: int, no_tls: bool, ca: Path | None, cert: Path | None, key: Path | None, username: str | None,
               password_file: Path | None, database: str, pg_schema: str, district: str, instance: str,
               lrs_url: str | None, lrs_user: str | None, lrs_password_file: Path | None) -> None:
    """Consume batches (shared subscription), write them idempotently, ack them."""
    store = open_store(database, pg_schema)
    settings = _settings(f"district-ingest-{instance}", broker, port, no_tls, ca, cert, key, username, password_file)
    ingest = Ingest(store, settings, district)
    forwarder = None
    if lrs_url:
        auth = (lrs_user or "", _secret(lrs_password_file, "DISTRICT_LRS_PASSWORD") or "") if lrs_user else None
        forwarder = LrsForwarder(open_store(database, pg_schema), lrs_url, auth)
        forwarder.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ingest.start()
    click.echo(f"district-ingest {instance} consuming from {broker}:{port}", err=True)
    while not stop.wait(5):
        log.debug("ingest stats", extra=dict(ingest.stats))
    ingest.stop()
    click.echo(f"district-ingest {instance} stopped: " + json.dumps(ingest.stats), err=True)
    if forwarder:
        forwarder.stop()
    store.close()


@ingest_main.command("register")
@click.option("--database", required=True)
@click.option("--pg-schema", default="public", show_default=True)
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=False, exists=True), help="Rows hub_id,district,school.")
@click.argument("hub", required=False)
@click.argument("district", required=False)
@click.argument("school", required=False)
def ingest_register(database: str, pg_schema: str, csv_path: Path | None, hub: str | None, district: str | None, school: str | None) -> None:
    """Register which school a hub belongs to (one, or many from a CSV)."""
    rows: list[tuple[str, str, str]] = []
    if csv_path:
        with open(csv_path, newline="", encoding="utf-8") as f:
            rows.extend((r[0], r[1], r[2]) for r in csv.reader(f) if r and not r[0].startswith("#"))
    if hub:
        if not (district and school):
            raise click.UsageError("give HUB DISTRICT SCHOOL")
        rows.append((hub, district, school))
    for h, d, s in rows:
        HubTopics(d, s, h)  # the same id rules as the topics
    store = open_store(database, pg_schema)
    store.register_hubs(rows)
    click.echo(f"{len(rows)} hub(s) registered")


@ingest_main.command("counts")
@click.option("--database", required=True)
@click.option("--pg-schema", default="public", show_default=True)
def ingest_counts(database: str, pg_schema: str) -> None:
    """Rows per table (and duplicates, which must be 0)."""
    click.echo(json.dumps(open_store(database, pg_schema).counts(), indent=2))


@click.command(help="Sign a file and announce it to a hub (--school/--hub) or to the whole district.")
@_broker_options
@click.option("--district", required=True)
@click.option("--school", default=None)
@click.option("--hub", default=None)
@click.option("--kind", required=True, type=click.Choice(NOTICE_KINDS))
@click.option("--url", required=True, help="Where hubs download the file (HTTP(S)).")
@click.option("--signing-key-file", required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="The district's Ed25519 private key (base64), mode 0600.")
@click.option("--id", "notice_id", default=None, help="Notice id (default: random).")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
def publish_main(broker: str, port: int, no_tls: bool, ca: Path | None, cert: Path | None, key: Path | None, username: str | None,
                 password_file: Path | None, district: str, school: str | None, hub: str | None, kind: str, url: str,
                 signing_key_file: Path, notice_id: str | None, file: Path) -> None:
    notice = sign_notice(file, kind, url, signing_key_file.read_text(encoding="utf-8"), notice_id)
    if hub:
        if not school:
            raise click.UsageError("--hub needs --school")
        topic = HubTopics(district, school, hub).notice(kind)
    else:
        topic = broadcast_notice(district, kind)
    done = threading.Event()
    settings = _settings(f"district-publish-{notice.id[:12]}", broker, port, no_tls, ca, cert, key, username, password_file)

    def connected(client: object) -> None:
        info = link.publish(topic, notice.to_bytes(), qos=1, retain=True)
        threading.Thread(target=lambda: (info.wait_for_publish(10), done.set()), daemon=True).start()

    link = Link(settings, connected, lambda c, m: None)
    link.start()
    ok = done.wait(30)
    link.stop()
    if not ok:
        raise click.ClickException(f"could not publish to {broker}:{port}: {link.last_error or 'timeout'}")
    click.echo(json.dumps({"topic": topic, **notice.model_dump(exclude_none=True)}, indent=2))
