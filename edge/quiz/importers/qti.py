"""IMS QTI 2.1 items: ``choiceInteraction`` (single/multiple) and ``textEntryInteraction``
(fill-in; numeric when the response is a float/integer), as single ``assessmentItem``
XML files or an IMS content package (zip with ``imsmanifest.xml``).

The XML is untrusted: it is parsed with defusedxml (no entity expansion, no external
entities, no DTD retrieval), and a zip is read with limits on members and sizes.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from edge.quiz.importers import ImportFormatError, Parsed
from edge.quiz.items import ItemError, ItemSpec, validate_item

MAX_MEMBERS = 2000
MAX_MEMBER_BYTES = 4 * 1024 * 1024
MAX_TOTAL_BYTES = 64 * 1024 * 1024


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(el: Element, name: str) -> list[Element]:
    return [e for e in el.iter() if _local(e.tag) == name]


def _text(el: Element, skip: tuple[str, ...] = ()) -> str:
    """Visible text of ``el``, leaving out sub-elements named in ``skip`` (their tails kept)."""
    parts = [el.text or ""]
    for child in el:
        if _local(child.tag) not in skip:
            parts.append(_text(child, skip))
        elif _local(child.tag) == "textEntryInteraction":
            parts.append(" ____ ")
        parts.append(child.tail or "")
    return "".join(parts)


def _squash(s: str) -> str:
    return " ".join(s.split())


def parse(data: bytes) -> list[Parsed]:
    if data[:4] == b"PK\x03\x04":
        return _package(data)
    return [_item_file("item", data)]


def _package(data: bytes) -> list[Parsed]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ImportFormatError("the file is not a readable zip package") from None
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if len(infos) > MAX_MEMBERS or sum(i.file_size for i in infos) > MAX_TOTAL_BYTES:
        raise ImportFormatError("the package is too large")
    names = [i.filename for i in infos if i.filename.lower().endswith(".xml") and not i.filename.lower().endswith("imsmanifest.xml")]
    if not names:
        raise ImportFormatError("the package holds no item XML files")
    out = []
    for info in sorted((i for i in infos if i.filename in names), key=lambda i: i.filename):
        if info.file_size > MAX_MEMBER_BYTES:
            out.append(Parsed(info.filename, None, "this item file is too large"))
            continue
        parsed = _item_file(info.filename, zf.read(info))
        if parsed.error == "not an assessmentItem":
            continue  # tests, stimuli and other package files
        out.append(parsed)
    return out


def _item_file(where: str, data: bytes) -> Parsed:
    try:
        root = SafeET.fromstring(data)
    except DefusedXmlException:
        return Parsed(where, None, "the XML uses entities or a DTD, which are refused")
    except SafeET.ParseError as exc:
        return Parsed(where, None, f"not well-formed XML ({exc})")
    if _local(root.tag) != "assessmentItem":
        return Parsed(where, None, "not an assessmentItem")
    try:
        spec = _item(root)
        return Parsed(where, validate_item(spec), title=root.get("title", ""))
    except ItemError as exc:
        return Parsed(where, None, str(exc))


def _declarations(root: Element) -> dict[str, dict[str, Any]]:
    decls = {}
    for d in _children(root, "responseDeclaration"):
        correct = [_squash(v.text or "") for c in _children(d, "correctResponse") for v in c if _local(v.tag) == "value"]
        mapped = [(e.get("mapKey", ""), float(e.get("mappedValue", "0") or 0)) for e in _children(d, "mapEntry")]
        decls[d.get("identifier", "")] = {"cardinality": d.get("cardinality", "single"), "baseType": d.get("baseType", ""),
                                          "correct": correct, "mapped": mapped}
    return decls


def _item(root: Element) -> ItemSpec:
    bodies = _children(root, "itemBody")
    if not bodies:
        raise ItemError("the item has no itemBody")
    body = bodies[0]
    decls = _declarations(root)
    explanation = _squash(" ".join(_text(f) for f in _children(root, "modalFeedback")))
    choices = _children(body, "choiceInteraction")
    entries = _children(body, "textEntryInteraction")
    supported = ("choiceInteraction", "textEntryInteraction")
    others = [_local(e.tag) for e in body.iter() if _local(e.tag).endswith("Interaction") and _local(e.tag) not in supported]
    if others:
        raise ItemError(f"{others[0]} is not supported (choice and text entry are)")
    if choices and entries or len(choices) > 1:
        raise ItemError("only one kind of interaction per item is supported")
    if choices:
        inter = choices[0]
        decl = decls.get(inter.get("responseIdentifier", ""))
        if decl is None:
            raise ItemError("the choice interaction has no responseDeclaration")
        simple = [c for c in inter if _local(c.tag) == "simpleChoice"]
        ids = [c.get("identifier", "") for c in simple]
        options = [_squash(_text(c, skip=("feedbackInline",))) for c in simple]
        prompt = " ".join(_squash(_text(p)) for p in inter if _local(p.tag) == "prompt")
        stem = _squash(" ".join([_squash(_text(body, skip=("choiceInteraction",))), prompt]))
        right = decl["correct"] or [k for k, v in decl["mapped"] if v > 0]
        unknown = [r for r in right if r not in ids]
        if unknown or not right:
            raise ItemError(f"the correct response {unknown[0] if unknown else '(none)'} is not one of the choices")
        kind = "multiple" if decl["cardinality"] == "multiple" or int(inter.get("maxChoices", "1") or 1) != 1 else "single"
        if kind == "multiple" and len(right) == 1 and decl["cardinality"] == "single":
            kind = "single"
        return ItemSpec(kind, stem, {"choices": [ids.index(r) for r in right]}, options, explanation=explanation)
    if entries:
        stem = _squash(_text(body, skip=("textEntryInteraction",)))
        blanks: list[list[str]] = []
        numeric = None
        for e in entries:
            decl = decls.get(e.get("responseIdentifier", ""))
            if decl is None:
                raise ItemError("a text entry has no responseDeclaration")
            # Only full-credit mappings are right answers (partial credit is not a grade the hub gives).
            full = max((v for _, v in decl["mapped"]), default=0.0)
            accepted = decl["correct"] + [k for k, v in decl["mapped"] if v > 0 and v >= full and k not in decl["correct"]]
            if not accepted:
                raise ItemError("a text entry has no correct response")
            if decl["baseType"] in ("float", "integer") and len(entries) == 1:
                try:
                    numeric = float(accepted[0])
                except ValueError:
                    raise ItemError(f"{accepted[0]!r} is not a number") from None
            blanks.append(accepted)
        if numeric is not None:
            return ItemSpec("numeric", stem, {"value": numeric, "tolerance": 0.0}, explanation=explanation)
        return ItemSpec("fill", stem, {"blanks": blanks}, explanation=explanation)
    raise ItemError("the item has no choice or text entry interaction")
