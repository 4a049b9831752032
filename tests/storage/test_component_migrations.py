"""Each capability has its own migration sequence beside its code."""

from pathlib import Path

import pytest

from edge.storage.db import connect
from edge.storage.migrations import component_migrations, latest_version, migrate, pending_migrations, schema_version


def _capability(root: Path, name: str, files: dict[str, str]) -> None:
    folder = root / name / "migrations"
    folder.mkdir(parents=True)
    for filename, sql in files.items():
        (folder / filename).write_text(sql, encoding="utf-8")


def test_capabilities_migrate_after_the_core_and_are_recorded(tmp_path: Path) -> None:
    root = tmp_path / "pkgs"
    _capability(root, "lessons", {"0001_lessons.sql": "CREATE TABLE lessons (id INTEGER PRIMARY KEY, class_id INTEGER REFERENCES classes(id));"})
    _capability(root, "quiz", {"0001_q.sql": "CREATE TABLE q (id INTEGER PRIMARY KEY);", "0002_q2.sql": "ALTER TABLE q ADD COLUMN x TEXT;"})
    (root / "nomigrations").mkdir()
    comps = component_migrations(root)
    assert sorted(comps) == ["lessons", "quiz"]
    db = connect(tmp_path / "hub.sqlite3")
    migrate(db, tmp_path / "hub.sqlite3", tmp_path / "backups", components=comps)
    assert schema_version(db) == latest_version()
    rows = db.execute("SELECT component, version, name FROM schema_migrations ORDER BY component, version").fetchall()
    assert rows == [("lessons", 1, "lessons"), ("quiz", 1, "q"), ("quiz", 2, "q2")]
    assert [c[1] for c in db.execute("PRAGMA table_info(q)")] == ["id", "x"]
    assert pending_migrations(db, comps) == []
    assert not (tmp_path / "backups").exists() or not list((tmp_path / "backups").iterdir()), "a fresh database needs no backup"


def test_a_new_capability_migration_is_applied_after_a_backup(tmp_path: Path) -> None:
    root = tmp_path / "pkgs"
    _capability(root, "quiz", {"0001_q.sql": "CREATE TABLE q (id INTEGER PRIMARY KEY);"})
    db_path = tmp_path / "hub.sqlite3"
    db = connect(db_path)
    migrate(db, db_path, tmp_path / "backups", components=component_migrations(root))
    db.conn.execute("INSERT INTO q (id) VALUES (7)")
    (root / "quiz" / "migrations" / "0002_more.sql").write_text("ALTER TABLE q ADD COLUMN y INTEGER;", encoding="utf-8")
    migrate(db, db_path, tmp_path / "backups", components=component_migrations(root))
    backups = list((tmp_path / "backups").glob("hub-*-pre-quiz-v0002.sqlite3"))
    assert len(backups) == 1
    old = connect(backups[0])
    assert old.execute("SELECT id FROM q").fetchall() == [(7,)]
    assert "y" not in [c[1] for c in old.execute("PRAGMA table_info(q)")]


def test_a_gap_in_a_capability_sequence_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "pkgs"
    _capability(root, "quiz", {"0001_a.sql": "SELECT 1;", "0003_c.sql": "SELECT 1;"})
    with pytest.raises(RuntimeError, match="gap"):
        component_migrations(root)


def test_a_failing_capability_migration_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "pkgs"
    _capability(root, "quiz", {"0001_bad.sql": "CREATE TABLE ok_table (id INTEGER);\nCREATE TABLE broken (;"})
    db_path = tmp_path / "hub.sqlite3"
    db = connect(db_path)
    with pytest.raises(Exception):
        migrate(db, db_path, tmp_path / "backups", components=component_migrations(root))
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'ok_table'").fetchone() is None
