"""``classroom-hub carts ...``: enrol carts, import firmware releases, roll them out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def _db(obj: Any) -> tuple[Any, Any]:
    from edge.storage.db import connect
    from edge.storage.setup import prepare_storage

    config = obj.config()
    prepare_storage(config)
    return config, connect(config.db_path, config.storage.busy_timeout_ms, config.storage.synchronous)


@click.group(help="Charging carts: enrolment, firmware releases and rollouts.")
def carts() -> None:
    pass


@carts.command("add")
@click.argument("cart_id")
@click.option("--name", required=True, help="A name people recognise, e.g. 三年级二班充电车.")
@click.option("--slots", default=60, show_default=True, type=click.IntRange(1, 64))
@click.option("--budget-w", default=1440.0, show_default=True, type=click.FloatRange(30, 10000), help="The circuit's continuous budget (80 % of its rating).")
@click.option("--class", "class_name", help="Class whose cart this is (its teachers see its alerts).")
@click.pass_obj
def add(obj: Any, cart_id: str, name: str, slots: int, budget_w: float, class_name: str | None) -> None:
    """Enrol a cart and print its link key once (put it in the cart's cart.json)."""
    from edge.devices import service

    _, db = _db(obj)
    class_id = None
    if class_name:
        row = db.execute("SELECT id FROM classes WHERE name = ?", (class_name,)).fetchone()
        if row is None:
            raise click.ClickException(f"no class named {class_name}")
        class_id = row[0]
    try:
        key = service.add_cart(db, cart_id, name, slots, budget_w, class_id)
    except service.FleetError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"cart {cart_id} enrolled; its link key (shown once):\n{key}")


@carts.command("list")
@click.pass_obj
def list_(obj: Any) -> None:
    """Carts with their firmware, last contact, open alerts, lock and last lock command."""
    from edge.devices import lock, service

    _, db = _db(obj)
    for c in service.carts(db):
        tele = c["telemetry"] or {}
        door = {1: "locked", 0: "unlocked"}.get(tele.get("lock"), "lock -")
        cmd = lock.latest(db, c["id"])
        last = f"\tlast lock command {cmd['op']} {cmd['status']}" if cmd else ""
        click.echo(f"{c['id']}\t{c['name']}\tfw {c['fw'] or '-'}\tlast seen {c['last_seen'] or 'never'}\talerts {len(c['alerts'])}\t{door}{last}")


@carts.command("lock")
@click.argument("cart_id")
@click.option("--unlock", is_flag=True, help="Unlock instead of lock.")
@click.pass_obj
def lock_cmd(obj: Any, cart_id: str, unlock: bool) -> None:
    """Lock (or --unlock) a cart's door: sent with the reply to its next report; the cart
    refuses to unlock during a thermal cut-off. `carts list` shows the outcome."""
    from edge.devices import lock, service

    _, db = _db(obj)
    try:
        cmd = lock.request(db, cart_id, "unlock" if unlock else "lock", None, "cli", None)
    except service.FleetError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"command {cmd['id']} ({cmd['op']}) queued for {cart_id}")


@carts.command("firmware-import")
@click.argument("bundle", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--public-key", "public_key", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Base64 Ed25519 public key the bundle's manifest.sig must verify with (default: the [district] key).")
@click.pass_obj
def firmware_import(obj: Any, bundle: Path, public_key: Path | None) -> None:
    """Verify a firmware bundle (signature and every hash) and make it available to carts."""
    from edge.devices import rollout
    from edge.district_key import district_public_key

    config, db = _db(obj)
    key = public_key.read_text().strip() if public_key else district_public_key(config)
    if not key:
        raise click.ClickException("no key to verify the bundle with: pass --public-key or configure [district] public_key")
    try:
        version = rollout.import_release(db, config.hub.data_dir, bundle, key)
    except rollout.RolloutError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"firmware {version} imported")


@carts.command("rollout")
@click.argument("version")
@click.option("--cart", "cart_ids", multiple=True, help="Carts in update order (default: all).")
@click.pass_obj
def start_rollout(obj: Any, version: str, cart_ids: tuple[str, ...]) -> None:
    """Update carts one at a time; the rollout stops by itself on a failure."""
    from edge.devices import rollout, service

    _, db = _db(obj)
    ids = list(cart_ids) or [c["id"] for c in service.carts(db)]
    try:
        rid = rollout.start(db, version, ids)
    except rollout.RolloutError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"rollout": rid, "version": version, "carts": ids}, ensure_ascii=False))
