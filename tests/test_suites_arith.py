"""The generated arith suite: deterministic, correct answers, difficulty knob."""

from __future__ import annotations

import ast
import hashlib
import json
import operator
import re
import subprocess
import sys
from fractions import Fraction

import pytest

from metasearch.errors import ConfigError
from metasearch.suites.arith import LEVELS, generate_arith

_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.truediv,
}


def _evaluate(expression: str) -> Fraction:
    """Evaluate with exact fractions; '//' is checked to be an exact division."""

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant):
            return Fraction(node.value)
        assert isinstance(node, ast.BinOp) and type(node.op) in _OPS
        return _OPS[type(node.op)](walk(node.left), walk(node.right))

    return walk(ast.parse(expression, mode="eval").body)


def _recompute(steps: list) -> Fraction:
    value = Fraction(steps[0][1])
    for op, n in steps[1:]:
        value = {"+": value + n, "-": value - n, "*": value * n, "/": value / n}[op]
        assert value.denominator == 1, "every division must be exact"
    return value


@pytest.mark.parametrize("difficulty", sorted(LEVELS))
def test_answers_are_correct(difficulty: int) -> None:
    level = LEVELS[difficulty]
    for task in generate_arith(n=300, difficulty=difficulty, seed=11):
        steps = task.meta["steps"]
        assert _recompute(steps) == int(task.answer)
        assert _evaluate(task.meta["expression"]) == int(task.answer)
        assert level.min_steps <= len(steps) - 1 <= level.max_steps
        assert {op for op, _ in steps[1:]} <= set(level.ops)
        # every number of the story is written in the question, in order
        numbers = [int(x) for x in re.findall(r"\d+", task.question)]
        it = iter(numbers)
        assert all(any(abs(n) == x for x in it) for _, n in steps), task.question
        if not level.negative:
            running = Fraction(steps[0][1])
            for op, n in steps[1:]:
                running = {"+": running + n, "-": running - n, "*": running * n, "/": running / n}[
                    op
                ]
                assert running > 0


def test_only_level_5_goes_negative() -> None:
    assert any(int(t.answer) < 0 for t in generate_arith(n=1000, difficulty=5))
    for d in (1, 2, 3, 4):
        assert all(int(t.answer) > 0 for t in generate_arith(n=500, difficulty=d))


def test_deterministic_and_seeded() -> None:
    a = generate_arith(n=50, difficulty=3, seed=4)
    b = generate_arith(n=50, difficulty=3, seed=4)
    c = generate_arith(n=50, difficulty=3, seed=5)
    assert a == b
    assert [t.question for t in a] != [t.question for t in c]
    # a longer pool starts with the same problems
    assert generate_arith(n=80, difficulty=3, seed=4)[:50] == a


def test_stable_across_processes() -> None:
    code = (
        "import hashlib, json; from metasearch.suites.arith import generate_arith; "
        "ts = generate_arith(n=200, difficulty=2, seed=0); "
        "print(hashlib.sha256(json.dumps([(t.id, t.question, t.answer) for t in ts]).encode()).hexdigest())"
    )
    here = generate_arith(n=200, difficulty=2, seed=0)
    digest = hashlib.sha256(
        json.dumps([(t.id, t.question, t.answer) for t in here]).encode()
    ).hexdigest()
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    )
    assert out.stdout.strip() == digest


def test_unique_ids_and_questions() -> None:
    tasks = generate_arith(n=1000, difficulty=2)
    assert len({t.id for t in tasks}) == 1000
    assert len({t.question for t in tasks}) == 1000


def test_varied_stories() -> None:
    tasks = generate_arith(n=400, difficulty=2)
    openings = {t.question.split(".")[0].split(" ")[-1] for t in tasks}
    assert len(openings) > 10
    assert {op for t in tasks for op, _ in t.meta["steps"][1:]} == {"+", "-", "*", "/"}


def test_bad_settings() -> None:
    with pytest.raises(ConfigError, match="difficulty"):
        generate_arith(difficulty=9)
    with pytest.raises(ConfigError, match="n >= 1"):
        generate_arith(n=0)
