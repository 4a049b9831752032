"""Item types, normalisation and grading (pure functions)."""

from __future__ import annotations

import pytest

from edge.quiz.items import ItemError, ItemSpec, grade, validate_item, validate_response
from edge.quiz.normalise import normalise_text, parse_number


@pytest.mark.parametrize("a,b", [
    ("ＡＢＣ", "abc"), ("  New   York ", "new york"), ("北 京", "北京"), ("Ｈ２Ｏ", "h2o"),
    ("北京\u3000", "北京"), ("Straße", "strasse"), ("1，2", "1,2"), ("a 北京 b", "a北京b"),
])
def test_full_width_case_and_spacing_do_not_cost_the_mark(a: str, b: str) -> None:
    assert normalise_text(a) == normalise_text(b)


def test_spaces_between_latin_words_still_matter() -> None:
    assert normalise_text("new york") != normalise_text("newyork")


def test_normalisation_is_idempotent() -> None:
    for s in ("ＡＢＣ  d", " 北 京 Ｘ y ", "Straße"):
        assert normalise_text(normalise_text(s)) == normalise_text(s)


@pytest.mark.parametrize("text,value", [("３．１４", 3.14), ("3,5", 3.5), ("1/4", 0.25), ("50%", 0.5), (" -2 ", -2.0), ("1,000", 1000.0)])
def test_numbers_typed_in_any_width(text: str, value: float) -> None:
    assert parse_number(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "abc", "1/0", "nan", "inf"])
def test_non_numbers_are_refused(text: str) -> None:
    assert parse_number(text) is None


def _item(type_: str, key: dict, options: list[str] | None = None) -> ItemSpec:
    return validate_item(ItemSpec(type_, "题目", key, options or []))


def _g(item: ItemSpec, response: dict) -> bool | None:
    n = len(item.key["blanks"]) if item.type == "fill" else 0
    return grade(item.type, item.key, item.points, validate_response(item.type, len(item.options), n, response, item.allow_photo)).correct


def test_single_choice() -> None:
    it = _item("single", {"choices": [1]}, ["A", "B", "C"])
    assert _g(it, {"choices": [1]}) is True
    assert _g(it, {"choices": [0]}) is False
    with pytest.raises(ItemError):
        _g(it, {"choices": [0, 1]})
    with pytest.raises(ItemError):
        _g(it, {"choices": [3]})


def test_multiple_choice_is_all_or_nothing_and_order_free() -> None:
    it = _item("multiple", {"choices": [2, 0]}, ["A", "B", "C", "D"])
    assert it.key == {"choices": [0, 2]}
    assert _g(it, {"choices": [2, 0]}) is True
    assert _g(it, {"choices": [0]}) is False
    assert _g(it, {"choices": [0, 1, 2]}) is False


def test_true_false_wants_a_real_boolean() -> None:
    it = _item("truefalse", {"value": False})
    assert _g(it, {"value": False}) is True
    with pytest.raises(ItemError):
        _g(it, {"value": "false"})


def test_fill_in_accepts_any_listed_answer_normalised() -> None:
    it = _item("fill", {"blanks": [["北京", "Beijing"], ["H2O"]]})
    assert _g(it, {"blanks": ["ＢＥＩＪＩＮＧ ", "ｈ２ｏ"]}) is True
    assert _g(it, {"blanks": ["北 京", "H2O"]}) is True
    assert _g(it, {"blanks": ["上海", "H2O"]}) is False
    with pytest.raises(ItemError):
        _g(it, {"blanks": ["北京"]})  # one blank missing


def test_numeric_tolerance_and_text_entry() -> None:
    it = _item("numeric", {"value": 3.14, "tolerance": 0.01})
    assert _g(it, {"number": 3.149}) is True
    assert _g(it, {"number": 3.16}) is False
    assert _g(it, {"text": "３．１４"}) is True
    exact = _item("numeric", {"value": 0.3})
    assert _g(exact, {"number": 0.1 + 0.2}) is True


def test_short_answers_wait_for_the_teacher() -> None:
    it = validate_item(ItemSpec("short", "说说看", {"reference": "..."}, allow_photo=True))
    assert _g(it, {"text": "我的答案"}) is None
    with pytest.raises(ItemError):
        _g(it, {"text": "  "})


@pytest.mark.parametrize("spec,msg", [
    (ItemSpec("single", "q", {"choices": [0, 1]}, ["a", "b"]), "exactly one"),
    (ItemSpec("single", "q", {"choices": [5]}, ["a", "b"]), "name one of the options"),
    (ItemSpec("single", "q", {"choices": [0]}, ["a"]), "2 to"),
    (ItemSpec("single", "q", {"choices": [0]}, ["a", "Ａ"]), "same"),
    (ItemSpec("fill", "q", {"blanks": [[" "]]}), "no accepted answer"),
    (ItemSpec("numeric", "q", {"value": "3"}), "numeric answer"),
    (ItemSpec("truefalse", "q", {"value": 1}), "true or false"),
    (ItemSpec("essay", "q", {}), "unknown question type"),
    (ItemSpec("short", " ", {}), "empty"),
])
def test_bad_items_are_refused_with_a_reason(spec: ItemSpec, msg: str) -> None:
    with pytest.raises(ItemError, match=msg):
        validate_item(spec)
