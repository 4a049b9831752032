"""Importers on real files: every question reported as imported, duplicate or refused (with why);
the same file gives the same outcome every time; broken files store nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.quiz.importers import ImportFormatError, aiken, gift, qti, sheet
from edge.quiz.importing import import_file
from tests.hub.support import HubEnv, assert_problem

from .conftest import DATA


def _by_where(parsed: list) -> dict:
    return {p.where: p for p in parsed}


def test_gift_all_supported_types_and_refusals() -> None:
    parsed = gift.parse((DATA / "math.gift").read_bytes())
    kinds = [(p.item.type if p.item else None, p.error) for p in parsed]
    items = [p.item for p in parsed if p.item]
    assert [i.type for i in items] == ["single", "truefalse", "fill", "multiple", "numeric", "numeric", "short", "fill", "truefalse"]
    first = items[0]
    assert first.options == ["四分之一", "二分之一", "四分之三", "一"] and first.key == {"choices": [0]}
    assert first.explanation == "平均分成几份，每份就是它的几分之一。"
    assert first.knowledge_points == ["分数", "分数的意义"] and first.difficulty == 2
    assert items[1].key == {"value": True} and items[1].explanation.startswith("分子相同")
    assert items[2].key == {"blanks": [["H2O", "H₂O"]]}
    assert items[3].key == {"choices": [0, 1]} and items[3].options == ["2", "4", "3", "5"]
    assert items[4].key == {"value": 3.14, "tolerance": 0.005}
    assert items[5].key == {"value": 1.5, "tolerance": 0.5}
    assert items[6].allow_photo
    assert items[7].stem == "中国的首都是 ____ ，它在北方。"
    assert items[8].stem == "2 = 1 + 1 吗？"  # escaped '=' is text
    errors = [e for k, e in kinds if k is None]
    assert any("matching" in e for e in errors)
    assert any("not closed" in e for e in errors)


def test_aiken_reports_broken_questions_by_line() -> None:
    parsed = aiken.parse((DATA / "capitals.aiken.txt").read_bytes())
    ok = [p for p in parsed if p.item]
    assert [p.item.key for p in ok] == [{"choices": [1]}, {"choices": [1]}, {"choices": [1]}]
    assert ok[0].item.options == ["上海", "北京", "广州", "深圳"]
    refused = {p.where: p.error for p in parsed if not p.item}
    assert len(refused) == 2
    assert any("no ANSWER line" in e for e in refused.values())
    assert any("ANSWER D is not one of the options AB" in e for e in refused.values())


def test_qti_single_items_and_package() -> None:
    choice = qti.parse((DATA / "qti" / "choice.xml").read_bytes())[0]
    assert choice.item.type == "single" and choice.item.options == ["叶", "根", "花"] and choice.item.key == {"choices": [1]}
    assert choice.item.stem == "植物通过哪个器官吸收水分？" and choice.item.explanation == "根从土壤中吸收水分。"
    parsed = _by_where(qti.parse((DATA / "qti-package.zip").read_bytes()))
    assert set(parsed) == {"choice.xml", "multiple.xml", "text_entry.xml", "numeric.xml", "order.xml"}
    assert parsed["multiple.xml"].item.key == {"choices": [0, 2]}
    text = parsed["text_entry.xml"].item
    assert text.type == "fill" and text.key == {"blanks": [["York", "york"]]} and "____" in text.stem
    assert parsed["numeric.xml"].item.key == {"value": 56.0, "tolerance": 0.0}
    assert "orderInteraction is not supported" in parsed["order.xml"].error


def test_qti_entity_bomb_is_refused_not_expanded() -> None:
    p = qti.parse((DATA / "qti" / "bomb.xml").read_bytes())[0]
    assert p.item is None and "entities" in p.error


def test_xlsx_template_per_row_report() -> None:
    parsed = _by_where(sheet.parse_xlsx((DATA / "template.xlsx").read_bytes()))
    assert parsed["row 2"].item.key == {"choices": [1]} and parsed["row 2"].item.points == 2 and parsed["row 2"].item.difficulty == 1
    assert parsed["row 3"].item.type == "multiple" and parsed["row 3"].item.knowledge_points == ["四边形", "图形认识"]
    assert parsed["row 4"].item.key == {"value": True}
    assert parsed["row 5"].item.key == {"blanks": [["100"], ["10"]]}
    assert parsed["row 6"].item.key == {"value": 0.25, "tolerance": 0.001} and parsed["row 6"].item.difficulty == 2
    assert parsed["row 7"].item.type == "short" and parsed["row 7"].item.difficulty == 5
    assert "答案 is empty" in parsed["row 8"].error
    assert "does not name given options" in parsed["row 9"].error
    assert "unknown 题型" in parsed["row 10"].error
    assert "不是" not in parsed["row 11"].error and "对/错" in parsed["row 11"].error
    assert "row 12" not in parsed  # the blank row is skipped, not reported
    assert "难度" in parsed["row 13"].error


def test_csv_template_in_gbk() -> None:
    parsed = sheet.parse_csv((DATA / "template-gbk.csv").read_bytes())
    assert [p.item.type for p in parsed] == ["single", "multiple", "truefalse", "fill", "numeric", "short"]


@pytest.mark.parametrize("fn,data,msg", [
    (sheet.parse_xlsx, (DATA / "broken.xlsx").read_bytes(), "not a readable .xlsx"),
    (sheet.parse_csv, "名字,年龄\n张三,9\n".encode(), "missing: 题型、题目、答案"),
    (qti.parse, b"PK\x03\x04garbage", "not a readable zip"),
    (gift.parse, b"\x00\x01\x02binary", "binary"),
])
def test_unreadable_files_are_refused_as_a_whole(fn, data: bytes, msg: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ImportFormatError, match=msg):
        fn(data)


def test_import_is_deterministic_and_idempotent(hub: HubEnv) -> None:
    data = (DATA / "template.xlsx").read_bytes()
    db = hub.app.extensions["classroom_hub"].db
    items_before = hub.count("quiz_items")
    first = import_file(db, data, "xlsx", "第一次")
    second = import_file(db, data, "xlsx", "第二次")
    assert (first.imported, first.duplicates, first.refused) == (6, 0, 5)
    assert (second.imported, second.duplicates, second.refused) == (0, 6, 5)
    assert [(r.where, r.status == "refused", r.reason, r.item_id) for r in first.rows] == \
           [(r.where, r.status == "refused", r.reason, r.item_id) for r in second.rows]
    assert hub.count("quiz_items") == items_before + 6


def test_import_over_http_reports_rows_and_refuses_bad_files(hub: HubEnv) -> None:
    c, h = hub.client(), {"Authorization": f"Bearer {hub.staff_token('teacher')}"}
    body = (DATA / "math.gift").read_bytes()
    r = c.post("/api/v1/quiz/imports?format=gift&title=分数", data=body, headers={**h, "Content-Type": "text/plain"})
    assert r.status_code == 201, r.get_json()
    rep = r.get_json()
    assert rep["imported"] == 9 and rep["refused"] == 2 and rep["quiz_id"]
    assert {row["status"] for row in rep["rows"]} == {"imported", "refused"}
    before = hub.snapshot()
    bad = c.post("/api/v1/quiz/imports?filename=x.xlsx", data=(DATA / "broken.xlsx").read_bytes(),
                 headers={**h, "Content-Type": "application/octet-stream"})
    assert_problem(bad, 422, "unreadable-file")
    unknown = c.post("/api/v1/quiz/imports", data=b"x", headers={**h, "Content-Type": "text/plain"})
    assert_problem(unknown, 422, "unknown-format")
    assert hub.snapshot() == before
    quizzes = c.get("/api/v1/quizzes", headers=h).get_json()["quizzes"]
    assert quizzes[0]["title"] == "分数" and quizzes[0]["items"] == 9


def test_oversize_import_is_refused(hub: HubEnv, tmp_path: Path) -> None:
    h = {"Authorization": f"Bearer {hub.staff_token('teacher')}", "Content-Type": "text/plain"}
    big = b"::q:: x {T}\n\n" * (hub.config.quiz.import_max_bytes // 10)
    assert_problem(hub.client().post("/api/v1/quiz/imports?format=gift", data=big, headers=h), 413)


def test_the_demo_classroom_has_the_sample_quiz(hub: HubEnv) -> None:
    quizzes = hub.client().get("/api/v1/quizzes", headers={"Authorization": f"Bearer {hub.staff_token('teacher')}"}).get_json()["quizzes"]
    sample = [q for q in quizzes if q["source"].startswith("gift:") and "分数" in q["title"]]
    assert sample and sample[0]["items"] == 6
