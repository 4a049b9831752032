"""Importing a question-bank file: parse, store the good questions, report every row.

:func:`import_file` is also the entry point for other capabilities (a lesson
package carrying a quiz file calls it with the file's bytes and format).
The outcome is deterministic: the same file always keeps the same rows and
refuses the same rows for the same reasons; importing it again stores nothing
new (each question is recognised by its content) and reports those rows as
``duplicate``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from edge.quiz import bank
from edge.quiz.importers import FORMATS, ImportFormatError, Parsed, aiken, gift, qti, sheet
from edge.storage.db import Database, transaction

log = logging.getLogger(__name__)

_PARSERS = {"gift": gift.parse, "aiken": aiken.parse, "qti": qti.parse, "xlsx": sheet.parse_xlsx, "csv": sheet.parse_csv}
_EXTENSIONS = {".gift": "gift", ".txt": "gift", ".aiken": "aiken", ".xml": "qti", ".zip": "qti", ".xlsx": "xlsx", ".csv": "csv"}


@dataclass
class RowReport:
    where: str
    status: str  # imported | duplicate | refused
    reason: str = ""
    item_id: int | None = None
    stem: str = ""


@dataclass
class ImportReport:
    format: str
    quiz_id: int | None
    imported: int = 0
    duplicates: int = 0
    refused: int = 0
    rows: list[RowReport] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def guess_format(filename: str) -> str | None:
    """The import format for a file name, by extension (``.txt`` is taken as GIFT)."""
    lower = filename.lower()
    return next((fmt for ext, fmt in _EXTENSIONS.items() if lower.endswith(ext)), None)


def parse_file(data: bytes, fmt: str) -> list[Parsed]:
    """Parse without storing; raises :class:`ImportFormatError` if the file as a whole is unreadable."""
    if fmt not in FORMATS:
        raise ImportFormatError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if not data.strip():
        raise ImportFormatError("the file is empty")
    return _PARSERS[fmt](data)


def import_file(db: Database, data: bytes, fmt: str, title: str, user_id: int | None = None, source: str = "",
                make_quiz: bool = True) -> ImportReport:
    """Import a question file into the bank (one transaction) and, if any row was kept, make it a quiz.

    Raises :class:`ImportFormatError` when the file cannot be read at all (nothing is stored).
    """
    parsed = parse_file(data, fmt)
    report = ImportReport(fmt, None)
    kept: list[int] = []
    with transaction(db):
        for p in parsed:
            if p.item is None:
                report.rows.append(RowReport(p.where, "refused", p.error or "not a question"))
                report.refused += 1
                continue
            item_id, created = bank.add_item(db, p.item, source=f"{fmt}:{source}#{p.where}", user_id=user_id)
            report.rows.append(RowReport(p.where, "imported" if created else "duplicate", item_id=item_id, stem=p.item.stem[:80]))
            if created:
                report.imported += 1
            else:
                report.duplicates += 1
            if item_id not in kept:
                kept.append(item_id)
        if kept and make_quiz:
            report.quiz_id = bank.create_quiz(db, title, kept, source=f"{fmt}:{source}", user_id=user_id)
    log.info("question import", extra={"format": fmt, "source": source, "imported": report.imported,
                                       "duplicates": report.duplicates, "refused": report.refused, "quiz_id": report.quiz_id})
    return report
