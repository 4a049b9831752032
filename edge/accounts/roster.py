"""Reading a class roster from the CSV files schools actually have.

Excel in a Chinese locale saves CSV as GBK; newer tools save UTF-8, often with
a BOM. Headers may be Chinese or English. We decode strictly (UTF-8, then
GB18030, a superset of GBK) rather than guessing byte by byte, and report every
row we refuse with its line number and reason.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

HEADER_ALIASES = {
    "name": {"name", "姓名", "学生姓名"},
    "number": {"number", "student_number", "学号", "编号", "座号"},
    "class": {"class", "班级", "班级名称"},
    "pin": {"pin", "密码", "pin码", "登录码"},
}
MAX_ROWS = 2000
_PIN = re.compile(r"^\d{4,6}$")


class RosterError(ValueError):
    """The file as a whole cannot be read."""


@dataclass
class RosterRow:
    line: int
    name: str
    number: str
    class_name: str | None
    pin: str | None


@dataclass
class RosterParse:
    encoding: str
    rows: list[RosterRow] = field(default_factory=list)
    refused: list[dict[str, object]] = field(default_factory=list)


def decode(raw: bytes) -> tuple[str, str]:
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8"), "utf-8-sig"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030"), "gbk"
    except UnicodeDecodeError:
        raise RosterError("the file is neither UTF-8 nor GBK text") from None


def parse_roster(raw: bytes) -> RosterParse:
    if not raw.strip():
        raise RosterError("the file is empty")
    text, encoding = decode(raw)
    if "\x00" in text:
        raise RosterError("the file contains NUL bytes; is it a spreadsheet rather than CSV?")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise RosterError(f"cannot read the header row: {exc}") from None
    columns: dict[str, int] = {}
    for idx, cell in enumerate(header):
        key = cell.strip().lower().replace(" ", "")
        for canon, aliases in HEADER_ALIASES.items():
            if key in aliases and canon not in columns:
                columns[canon] = idx
    if "name" not in columns or "number" not in columns:
        raise RosterError("the header row must name the columns 姓名 (name) and 学号 (number)")
    result = RosterParse(encoding)
    seen: set[str] = set()
    try:
        for line_no, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            if len(result.rows) + len(result.refused) >= MAX_ROWS:
                raise RosterError(f"more than {MAX_ROWS} rows; split the file by class")

            def cell(col: str, cells: list[str] = cells) -> str:
                i = columns.get(col)
                return cells[i].strip() if i is not None and i < len(cells) else ""

            name, number, pin = cell("name"), cell("number"), cell("pin")
            reason, code = None, None
            if not name:
                reason, code = "name is empty", "name-empty"
            elif len(name) > 32:
                reason, code = "name is longer than 32 characters", "name-too-long"
            elif any(ch.isdigit() for ch in name) and not any(ch.isalpha() for ch in name):
                reason, code = "name has no letters", "name-no-letters"
            elif not number:
                reason, code = "number is empty", "number-empty"
            elif len(number) > 32:
                reason, code = "number is longer than 32 characters", "number-too-long"
            elif number in seen:
                reason, code = f"number {number} appears twice in the file", "number-duplicate"
            elif pin and not _PIN.match(pin):
                reason, code = "PIN must be 4 to 6 digits", "bad-pin"
            if reason:
                result.refused.append({"line": line_no, "code": code, "reason": reason})
                continue
            seen.add(number)
            result.rows.append(RosterRow(line_no, name, number, cell("class") or None, pin or None))
    except csv.Error as exc:
        raise RosterError(f"malformed CSV: {exc}") from None
    return result
