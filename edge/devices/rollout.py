"""Firmware releases and rollouts: one cart at a time, stopping by itself when a
cart refuses the bundle, rolls back, or does not come back healthy in time.

A release is a folder made by ``firmware/tools/bundle.py``: the files, a
``manifest.json`` ({version, files: [{name, sha256, size}]}) and
``manifest.sig`` (Ed25519 over manifest.json, by the district or the school's
firmware key). The hub checks the signature and every hash on import; the cart
checks every hash again against the manifest it receives inside a reply
authenticated with its own key.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from edge import outbox, signing
from edge.storage.db import Database, transaction
from firmware.cart import protocol

STEP_TIMEOUT_S = 15 * 60  # a cart that has not confirmed the new version by then stops the rollout


class RolloutError(ValueError):
    pass


def import_release(db: Database, data_dir: Path, source: Path, public_key_b64: str) -> str:
    """Verify a bundle folder and copy it under ``<data_dir>/firmware/<version>``."""
    manifest_bytes = (source / "manifest.json").read_bytes()
    try:
        signing.verify(manifest_bytes, (source / "manifest.sig").read_text().strip(), public_key_b64)
    except (signing.SignatureError, FileNotFoundError) as exc:
        raise RolloutError(f"firmware bundle refused: {exc}") from None
    manifest = json.loads(manifest_bytes)
    errors = protocol.check_manifest(manifest)
    if errors:
        raise RolloutError("firmware manifest invalid: " + "; ".join(errors))
    for entry in manifest["files"]:
        data = (source / entry["name"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"] or len(data) != entry["size"]:
            raise RolloutError(f"firmware bundle refused: {entry['name']} does not match its manifest")
    target = data_dir / "firmware" / manifest["version"]
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for entry in manifest["files"]:
        shutil.copyfile(source / entry["name"], tmp / entry["name"])
    (tmp / "manifest.json").write_bytes(manifest_bytes)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    with transaction(db):
        db.conn.execute(
            "INSERT OR REPLACE INTO firmware_releases (version, manifest, path, created_at) VALUES (?, ?, ?, ?)",
            (manifest["version"], json.dumps(manifest), str(target), time.time()),
        )
    return str(manifest["version"])


def start(db: Database, version: str, carts: list[str]) -> int:
    with transaction(db):
        if db.execute("SELECT 1 FROM firmware_releases WHERE version = ?", (version,)).fetchone() is None:
            raise RolloutError(f"no firmware release {version}")
        if db.execute("SELECT 1 FROM firmware_rollouts WHERE status = 'running'").fetchone():
            raise RolloutError("a rollout is already running")
        known = {r[0] for r in db.execute("SELECT id FROM carts WHERE disabled = 0")}
        unknown = [c for c in carts if c not in known]
        if unknown or not carts:
            raise RolloutError(f"unknown carts: {unknown}" if unknown else "no carts to update")
        now = time.time()
        cur = db.conn.execute(
            "INSERT INTO firmware_rollouts (version, carts, status, started_at, step_at) VALUES (?, ?, 'running', ?, ?)",
            (version, json.dumps(carts), now, now),
        )
        return int(cur.lastrowid or 0)


def status(db: Database) -> list[dict[str, Any]]:
    rows = db.execute("SELECT id, version, carts, position, status, detail, started_at FROM firmware_rollouts ORDER BY id DESC LIMIT 20")
    return [{"id": r[0], "version": r[1], "carts": json.loads(r[2]), "position": r[3], "status": r[4], "detail": r[5], "started_at": r[6]} for r in rows]


def commands_for(db: Database, cart_id: str, msg: dict[str, Any], now: float) -> list[dict[str, Any]]:
    """Inside the telemetry transaction: advance or stop the running rollout from
    what this cart reports, and give it the OTA command if it is its turn."""
    row = db.execute("SELECT id, version, carts, position, step_at FROM firmware_rollouts WHERE status = 'running'").fetchone()
    if row is None:
        return []
    rid, version, carts_json, position, step_at = row
    carts = json.loads(carts_json)
    if position >= len(carts) or carts[position] != cart_id:
        return []
    ota = msg["ota"]
    if msg["fw"] == version and ota["state"] in ("confirmed", "idle"):
        position += 1
        done = position >= len(carts)
        db.conn.execute("UPDATE firmware_rollouts SET position = ?, status = ?, step_at = ? WHERE id = ?",
                        (position, "done" if done else "running", now, rid))
        outbox.append(db, "cart.firmware", {"cart": cart_id, "version": version, "result": "updated"})
        return []
    failed = ota.get("version") == version and ota["state"] in ("rolled_back", "refused")
    if failed or now - step_at > STEP_TIMEOUT_S:
        detail = f"cart {cart_id}: " + (f"{ota['state'].replace('_', ' ')} ({ota.get('detail', '')})" if failed else "no healthy report in time")
        db.conn.execute("UPDATE firmware_rollouts SET status = 'stopped', detail = ? WHERE id = ?", (detail, rid))
        db.conn.execute("INSERT INTO cart_alerts (cart_id, kind, detail, created_at) VALUES (?, 'rollout-stopped', ?, ?)", (cart_id, detail, now))
        outbox.append(db, "cart.firmware", {"cart": cart_id, "version": version, "result": "failed", "detail": detail})
        return []
    manifest = json.loads(db.execute("SELECT manifest FROM firmware_releases WHERE version = ?", (version,)).fetchone()[0])
    return [{"op": "ota", "version": version, "files": manifest["files"]}]


def release_file(db: Database, version: str, name: str) -> Path | None:
    if not protocol.valid_version(version) or not protocol.valid_file_name(name):
        return None
    row = db.execute("SELECT path, manifest FROM firmware_releases WHERE version = ?", (version,)).fetchone()
    if row is None or name not in {f["name"] for f in json.loads(row[1])["files"]}:
        return None
    return Path(row[0]) / name
