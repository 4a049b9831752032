"""Configuration loading, secrets, SQLite pragmas, migrations, backup and restore."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.app import create_app
from edge.cli import main as cli
from edge.config import ConfigError, load_config, read_secret
from edge.storage import migrations
from edge.storage.db import connect
from edge.storage.lock import acquire
from edge.storage.setup import prepare_storage

from .support import HubEnv, make_config

# -- configuration -------------------------------------------------------------------------


def test_unknown_key_in_the_file_is_an_error_naming_it(tmp_path: Path) -> None:
    f = tmp_path / "hub.toml"
    f.write_text('[http]\nport = 8081\nworkrs = 3\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"http\.workrs"):
        load_config(f, environ={})
    f.write_text('[htp]\nport = 8081\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"htp"):
        load_config(f, environ={})


def test_unknown_hub_variable_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="HUB_HTTP_PORTT"):
        load_config(environ={"HUB_HTTP_PORTT": "80"})
    with pytest.raises(ConfigError, match="HUB_NOSUCH_THING"):
        load_config(environ={"HUB_NOSUCH_THING": "1"})


def test_wrong_type_is_an_error_naming_the_key(tmp_path: Path) -> None:
    f = tmp_path / "hub.toml"
    f.write_text('[http]\nport = "eighty"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"http\.port"):
        load_config(f, environ={})
    with pytest.raises(ConfigError, match=r"storage\.synchronous"):
        load_config(environ={"HUB_STORAGE_SYNCHRONOUS": "OFF"})
    with pytest.raises(ConfigError, match=r"security\.pin_max_failures"):
        load_config(environ={"HUB_SECURITY_PIN_MAX_FAILURES": "many"})


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    f = tmp_path / "hub.toml"
    f.write_text('[hub]\nroom = "202"\n[http]\nport = 8081\nworkers = 3\n', encoding="utf-8")
    c = load_config(f, environ={"HUB_HTTP_PORT": "9090", "HUB_DISCOVERY_ENABLED": "false", "HUB_DISCOVERY_INTERFACES": "eth0, wlan0"})
    assert (c.http.port, c.http.workers, c.hub.room, c.discovery.enabled, c.discovery.interfaces) == (9090, 3, "202", False, ["eth0", "wlan0"])
    # and HUB_CONFIG names the file
    assert load_config(environ={"HUB_CONFIG": str(f)}).hub.room == "202"


def test_read_secret_refuses_a_world_readable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    f = tmp_path / "mqtt-password"
    f.write_text("s3cret-value\n")
    f.chmod(0o644)
    with pytest.raises(ConfigError, match="0600"):
        read_secret("mqtt-password", tmp_path)
    f.chmod(0o600)
    assert read_secret("mqtt-password", tmp_path) == "s3cret-value"
    assert read_secret("absent", tmp_path) is None


def test_read_secret_prefers_systemd_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("from-systemd")
    (creds / "mqtt-password").chmod(0o440)  # systemd's own mode for credentials
    (tmp_path / "mqtt-password").write_text("from-file")
    (tmp_path / "mqtt-password").chmod(0o600)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert read_secret("mqtt-password", tmp_path) == "from-systemd"


def test_secrets_never_appear_in_config_check_or_logs(hub: HubEnv, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("cred-XYZZY-123")
    hub_secret = hub.sql("SELECT value FROM hub_meta WHERE key = 'hub_secret'")[0][0]
    r = CliRunner().invoke(
        cli, ["--data-dir", str(hub.config.hub.data_dir), "config", "check"],
        env={"HUB_CONFIG": "", "CREDENTIALS_DIRECTORY": str(creds), "HUB_HTTP_PORT": "8099"},
    )
    assert r.exit_code == 0, r.output
    shown = json.loads(r.output)
    assert shown["http"]["port"] == 8099  # it is the effective configuration
    for secret in ("cred-XYZZY-123", hub_secret, hub.creds.admin[1]):
        assert secret not in r.output
    with caplog.at_level(logging.DEBUG):
        app = create_app(hub.config)
        app.test_client().post("/api/v1/auth/login", json={"username": "admin", "password": hub.creds.admin[1] + "x"})
    for secret in (hub_secret, hub.creds.admin[1]):
        assert secret not in caplog.text


# -- storage -------------------------------------------------------------------------------


def _pragmas(conn: sqlite3.Connection) -> tuple[object, ...]:
    return tuple(conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous"))


def test_every_connection_has_wal_busy_timeout_foreign_keys_and_full_sync(hub: HubEnv) -> None:
    expected = ("wal", hub.config.storage.busy_timeout_ms, 1, 2)  # synchronous 2 = FULL
    assert _pragmas(connect(hub.config.db_path, hub.config.storage.busy_timeout_ms).conn) == expected
    hub_obj = hub.app.extensions["classroom_hub"]
    seen = []

    def grab() -> None:
        with hub.app.app_context():
            seen.append(_pragmas(hub_obj.db.conn))

    threads = [threading.Thread(target=grab) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [expected] * 3
    normal = connect(hub.config.db_path, 1234, "NORMAL").conn
    assert _pragmas(normal) == ("wal", 1234, 1, 1)


def test_foreign_keys_are_enforced(hub: HubEnv) -> None:
    db = connect(hub.config.db_path)
    with pytest.raises(sqlite3.IntegrityError):
        db.conn.execute("INSERT INTO students (class_id, number, name, pin_hash, pseudo_id, created_at) VALUES (9999, 'x', 'x', 'x', 'x', 0)")


def _extra_migration(monkeypatch: pytest.MonkeyPatch, sql: str) -> None:
    real = migrations.available_migrations()
    extra = migrations.Migration(len(real) + 1, "test_extra", sql)
    monkeypatch.setattr(migrations, "available_migrations", lambda: [*real, extra])


def test_migration_of_an_existing_database_writes_a_backup_first(hub: HubEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    config = hub.config
    version = migrations.latest_version()
    students = hub.count("students")
    _extra_migration(monkeypatch, "CREATE TABLE test_extra (id INTEGER PRIMARY KEY);\nALTER TABLE students ADD COLUMN nickname TEXT;\n")
    _, _, applied = prepare_storage(config)
    assert applied == [version + 1]
    backups = list(config.backups_dir.glob(f"hub-*-pre-v{version + 1:04d}.sqlite3"))
    assert len(backups) == 1
    old = sqlite3.connect(backups[0])
    assert old.execute("PRAGMA user_version").fetchone()[0] == version
    assert old.execute("SELECT COUNT(*) FROM students").fetchone()[0] == students
    assert "nickname" not in [r[1] for r in old.execute("PRAGMA table_info(students)")]
    assert hub.sql("PRAGMA user_version")[0][0] == version + 1
    assert hub.count("students") == students
    # a second start has nothing to do and writes no further backup
    assert prepare_storage(config)[2] == []
    assert len(list(config.backups_dir.glob("hub-*.sqlite3"))) == 1


def test_a_failing_migration_leaves_the_database_as_it_was(hub: HubEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    version = migrations.latest_version()
    before = hub.snapshot(exclude=())
    _extra_migration(monkeypatch, "CREATE TABLE half_done (id INTEGER);\nINSERT INTO no_such_table VALUES (1);\n")
    with pytest.raises(sqlite3.OperationalError):
        prepare_storage(hub.config)
    assert hub.sql("PRAGMA user_version")[0][0] == version
    assert hub.count("sqlite_master", "name = 'half_done'") == 0
    assert hub.snapshot(exclude=()) == before


def test_a_fresh_database_is_migrated_at_start_without_a_backup(tmp_path: Path) -> None:
    config = make_config(tmp_path / "fresh")
    create_app(config)
    conn = sqlite3.connect(config.db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == migrations.latest_version()
    assert list(config.backups_dir.glob("*")) == []
    assert (config.db_path.stat().st_mode & 0o077) == 0 and (config.hub.data_dir.stat().st_mode & 0o077) == 0


def test_a_database_newer_than_the_code_is_refused(hub: HubEnv) -> None:
    conn = sqlite3.connect(hub.config.db_path)
    conn.execute(f"PRAGMA user_version = {migrations.latest_version() + 1}")
    conn.close()
    before = hub.snapshot(exclude=())
    with pytest.raises(RuntimeError, match="newer"):
        create_app(hub.config)
    assert hub.snapshot(exclude=()) == before


def _cli(data_dir: Path, *args: str) -> object:
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args], env={"HUB_CONFIG": ""})


def test_backup_then_restore_round_trips(hub: HubEnv, tmp_path: Path) -> None:
    d = hub.config.hub.data_dir
    target = tmp_path / "copy.sqlite3"
    r = _cli(d, "backup", "--to", str(target))
    assert r.exit_code == 0, r.output
    assert target.stat().st_mode & 0o077 == 0
    original = hub.snapshot(exclude=())
    hub.enrol()  # changes after the backup
    assert hub.snapshot(exclude=()) != original
    r = _cli(d, "restore", str(target))
    assert r.exit_code == 0, r.output
    assert "previous database kept as" in r.output
    assert hub.snapshot(exclude=()) == original
    # the pre-restore copy holds the newer state
    kept = sorted(hub.config.backups_dir.glob("hub-*-pre-restore*.sqlite3"))
    assert len(kept) == 1 and sqlite3.connect(kept[0]).execute("SELECT COUNT(*) FROM devices").fetchone()[0] == 1
    # and the restored hub serves
    assert create_app(hub.config).test_client().get("/readyz").status_code == 200


def test_restore_is_refused_while_the_hub_runs(hub: HubEnv, tmp_path: Path) -> None:
    target = tmp_path / "copy.sqlite3"
    assert _cli(hub.config.hub.data_dir, "backup", "--to", str(target)).exit_code == 0
    fd = acquire(hub.config.run_dir)  # what `classroom-hub serve` holds while it runs
    try:
        before = hub.snapshot(exclude=())
        r = _cli(hub.config.hub.data_dir, "restore", str(target))
        assert r.exit_code != 0 and "another hub process" in r.output
        assert hub.snapshot(exclude=()) == before
    finally:
        os.close(fd)


@pytest.mark.parametrize("content", [b"SQLite format 3\x00" + os.urandom(8192), b"not a database at all", b""], ids=["torn", "text", "empty"])
def test_restore_refuses_a_corrupt_file(hub: HubEnv, tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(content)
    before = hub.snapshot(exclude=())
    r = _cli(hub.config.hub.data_dir, "restore", str(bad))
    assert r.exit_code != 0, r.output
    assert hub.snapshot(exclude=()) == before
    assert list(hub.config.backups_dir.glob("*pre-restore*")) == []


def test_restore_refuses_a_database_that_is_not_a_hub(hub: HubEnv, tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite3"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    r = _cli(hub.config.hub.data_dir, "restore", str(other))
    assert r.exit_code != 0 and "not a hub database" in r.output
