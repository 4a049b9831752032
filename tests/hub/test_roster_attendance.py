"""Roster CSV import (API and CLI) and attendance with its outbox event."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.cli import main as cli

from .support import HubEnv, assert_problem, bearer

ROSTER = "姓名,学号,PIN\n张小明,S01,1234\n李华,S02,\n欧阳娜娜,S03,987654\n"
BAD_ROWS = "name,number,pin\nAnna,E01,1234\n,E02,1234\nBen,E01,1234\nCara,E03,12a4\nDan,E04,\n"


def _import(h: HubEnv, raw: bytes, ctype: str = "text/csv") -> object:
    return h.client().post(f"/api/v1/classes/{h.class_id}/roster", data=raw, content_type=ctype, headers=bearer(h.staff_token("teacher")))


@pytest.mark.parametrize(
    ("encoding", "raw", "reported"),
    [
        ("utf-8", ROSTER.encode("utf-8"), "utf-8"),
        ("utf-8 with BOM", b"\xef\xbb\xbf" + ROSTER.encode("utf-8"), "utf-8-sig"),
        ("gbk (Excel in a Chinese locale)", ROSTER.replace("\n", "\r\n").encode("gbk"), "gbk"),
    ],
)
def test_roster_import_reads_chinese_names_in_every_encoding(hub: HubEnv, encoding: str, raw: bytes, reported: str) -> None:
    resp = _import(hub, raw)
    assert resp.status_code == 201, resp.get_json()
    report = resp.get_json()
    assert (report["encoding"], report["created"], report["updated"], report["refused"]) == (reported, 3, 0, [])
    names = {r[0] for r in hub.sql("SELECT name FROM students WHERE number LIKE 'S0%'")}
    assert names == {"张小明", "李华", "欧阳娜娜"}
    # only the student without a PIN got a generated one, shown once
    assert [p["number"] for p in report["generated_pins"]] == ["S02"]


def test_roster_rows_are_refused_with_their_line_numbers(hub: HubEnv) -> None:
    resp = _import(hub, BAD_ROWS.encode())
    assert resp.status_code == 201
    report = resp.get_json()
    refused = {r["line"]: r["reason"] for r in report["refused"]}
    assert set(refused) == {3, 4, 5}
    assert "name" in refused[3] and "twice" in refused[4] and "PIN" in refused[5]
    assert report["created"] == 2
    assert hub.count("students", "number IN ('E01', 'E04')") == 2


@pytest.mark.parametrize(
    "raw", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), b"PK\x03\x04" + b"\x00\xff" * 100, b"", b"just,some\nwords,here\n"],
    ids=["png", "xlsx-zip", "empty", "no-name-column"],
)
def test_not_a_roster_is_422_and_changes_nothing(hub: HubEnv, raw: bytes) -> None:
    hub.staff_token("teacher")  # log in first: the session is not part of the import
    before = hub.snapshot()
    assert_problem(_import(hub, raw), 422, "bad-roster")
    assert hub.snapshot() == before


def test_importing_the_same_roster_twice_updates_instead_of_duplicating(hub: HubEnv) -> None:
    first = _import(hub, ROSTER.encode("gbk")).get_json()
    students = hub.count("students")
    second = _import(hub, ROSTER.encode("gbk")).get_json()
    assert (first["created"], second["created"], second["updated"]) == (3, 0, 3)
    assert hub.count("students") == students
    assert second["generated_pins"] == []  # existing students keep their PINs


def test_roster_rows_for_another_class_are_refused(hub: HubEnv) -> None:
    raw = "姓名,学号,班级\n王一,X01,三年级二班\n王二,X02,三年级三班\n".encode()
    report = _import(hub, raw).get_json()
    assert report["created"] == 1
    assert [r["line"] for r in report["refused"]] == [3]
    assert hub.count("students", "number = 'X02'") == 0


def _cli(data_dir: Path, *args: str) -> object:
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args], env={"HUB_CONFIG": ""}, catch_exceptions=False)


def test_roster_import_through_the_cli(hub: HubEnv, tmp_path: Path) -> None:
    f = tmp_path / "roster.csv"
    f.write_bytes(ROSTER.encode("gbk"))
    bad = tmp_path / "bad.csv"
    bad.write_bytes(BAD_ROWS.encode("utf-8"))
    data_dir = hub.config.hub.data_dir
    r = _cli(data_dir, "roster", "import", str(f), "--class", "四年级一班", "--pins-out", str(tmp_path / "pins.csv"))
    assert r.exit_code == 0, r.output
    assert "read as gbk: 3 created, 0 updated, 0 refused" in r.output
    assert (tmp_path / "pins.csv").stat().st_mode & 0o077 == 0
    assert "李华" in (tmp_path / "pins.csv").read_text(encoding="utf-8-sig")
    r = _cli(data_dir, "roster", "import", str(f), "--class", "四年级一班")
    assert "0 created, 3 updated" in r.output
    assert hub.count("students", "class_id = (SELECT id FROM classes WHERE name = '四年级一班')") == 3
    r = _cli(data_dir, "roster", "import", str(bad), "--class", "四年级一班")
    assert "line 3:" in r.output and "line 4:" in r.output and "line 5:" in r.output
    png = tmp_path / "photo.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    before = hub.snapshot()
    r = _cli(data_dir, "roster", "import", str(png), "--class", "四年级一班")
    assert r.exit_code != 0
    assert hub.snapshot() == before


# -- attendance ----------------------------------------------------------------------------


def test_sign_in_records_attendance_once_per_day_and_an_outbox_event(hub: HubEnv) -> None:
    tablet = hub.enrol()
    sid, _ = hub.student("20")
    outbox_before = hub.count("outbox")
    hub.sign_in(tablet, "20")
    hub.sign_in(tablet, "20")
    rows = hub.sql("SELECT day, sign_ins FROM attendance WHERE student_id = ?", (sid,))
    assert len(rows) == 1 and rows[0][1] == 2
    events = hub.sql("SELECT type, payload FROM outbox ORDER BY seq")[outbox_before:]
    assert [e[0] for e in events] == ["attendance.signin", "attendance.signin"]
    payload = json.loads(events[0][1])
    pseudo, name = hub.sql("SELECT pseudo_id, name FROM students WHERE id = ?", (sid,))[0]
    assert payload["student"] == pseudo
    assert name not in events[0][1] and str(sid) != payload["student"]
    # the teacher sees the student present
    att = hub.client().get(f"/api/v1/classes/{hub.class_id}/attendance", headers=bearer(hub.staff_token("teacher"))).get_json()
    assert att["present"] == 1 and att["total"] == 45
    assert next(s for s in att["students"] if s["student_id"] == sid)["sign_ins"] == 2


def test_attendance_and_outbox_commit_together(hub: HubEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    import edge.outbox

    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("disk full while writing the outbox")

    monkeypatch.setattr(edge.outbox, "append", broken)
    tablet = hub.enrol()
    sid, pin = hub.student("21")
    before = hub.snapshot()
    resp = hub.client().post("/api/v1/signin", json={"student_id": sid, "pin": pin}, headers={"X-Device-Token": tablet.token})
    assert_problem(resp, 500)
    assert hub.snapshot() == before  # no attendance, no session without its event
