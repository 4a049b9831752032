"""Question-bank importers: GIFT, Aiken, IMS QTI 2.1, and the xlsx/csv template.

Every importer turns a file's bytes into a list of :class:`Parsed` rows (one per
question, with where it came from in the file) and never touches the database;
:func:`edge.quiz.importing.import_file` stores the good rows and reports the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.quiz.items import ItemSpec


class ImportFormatError(ValueError):
    """The whole file cannot be read (not one of its rows): the message is for people."""


@dataclass
class Parsed:
    where: str  # "line 12", "row 5", "item2.xml"
    item: ItemSpec | None
    error: str | None = None
    title: str = ""


FORMATS = ("gift", "aiken", "qti", "xlsx", "csv")
