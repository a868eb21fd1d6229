"""Scorers: number, letter and text extraction edge cases."""

from __future__ import annotations

import pytest

from metasearch.scoring import (
    choice_match,
    exact_match,
    extract_choice,
    extract_number,
    f1_score,
    normalize_text,
    numeric_match,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42.0),
        ("$1,234.00", 1234.0),
        ("It costs $1,234,567.", 1234567.0),
        (r"so the result is \boxed{12}.", 12.0),
        (r"$\boxed{-7}$ and later 99", -7.0),
        (r"\boxed{\frac{1}{2}} then 3", 0.5),
        (r"\boxed{x} then 3", 3.0),  # boxed without a number falls through to the text
        ("The answer is 12.", 12.0),
        ("Answer: -3", -3.0),
        ("answer = 8", 8.0),
        ("## answer\n\n42", 42.0),
        ("**Answer:** 17 apples", 17.0),
        ("The answer is 12. Because 3*4=12 and 12+1=13", 12.0),
        ("To answer this, 3+4=7 and 7*2=14", 14.0),  # "to answer" is not a marker
        ("12.0", 12.0),
        ("0.5", 0.5),
        (".5 of them", 0.5),
        ("1/2", 0.5),
        ("x = -3", -3.0),
        ("\u22127 degrees", -7.0),  # unicode minus
        ("5-3=2", 2.0),  # subtraction, not a negative number
        ("10 - 4", 4.0),
        ("50%", 50.0),
        ("1, 2, 3", 3.0),  # a list: last item
        ("1,2,3", 3.0),  # not thousands groups
        ("12,34", 34.0),
        ("First 3 then 5 then 8", 8.0),  # last number when ambiguous
        ("Solution...\n#### 2,125", 2125.0),
        ("It is 12.", 12.0),  # sentence full stop is not a decimal point
        ("-$5", -5.0),
        ("costs $-5", -5.0),
    ],
)
def test_extract_number(text: str, expected: float) -> None:
    assert extract_number(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "no number here", "   ", "1/0"])
def test_extract_number_none(text: str) -> None:
    assert extract_number(text) is None


def test_extract_number_non_string() -> None:
    assert extract_number(None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("prediction", "gold", "score"),
    [
        ("12", "12", 1.0),
        ("12.0", "12", 1.0),
        ("The total is $1,234.", "1234", 1.0),
        ("1234", "1,234", 1.0),
        ("-3", "-3", 1.0),
        ("3", "-3", 0.0),
        ("0.5", "1/2", 1.0),
        ("13", "12", 0.0),
        ("", "12", 0.0),
        ("twelve", "12", 0.0),
        ("12", "no gold number", 0.0),
    ],
)
def test_numeric_match(prediction: str, gold: str, score: float) -> None:
    assert numeric_match(prediction, gold) == score


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("B", "B"),
        ("b", "B"),
        ("(B)", "B"),
        ("B.", "B"),
        ("**C**", "C"),
        ("B) Paris", "B"),
        ("D: none of the above", "D"),
        ("The answer is B", "B"),
        ("the answer is (c).", "C"),
        ("Answer: d", "D"),
        ("The correct option is A", "A"),
        ("I pick (C) because it is a fact", "C"),
        ("A cat sat down. So D", "D"),
    ],
)
def test_extract_choice(text: str, letter: str) -> None:
    assert extract_choice(text) == letter


@pytest.mark.parametrize("text", ["", "I think it is a dog", "E", "none"])
def test_extract_choice_none(text: str) -> None:
    assert extract_choice(text) is None


def test_choice_match() -> None:
    assert choice_match("The answer is (B).", "B") == 1.0
    assert choice_match("b", "B") == 1.0
    assert choice_match("A", "B") == 0.0
    assert choice_match("", "B") == 0.0


def test_normalize_text() -> None:
    assert normalize_text("The  Cat, a DOG!") == "cat dog"
    assert normalize_text("In 1,000 B.C.") == "in 1000 b c"
    assert normalize_text("3.5 apples") == "3.5 apples"


def test_f1_basic() -> None:
    assert f1_score("the red barn", "red barn and silo") == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert f1_score("Red barn.", "the red barn") == 1.0
    assert f1_score("blue", "red") == 0.0


def test_f1_numbers_and_alternatives() -> None:
    assert f1_score("4", "four|4") == 1.0
    assert f1_score("4.0", "4") == 1.0
    assert f1_score("1,000", "1000") == 1.0
    # gold has a number and prediction does not share it: no credit for "yards"
    assert f1_score("4 yards", "3 yards") == 0.0
    assert (
        f1_score("Pakistani and Filipino", "Pakistanis and Filipinos|Pakistani and Filipino") == 1.0
    )
    assert f1_score("x", ["y", "x"]) == 1.0
    assert f1_score("a|b", "a|b", sep=None) == 1.0


def test_f1_empty() -> None:
    assert f1_score("", "something") == 0.0
    assert f1_score("something", "") == 0.0
    assert f1_score(None, "x") == 0.0  # type: ignore[arg-type]


def test_exact_match() -> None:
    assert exact_match("The Paris!", "paris") == 1.0
    assert exact_match("12.0", "12") == 1.0
    assert exact_match("Paris France", "Paris") == 0.0
    assert exact_match(None, "x") == 0.0  # type: ignore[arg-type]


@pytest.mark.parametrize("scorer", [numeric_match, choice_match, f1_score, exact_match])
def test_scores_in_unit_interval(scorer) -> None:
    for pred, gold in [("12", "12"), ("x", "y"), ("", ""), ("B", "B"), ("1 2 3", "2 3 4")]:
        assert 0.0 <= scorer(pred, gold) <= 1.0
