"""Scorers: ``scorer(prediction, gold) -> float`` in [0, 1].

Every scorer takes the agent's answer text and the gold answer text and
never raises on odd input: an answer it cannot read scores 0.

>>> numeric_match("So the total is $1,234.00.", "1234")
1.0
>>> choice_match("The answer is (B).", "B")
1.0
>>> round(f1_score("the red barn", "red barn and silo"), 3)
0.667
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

__all__ = [
    "choice_match",
    "exact_match",
    "extract_choice",
    "extract_number",
    "f1_score",
    "normalize_text",
    "numeric_match",
]

# A number: optional sign, optional currency, then a fraction, a number with
# comma thousands groups, or a plain number; an optional decimal part.
# A minus sign counts only when it does not follow a word character or ")",
# so "5-3" reads as 5 and 3, not 5 and -3.
_NUMBER = re.compile(
    r"(?P<sign>(?<![\w)])[-\u2212])?(?:[$\u20ac\u00a3]\s?)?"
    r"(?:(?P<num>\d+)/(?P<den>\d+)(?![\d/])"
    r"|(?P<int>\d{1,3}(?:,\d{3})+|\d+|(?=\.\d))(?P<dec>\.\d+)?)"
)
_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(\d+)\s*\}")
_BOXED = re.compile(r"\\boxed\s*\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")
# Explicit answer markers: "The answer is", "Answer:", "answer =", "## answer\n".
_MARKER = re.compile(r"\banswer\b\s*(?:\*\*)?\s*(?:is\b|was\b|:|=|\n)", re.IGNORECASE)


def _numbers(text: str) -> list[float]:
    out: list[float] = []
    for m in _NUMBER.finditer(text):
        if m.group("num") is not None:
            den = int(m.group("den"))
            if den == 0:
                continue
            value = int(m.group("num")) / den
        else:
            whole = (m.group("int") or "0").replace(",", "")
            value = float(whole + (m.group("dec") or ""))
        out.append(-value if m.group("sign") else value)
    return out


def extract_number(text: str) -> float | None:
    """Read the numeric answer out of free text, or ``None`` if there is none.

    In order of preference: the last ``\\boxed{...}``, the text after the last
    ``####``, the first number after the last explicit answer marker ("The
    answer is", "Answer:"), and otherwise the last number in the text.
    Understands ``$1,234.00``, ``-3``, ``0.5``, ``.5``, ``1/2``, ``\\frac{1}{2}``
    and ``50%``.
    Comma groups of exactly three digits are thousands separators; anything
    else with commas ("1, 2, 3" or "1,2,3") is a list, whose last item wins.

    >>> extract_number("Answer: -3")
    -3.0
    >>> extract_number(r"so $\\boxed{12}$")
    12.0
    """
    if not isinstance(text, str) or not text:
        return None
    text = _FRAC.sub(r"\1/\2", text)
    boxed = _BOXED.findall(text)
    if boxed:
        nums = _numbers(boxed[-1])
        if nums:
            return nums[-1]
    if "####" in text:
        nums = _numbers(text.rsplit("####", 1)[1])
        if nums:
            return nums[0]
    markers = list(_MARKER.finditer(text))
    if markers:
        nums = _numbers(text[markers[-1].end() :])
        if nums:
            return nums[0]
    nums = _numbers(text)
    return nums[-1] if nums else None


def numeric_match(prediction: str, gold: str) -> float:
    """1.0 when the number in ``prediction`` equals the gold number (12.0 == 12)."""
    got, want = extract_number(prediction), extract_number(gold)
    if got is None or want is None:
        return 0.0
    return 1.0 if math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9) else 0.0


_CHOICE_PATTERNS = (
    # the whole answer is a letter, maybe wrapped: "B", "(b)", "B.", "**B**"
    r"^\W*([{L}])\W*$",
    # an explicit marker: "The answer is (B)", "Answer: B", "correct option is B"
    r"(?:answer|option|choice)\s*(?:\*\*)?\s*(?:is|:|=)?\s*(?:\*\*)?\s*\(?([{U}])\b",
    # leading letter then punctuation: "B. Paris", "(B) Paris", "B) Paris", "B: Paris"
    r"^\W*\(?([{U}])[).:]",
    # a parenthesised letter anywhere: "... so (C)"
    r"\(([{U}])\)",
)


def extract_choice(text: str, letters: str = "ABCD") -> str | None:
    """Read a multiple-choice letter (upper case) out of free text, or ``None``.

    A lone lower-case letter counts ("b"), but inside a sentence only capitals
    do, since "a" is also an article. When the patterns fail, the last
    stand-alone capital among ``letters`` wins.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    text = text.strip()
    both = letters.upper() + letters.lower()
    for pattern in _CHOICE_PATTERNS:
        regex = pattern.replace("{L}", both).replace("{U}", letters.upper())
        flags = re.IGNORECASE if "answer|option" in pattern else 0
        found = re.findall(regex, text, flags)
        if found:
            letter = found[-1].upper()
            if letter in letters.upper():
                return letter
    loose = re.findall(rf"\b([{letters.upper()}])\b", text)
    return loose[-1] if loose else None


def choice_match(prediction: str, gold: str) -> float:
    """1.0 when the letter read from ``prediction`` is the gold letter."""
    want = extract_choice(gold, "ABCDEFGHIJ")
    if want is None:
        return 0.0
    letters = "ABCD" if want in "ABCD" else "ABCDEFGHIJ"
    return 1.0 if extract_choice(prediction, letters) == want else 0.0


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


_NUMERIC_TOKEN = re.compile(r"\d+(?:\.\d+)?|\.\d+")


def _norm_token(token: str) -> str:
    return str(float(token)) if _NUMERIC_TOKEN.fullmatch(token) else token


def normalize_text(text: str) -> str:
    """Lower-case, drop punctuation (keeping decimal points) and articles, squeeze spaces."""
    text = str(text).lower()
    # keep "3.5" and "1,000" as numbers, other punctuation becomes a space
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = re.sub(r"(?<=\d)\.(?=\d)", "\0", text)
    text = "".join(" " if ch in _PUNCT else ch for ch in text).replace("\0", ".")
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _tokens(text: str) -> list[str]:
    return [_norm_token(t) for t in normalize_text(text).split()]


def _f1_one(pred: list[str], gold: list[str]) -> float:
    if not pred and not gold:
        return 1.0
    if not pred or not gold:
        return 0.0
    gold_numbers = {t for t in gold if _is_number(t)}
    # DROP rule: when the gold answer has numbers, a prediction that shares
    # none of them gets no credit for its other words.
    if gold_numbers and not gold_numbers & {t for t in pred if _is_number(t)}:
        return 0.0
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _is_number(token: str) -> bool:
    return _NUMERIC_TOKEN.fullmatch(token) is not None


def f1_score(prediction: str, gold: str | Sequence[str], *, sep: str | None = "|") -> float:
    """DROP-style bag-of-tokens F1, the best over the gold answers.

    ``gold`` is one answer, a list of answers, or one string holding several
    answers separated by ``sep`` (``"|"`` as in ADAS's DROP files; pass
    ``sep=None`` to keep the string whole). Tokens are normalised: lower
    case, no punctuation or articles, numbers compared by value ("2.0" == "2").
    """
    if isinstance(gold, str):
        golds = gold.split(sep) if sep else [gold]
    else:
        golds = list(gold)
    pred = _tokens(prediction) if isinstance(prediction, str) else []
    golds = [g for g in golds if str(g).strip()] or [""]
    return max(_f1_one(pred, _tokens(g)) for g in golds)


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when both texts are equal after :func:`normalize_text` and number normalising."""
    if not isinstance(prediction, str):
        return 0.0
    return 1.0 if _tokens(prediction) == _tokens(gold) else 0.0
