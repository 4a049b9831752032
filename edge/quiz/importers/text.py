"""Reading the text of an uploaded file: UTF-8 (with or without BOM), else GB18030 (Chinese Windows)."""

from __future__ import annotations

from edge.quiz.importers import ImportFormatError


def decode(data: bytes) -> str:
    if b"\x00" in data[:4096]:
        raise ImportFormatError("this is a binary file, not text")
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(enc).replace("\r\n", "\n").replace("\r", "\n")
        except UnicodeDecodeError:
            continue
    raise ImportFormatError("the file is neither UTF-8 nor GBK/GB18030 text")
