"""``classroom-hub``: the operator's command line.

Every command takes ``--config`` (default ``$HUB_CONFIG`` or
``/etc/classroom-hub/hub.toml``) and ``--data-dir`` to override ``hub.data_dir``.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from edge.config import ConfigError, HubConfig, load_config, reference_markdown


class _Ctx:
    def __init__(self, config_path: Path | None, data_dir: Path | None) -> None:
        self.config_path = config_path
        self.data_dir = data_dir

    def config(self, **overrides: dict[str, Any]) -> HubConfig:
        merged: dict[str, dict[str, Any]] = {k: dict(v) for k, v in overrides.items()}
        if self.data_dir is not None:
            merged.setdefault("hub", {})["data_dir"] = str(self.data_dir)
        try:
            return load_config(self.config_path, overrides=merged)
        except ConfigError as exc:
            raise click.ClickException(f"configuration error: {exc}") from None


pass_ctx = click.make_pass_decorator(_Ctx)


@click.group(help="Classroom micro-cloud hub (课堂微云服务器).")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), help="Configuration file (TOML).")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), help="Override hub.data_dir.")
@click.version_option(package_name="classroom-hub")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, data_dir: Path | None) -> None:
    ctx.obj = _Ctx(config_path, data_dir)


def _logging(config: HubConfig) -> None:
    from edge.logs import setup_logging

    setup_logging(config.logging.level, config.logging.format)


def _db(config: HubConfig):  # type: ignore[no-untyped-def]
    from edge.storage.db import connect
    from edge.storage.setup import prepare_storage

    prepare_storage(config)
    return connect(config.db_path, config.storage.busy_timeout_ms, config.storage.synchronous)


# -- lifecycle -------------------------------------------------------------------------


@main.command()
@click.option("--admin", "admin_user", default="admin", show_default=True, help="Username of the first admin account.")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False, exists=True), help="Read the admin password from this file.")
@pass_ctx
def init(obj: _Ctx, admin_user: str, password_file: Path | None) -> None:
    """Create the data directory, migrate the database and the first admin account."""
    from edge.accounts import service

    config = obj.config()
    db = _db(config)
    hub_id = db.execute("SELECT value FROM hub_meta WHERE key = 'hub_id'").fetchone()[0]
    click.echo(f"hub {hub_id} ready in {config.hub.data_dir}")
    if db.execute("SELECT 1 FROM users WHERE role = 'admin'").fetchone():
        click.echo("an admin account exists already; nothing else to do")
        return
    generated = password_file is None
    password = password_file.read_text(encoding="utf-8").strip() if password_file else secrets.token_urlsafe(12)
    try:
        service.create_user(db, admin_user, "管理员", "admin", password)
    except service.AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"admin account: {admin_user}")
    if generated:
        click.echo(f"admin password (shown once): {password}")


@main.command()
@pass_ctx
def serve(obj: _Ctx) -> None:
    """Run the hub (API, web UI, mDNS) under gunicorn in the foreground."""
    config = obj.config()
    _run_server(config)


def _run_server(config: HubConfig) -> None:
    from edge.server.gunicorn_app import serve as run
    from edge.storage.lock import DataDirBusy, acquire

    _logging(config)
    try:
        lock_fd = acquire(config.run_dir)
    except DataDirBusy as exc:
        raise click.ClickException(str(exc)) from None
    try:
        run(config)
    finally:
        os.close(lock_fd)


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-mdns", is_flag=True, help="Do not advertise by mDNS.")
@click.option("--speech", is_flag=True, help="Also run the classroom-speech worker (transcribes the sample recording).")
@pass_ctx
def demo(obj: _Ctx, host: str, port: int, no_mdns: bool, speech: bool) -> None:
    """Run a demo hub in the foreground: a classroom of 45 students, a teacher, sample content.

    The data directory is temporary (deleted on exit) unless --data-dir is given.
    """
    from edge.demo.classroom import seed_demo

    temp: tempfile.TemporaryDirectory[str] | None = None
    if obj.data_dir is None:
        temp = tempfile.TemporaryDirectory(prefix="classroom-hub-demo-")
        obj.data_dir = Path(temp.name)
    overrides: dict[str, dict[str, Any]] = {"http": {"host": host, "port": port}, "logging": {"format": "text"}}
    if no_mdns:
        overrides["discovery"] = {"enabled": False}
    config = obj.config(**overrides)
    from edge.storage.setup import prepare_storage

    prepare_storage(config)
    creds = seed_demo(config)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    click.echo(
        "\n".join(
            [
                "课堂微云 demo hub / classroom hub demo",
                f"  web UI:    http://{shown}:{port}/",
                f"  teacher:   {creds.teacher_username} / {creds.teacher_password}",
                f"  admin:     {creds.admin_username} / {creds.admin_password}",
                f"  class:     {creds.class_name}, {len(creds.student_pins)} students (PINs in {config.hub.data_dir / 'demo-credentials.json'})",
                f"  data dir:  {config.hub.data_dir}{' (temporary)' if temp else ''}",
                "",
            ]
        ),
        err=False,
    )
    sys.stdout.flush()
    from edge.speech import demo as speech_demo

    speech_proc = speech_demo.start_worker(config) if speech else None
    try:
        _run_server(config)
    finally:
        if speech_proc is not None:
            speech_demo.stop_worker(speech_proc)
        if temp is not None:
            temp.cleanup()


# -- inspection --------------------------------------------------------------------------


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def status(obj: _Ctx, as_json: bool) -> None:
    """Hub identity, schema, accounts, devices, outbox and whether the server answers."""
    import http.client

    from edge.outbox import depth
    from edge.storage.migrations import latest_version, schema_version

    config = obj.config()
    if not config.db_path.exists():
        raise click.ClickException(f"no hub database in {config.hub.data_dir}; run 'classroom-hub init' first")
    from edge.storage.db import connect

    db = connect(config.db_path, config.storage.busy_timeout_ms, config.storage.synchronous)
    meta = dict(db.execute("SELECT key, value FROM hub_meta WHERE key IN ('hub_id', 'last_sync_at')").fetchall())
    count, oldest = depth(db)
    from edge.learning.pending import backlog

    learning_waiting, learning_oldest = backlog(db)
    info: dict[str, Any] = {
        "hub_id": meta.get("hub_id"),
        "name": f"{config.hub.school} {config.hub.room}",
        "data_dir": str(config.hub.data_dir),
        "schema_version": schema_version(db),
        "schema_latest": latest_version(),
        "staff_accounts": db.execute("SELECT COUNT(*) FROM users").fetchone()[0],
        "students": db.execute("SELECT COUNT(*) FROM students WHERE active").fetchone()[0],
        "devices_enrolled": db.execute("SELECT COUNT(*) FROM devices WHERE revoked_at IS NULL").fetchone()[0],
        "outbox_depth": count,
        "outbox_oldest_age_s": round(time.time() - oldest, 1) if oldest else None,
        "last_sync_at": float(meta["last_sync_at"]) if "last_sync_at" in meta else None,
        "learning_pending": learning_waiting,
        "learning_pending_age_s": round(time.time() - learning_oldest, 1) if learning_oldest else None,
    }
    host = "127.0.0.1" if config.http.host in ("0.0.0.0", "::", "") else config.http.host
    try:
        conn = http.client.HTTPConnection(host, config.http.port, timeout=2)
        conn.request("GET", "/readyz")
        resp = conn.getresponse()
        info["server"] = "ready" if resp.status == 200 else f"not ready ({json.loads(resp.read()).get('checks')})"
    except OSError:
        info["server"] = "not running"
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False, indent=2))
        return
    for key, value in info.items():
        click.echo(f"{key:22} {value}")


@main.group("config")
def config_group() -> None:
    """Check the configuration or print its reference."""


@config_group.command("check")
@pass_ctx
def config_check(obj: _Ctx) -> None:
    """Validate the configuration (file + HUB_* variables) and print it."""
    config = obj.config()
    click.echo(json.dumps(config.model_dump(mode="json"), ensure_ascii=False, indent=2))


@config_group.command("reference")
def config_reference() -> None:
    """Print every key with its variable, type, default and description (Markdown)."""
    click.echo(reference_markdown())


# -- accounts and roster ------------------------------------------------------------------


@main.group()
def accounts() -> None:
    """Staff accounts (admin, teacher)."""


@accounts.command("list")
@pass_ctx
def accounts_list(obj: _Ctx) -> None:
    from edge.accounts import service

    db = _db(obj.config())
    for user in service.list_users(db):
        state = "disabled" if user["disabled"] else "active"
        click.echo(f"{user['id']:>4}  {user['username']:<16} {user['role']:<8} {state:<8} {user['display_name']}")


@accounts.command("create")
@click.argument("username")
@click.option("--name", "display_name", required=True, help="Name shown in the UI, e.g. 王老师.")
@click.option("--role", type=click.Choice(["teacher", "admin"]), default="teacher", show_default=True)
@click.option("--class", "class_names", multiple=True, help="Class this teacher teaches (repeatable; created if new).")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@pass_ctx
def accounts_create(obj: _Ctx, username: str, display_name: str, role: str, class_names: tuple[str, ...], password_file: Path | None) -> None:
    """Create a staff account; the password is generated and shown once unless given."""
    from edge.accounts import service
    from edge.storage.db import transaction

    db = _db(obj.config())
    password = password_file.read_text(encoding="utf-8").strip() if password_file else secrets.token_urlsafe(9)
    try:
        user_id = service.create_user(db, username, display_name, role, password)
    except service.AccountError as exc:
        raise click.ClickException(str(exc)) from None
    with transaction(db):
        for name in class_names:
            service.assign_teacher(db, service.ensure_class(db, name), user_id)
    click.echo(f"created {role} {username} (id {user_id})")
    if not password_file:
        click.echo(f"password (shown once): {password}")


@accounts.command("passwd")
@click.argument("username")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@pass_ctx
def accounts_passwd(obj: _Ctx, username: str, password_file: Path | None) -> None:
    """Set a new password (ends the account's sessions)."""
    from edge.accounts import service

    db = _db(obj.config())
    if password_file:
        password = password_file.read_text(encoding="utf-8").strip()
    else:
        password = getpass.getpass("new password: ")
        if getpass.getpass("again: ") != password:
            raise click.ClickException("the two passwords differ")
    try:
        service.set_password(db, username, password)
    except service.AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"password of {username} changed")


@accounts.command("disable")
@click.argument("username")
@click.option("--enable", is_flag=True, help="Re-enable instead.")
@pass_ctx
def accounts_disable(obj: _Ctx, username: str, enable: bool) -> None:
    """Disable (or re-enable) an account; disabling ends its sessions at once."""
    from edge.accounts import service

    db = _db(obj.config())
    row = db.execute("SELECT id FROM users WHERE username = ?", (username,)).fetchone()
    if row is None:
        raise click.ClickException(f"no account named {username!r}")
    service.set_disabled(db, row[0], not enable)
    click.echo(f"{username} {'enabled' if enable else 'disabled'}")


@main.group()
def roster() -> None:
    """Student rosters."""


@roster.command("import")
@click.argument("csv_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--class", "class_name", help="Class for rows without a 班级 column.")
@click.option("--teacher", help="Username of a teacher to assign to the class.")
@click.option("--pins-out", type=click.Path(path_type=Path, dir_okay=False), help="Write generated PINs to this CSV (0600) instead of the screen.")
@pass_ctx
def roster_import(obj: _Ctx, csv_file: Path, class_name: str | None, teacher: str | None, pins_out: Path | None) -> None:
    """Import students from a CSV file (UTF-8 or GBK; columns 姓名, 学号, optional 班级, PIN)."""
    from edge.accounts import service
    from edge.accounts.roster import RosterError, parse_roster
    from edge.storage.db import transaction

    db = _db(obj.config())
    try:
        parsed = parse_roster(csv_file.read_bytes())
    except RosterError as exc:
        raise click.ClickException(f"{csv_file}: {exc}") from None
    report = service.import_roster(db, parsed, class_name)
    if teacher:
        row = db.execute("SELECT id FROM users WHERE username = ?", (teacher,)).fetchone()
        if row is None:
            raise click.ClickException(f"no account named {teacher!r}")
        with transaction(db):
            for name in {r.class_name or class_name for r in parsed.rows} - {None}:
                service.assign_teacher(db, service.ensure_class(db, str(name)), row[0])
    click.echo(f"read as {report['encoding']}: {report['created']} created, {report['updated']} updated, {len(report['refused'])} refused")  # type: ignore[arg-type]
    for refused in report["refused"]:  # type: ignore[attr-defined]
        click.echo(f"  line {refused['line']}: {refused['reason']}")
    pins = report["generated_pins"]
    if pins:
        if pins_out:
            fd = os.open(pins_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8-sig") as fh:
                fh.write("班级,学号,姓名,PIN\n")
                for p in pins:  # type: ignore[attr-defined]
                    fh.write(f"{p['class']},{p['number']},{p['name']},{p['pin']}\n")
            click.echo(f"generated PINs written to {pins_out}")
        else:
            click.echo("generated PINs (hand them to the students):")
            for p in pins:  # type: ignore[attr-defined]
                click.echo(f"  {p['class']} {p['number']} {p['name']}: {p['pin']}")


@main.command("enrol-code")
@click.option("--class", "class_name", help="Class of the student tablets (omit with --kind teacher).")
@click.option("--kind", type=click.Choice(["student", "teacher"]), default="student", show_default=True)
@click.option("--uses", default=1, show_default=True, type=click.IntRange(1, 200), help="How many tablets may use the code.")
@click.option("--ttl", default=None, type=click.IntRange(30, 86400), help="Seconds the code stays valid.")
@pass_ctx
def enrol_code(obj: _Ctx, class_name: str | None, kind: str, uses: int, ttl: int | None) -> None:
    """Print a pairing code for tablets (the teacher's screen shows the same thing)."""
    from edge.enrolment import service
    from edge.identity import ensure_identity

    config = obj.config()
    db = _db(config)
    _, secret = ensure_identity(db)
    class_id = None
    if kind == "student":
        if not class_name:
            raise click.ClickException("--class is needed for student tablets")
        row = db.execute("SELECT id FROM classes WHERE name = ?", (class_name,)).fetchone()
        if row is None:
            raise click.ClickException(f"no class named {class_name!r}")
        class_id = row[0]
    admin = db.execute("SELECT id FROM users WHERE role = 'admin' ORDER BY id LIMIT 1").fetchone()
    if admin is None:
        raise click.ClickException("no admin account; run 'classroom-hub init' first")
    code = service.create_code(
        db, secret, created_by=admin[0], kind=kind, class_id=class_id, max_uses=uses,
        ttl_s=ttl or config.security.pairing_code_ttl_s,
    )
    click.echo(f"pairing code {code.code} for {uses} {kind} tablet(s), valid until {time.strftime('%H:%M:%S', time.localtime(code.expires_at))}")


# -- backup and restore --------------------------------------------------------------------


@main.command()
@click.option("--to", "target", type=click.Path(path_type=Path, dir_okay=False), help="Write here instead of <data_dir>/backups.")
@pass_ctx
def backup(obj: _Ctx, target: Path | None) -> None:
    """Write a consistent copy of the database (safe while the hub runs)."""
    from edge.storage.backup import make_backup

    config = obj.config()
    if not config.db_path.exists():
        raise click.ClickException(f"no hub database in {config.hub.data_dir}")
    path = make_backup(config.db_path, config.backups_dir, config.storage.backups_kept, target)
    click.echo(f"backup written to {path}")


@main.command()
@click.argument("backup_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@pass_ctx
def restore(obj: _Ctx, backup_file: Path) -> None:
    """Replace the database with a backup (stop the hub first; the current one is kept)."""
    from edge.storage.backup import RestoreError
    from edge.storage.backup import restore as do_restore
    from edge.storage.lock import DataDirBusy, acquire

    config = obj.config()
    try:
        fd = acquire(config.run_dir)
    except DataDirBusy as exc:
        raise click.ClickException(str(exc)) from None
    try:
        safety = do_restore(backup_file, config.db_path, config.backups_dir, config.storage.backups_kept)
    except RestoreError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        os.close(fd)
    if safety:
        click.echo(f"previous database kept as {safety}")
    click.echo(f"restored {backup_file}; start the hub to apply any pending migrations")


from edge.devices.cli import carts as _carts  # noqa: E402 - one line per capability's command group

main.add_command(_carts)

from edge.lessons.cli import lesson_group as _lesson  # noqa: E402

main.add_command(_lesson)


if __name__ == "__main__":
    main()
