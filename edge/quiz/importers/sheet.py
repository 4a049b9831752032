"""The spreadsheet template Chinese teachers use (xlsx via openpyxl, or csv).

The first row names the columns; names are matched loosely (题型/类型/type, 题目/题干/
question, 选项A..选项H or A..H, 答案/正确答案/answer, 解析/答案解析/explanation,
难度/difficulty, 知识点/knowledge_points, 分值/分数/points). Blank rows are skipped.

- 题型: 单选(题), 多选(题), 判断(题), 填空(题), 数值/计算(题), 简答/主观/问答(题)
  (or single, multiple, truefalse, fill, numeric, short).
- 答案: letters for choice questions (``B``, ``ABD``, ``A,B``); 对/错, 正确/错误, √/×,
  T/F, 是/否 for 判断; for 填空, blanks separated by ``;`` or ``；`` and accepted
  alternatives within a blank by ``|``; for 数值, ``3.14`` or ``3.14±0.01``.
- 难度: 1-5, 易/较易/中/较难/难, or a 0-1 facility value (1 = easy).
- 知识点: separated by ``,`` ``，`` ``、`` ``;`` ``；``.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from edge.quiz.importers import ImportFormatError, Parsed
from edge.quiz.importers.text import decode
from edge.quiz.items import ItemError, ItemSpec, validate_item

MAX_ROWS = 5000

_HEADERS = {
    "type": ("题型", "类型", "题目类型", "type"),
    "stem": ("题目", "题干", "试题", "question", "stem"),
    "answer": ("答案", "正确答案", "参考答案", "answer"),
    "explanation": ("解析", "答案解析", "explanation"),
    "difficulty": ("难度", "difficulty"),
    "kp": ("知识点", "knowledge_points", "knowledge points", "tags"),
    "points": ("分值", "分数", "points", "score"),
}
_TYPES = {
    "single": ("单选", "单选题", "单项选择", "单项选择题", "选择题", "single"),
    "multiple": ("多选", "多选题", "多项选择", "多项选择题", "不定项", "multiple"),
    "truefalse": ("判断", "判断题", "是非题", "truefalse", "true/false", "tf"),
    "fill": ("填空", "填空题", "fill"),
    "numeric": ("数值", "数值题", "计算", "计算题", "numeric"),
    "short": ("简答", "简答题", "主观", "主观题", "问答", "问答题", "解答题", "short", "essay"),
}
_TRUE = {"对", "正确", "√", "✓", "t", "true", "是", "y", "yes", "1"}
_FALSE = {"错", "错误", "×", "✗", "x", "f", "false", "否", "n", "no", "0"}
_DIFF_WORDS = {"易": 1, "容易": 1, "简单": 1, "较易": 2, "中": 3, "中等": 3, "一般": 3, "较难": 4, "难": 5, "困难": 5}


def _key(header: str) -> str | None:
    h = re.sub(r"\s+", "", str(header or "")).lower()
    for key, names in _HEADERS.items():
        if h in (n.lower().replace(" ", "") for n in names):
            return key
    m = re.fullmatch(r"(?:选项|option)?([a-h])", h)
    return f"opt{m.group(1).upper()}" if m else None


def parse_xlsx(data: bytes) -> list[Parsed]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a broken file
        raise ImportFormatError("the file is not a readable .xlsx workbook") from None
    try:
        ws = wb.worksheets[0]
        rows = []
        for n, row in enumerate(ws.iter_rows(values_only=True), 1):
            if n > MAX_ROWS + 1:
                raise ImportFormatError(f"more than {MAX_ROWS} rows; split the file")
            rows.append(["" if v is None else (str(v) if not isinstance(v, float) or not v.is_integer() else str(int(v))) for v in row])
    finally:
        wb.close()
    return _rows(rows)


def parse_csv(data: bytes) -> list[Parsed]:
    text = decode(data)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text), dialect))
    if len(rows) > MAX_ROWS + 1:
        raise ImportFormatError(f"more than {MAX_ROWS} rows; split the file")
    return _rows(rows)


def _rows(rows: list[list[str]]) -> list[Parsed]:
    if not rows:
        raise ImportFormatError("the sheet is empty")
    cols = {i: _key(h) for i, h in enumerate(rows[0])}
    present = set(cols.values())
    missing = [k for k in ("type", "stem", "answer") if k not in present]
    if missing:
        names = "、".join(_HEADERS[k][0] for k in missing)
        raise ImportFormatError(f"the first row must name the columns; missing: {names}")
    out = []
    for n, row in enumerate(rows[1:], 2):
        rec: dict[str, str] = {}
        for i, v in enumerate(row):
            k = cols.get(i)
            if k and v is not None and str(v).strip():
                rec[k] = str(v).strip()
        if not rec:
            continue
        try:
            out.append(Parsed(f"row {n}", validate_item(_item(rec))))
        except ItemError as exc:
            out.append(Parsed(f"row {n}", None, str(exc)))
    return out


def _item(rec: dict[str, str]) -> ItemSpec:
    raw_type = rec.get("type", "").strip().lower()
    kind = next((k for k, names in _TYPES.items() if raw_type in names), None)
    if kind is None:
        raise ItemError(f"unknown 题型 {rec.get('type', '')!r}")
    stem, answer = rec.get("stem", ""), rec.get("answer", "")
    if not answer and kind != "short":
        raise ItemError("答案 is empty")
    options = [rec[f"opt{c}"] for c in "ABCDEFGH" if f"opt{c}" in rec]
    if kind in ("single", "multiple"):
        letters = [c for c in answer.upper() if c.isalpha()]
        if not letters or any(ord(c) - 65 >= len(options) or ord(c) < 65 for c in letters):
            raise ItemError(f"答案 {answer!r} does not name given options ({''.join(chr(65 + i) for i in range(len(options)))})")
        key: dict[str, Any] = {"choices": [ord(c) - 65 for c in letters]}
        if kind == "single" and len(set(letters)) > 1:
            raise ItemError(f"单选 with several answers {answer!r}")
    elif kind == "truefalse":
        a = answer.strip().lower()
        if a not in _TRUE | _FALSE:
            raise ItemError(f"判断 answer {answer!r} is not 对/错")
        key = {"value": a in _TRUE}
    elif kind == "fill":
        key = {"blanks": [[alt for alt in (x.strip() for x in blank.split("|")) if alt] for blank in re.split(r"[;；]", answer) if blank.strip()]}
    elif kind == "numeric":
        value, _, tol = answer.replace("±", "+-").partition("+-")
        try:
            key = {"value": float(value), "tolerance": float(tol or 0)}
        except ValueError:
            raise ItemError(f"数值 answer {answer!r} is not a number") from None
    else:
        key = {"reference": answer}
    return ItemSpec(kind, stem, key, options, explanation=rec.get("explanation", ""), difficulty=_difficulty(rec.get("difficulty")),
                    knowledge_points=[t for t in re.split(r"[,，、;；|]", rec.get("kp", "")) if t.strip()],
                    points=_points(rec.get("points")), allow_photo=kind == "short")


def _difficulty(raw: str | None) -> int | None:
    if not raw:
        return None
    if raw in _DIFF_WORDS:
        return _DIFF_WORDS[raw]
    try:
        v = float(raw)
    except ValueError:
        raise ItemError(f"难度 {raw!r} is not 1-5 or 易/中/难") from None
    if 0 <= v < 1 or (v == 1.0 and "." in raw):
        return max(1, min(5, round(1 + 4 * (1 - v))))  # facility: 1 = everyone right = easy
    if v.is_integer() and 1 <= v <= 5:
        return int(v)
    raise ItemError(f"难度 {raw!r} is not 1-5 or 易/中/难")


def _points(raw: str | None) -> float:
    if not raw:
        return 1.0
    try:
        return float(raw)
    except ValueError:
        raise ItemError(f"分值 {raw!r} is not a number") from None
