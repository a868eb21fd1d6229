"""Generated multi-step arithmetic word problems with exact integer answers.

A problem is a short story about one quantity (money in a wallet, passengers
on a bus, cookies on a tray...) that changes step by step; each step is one
+, -, x or exact division. The generator is deterministic for a seed, and
``difficulty`` (1-5) sets the number of steps, the size of the numbers,
the operations and whether results may go negative.

>>> tasks = generate_arith(n=2, difficulty=2, seed=0)
>>> [t.id for t in tasks]
['arith-d2-s0-0000', 'arith-d2-s0-0001']
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from metasearch.errors import ConfigError
from metasearch.suites.task import Task

__all__ = ["LEVELS", "Level", "generate_arith"]


@dataclass(frozen=True)
class Level:
    min_steps: int
    max_steps: int
    max_number: int  # operands of + and - and the starting amount
    max_factor: int  # multipliers and divisors
    ops: str
    negative: bool  # may the running total go below zero


LEVELS: dict[int, Level] = {
    1: Level(1, 2, 20, 5, "+-", False),
    2: Level(2, 3, 99, 9, "+-*/", False),
    3: Level(3, 4, 99, 9, "+-*/", False),
    4: Level(4, 5, 999, 12, "+-*/", False),
    5: Level(5, 6, 999, 12, "+-*/", True),
}


@dataclass(frozen=True)
class Theme:
    """Sentences for one story. ``{n}`` is the step's number, ``{name}`` and
    ``{they}`` the character, ``{x}`` the amount so far where a step needs it."""

    start: tuple[str, ...]
    add: tuple[str, ...]
    sub: tuple[str, ...]
    ask: tuple[str, ...]
    mul: tuple[str, ...] = ()
    div: tuple[str, ...] = ()
    signed: bool = False  # the quantity can meaningfully go negative


THEMES: tuple[Theme, ...] = (
    Theme(  # shopping
        start=(
            "{name} has ${n} in a wallet.",
            "{name} starts the day with ${n} of spending money.",
        ),
        add=(
            "{They} earns ${n} helping a neighbour.",
            "A friend pays back ${n} that {they} lent last week.",
            "{They} finds ${n} in an old coat.",
        ),
        sub=(
            "{They} spends ${n} on a new book.",
            "{They} buys lunch for ${n}.",
            "Groceries cost {them} ${n}.",
        ),
        mul=(
            "{They} sells some old games, and the money {they} holds grows to {n} times as much.",
        ),
        div=("{They} splits the money equally into {n} envelopes and keeps only one envelope.",),
        ask=(
            "How many dollars does {name} have now?",
            "How much money, in dollars, does {name} have left?",
        ),
    ),
    Theme(  # travel
        start=(
            "A train leaves the station with {n} passengers.",
            "A tour bus sets off carrying {n} people.",
        ),
        add=(
            "At the next stop, {n} more people get on.",
            "{n} travellers board at the airport stop.",
            "A school group of {n} joins at the park.",
        ),
        sub=(
            "{n} passengers get off at the museum.",
            "At the harbour, {n} people leave.",
            "{n} riders step off near the market.",
        ),
        mul=(
            "At the stadium, so many fans board that the number of passengers becomes {n} times what it was.",
        ),
        div=(
            "Everyone is split equally among {n} carriages; from now on, count only one carriage.",
        ),
        ask=("How many passengers are there now?", "How many people are on board at the end?"),
    ),
    Theme(  # recipes
        start=(
            "A baker makes {n} cookies in the morning.",
            "{name} bakes {n} muffins for a school fair.",
        ),
        add=(
            "Then {n} more come out of the oven.",
            "A helper brings {n} extra from home.",
            "Another tray of {n} is finished.",
        ),
        sub=(
            "{n} of them are sold to early customers.",
            "{n} get eaten by the family.",
            "{n} are burnt and thrown away.",
        ),
        mul=("A big order arrives, so the batch is scaled up to {n} times as many.",),
        div=("They are packed equally into {n} boxes, and only one box goes on the shelf.",),
        ask=("How many are there now?", "How many are there at the end?"),
    ),
    Theme(  # savings
        start=("{name} has {n} coins in a piggy bank.", "{name} has saved ${n} so far this year."),
        add=(
            "For a birthday, {they} gets {n} more.",
            "{They} adds {n} from chores.",
            "{They} puts in another {n}.",
        ),
        sub=(
            "{They} takes out {n} to buy a gift.",
            "{They} uses {n} for a movie ticket.",
            "{They} spends {n} at the fair.",
        ),
        mul=("A matching scheme multiplies the savings, making them {n} times as large.",),
        div=("{They} divides the savings equally into {n} jars and keeps only one jar.",),
        ask=("How much does {name} have saved now?", "How much is in the savings at the end?"),
    ),
    Theme(  # library
        start=("A school library has {n} books on one shelf.", "A reading club owns {n} novels."),
        add=(
            "A donation brings {n} more books.",
            "{n} new books are bought.",
            "{n} books come back from a book fair.",
        ),
        sub=(
            "{n} books are lent out.",
            "{n} worn books are recycled.",
            "{n} books are given away.",
        ),
        mul=("The collection is merged with others until it holds {n} times as many books.",),
        div=(
            "The books are spread equally over {n} classrooms; from now on, count one classroom.",
        ),
        ask=("How many books are there now?", "How many books are counted at the end?"),
    ),
    Theme(  # farm
        start=("A farm collects {n} eggs on Monday.", "An orchard crew picks {n} apples."),
        add=(
            "The next day brings {n} more.",
            "Another {n} are collected.",
            "{n} more are found later.",
        ),
        sub=(
            "{n} are given to the neighbours.",
            "{n} turn out to be bad and are thrown away.",
            "{n} are sold at the gate.",
        ),
        mul=("By the end of the week the stock is {n} times as large.",),
        div=("Everything is shared equally among {n} families; count one family's share.",),
        ask=("How many are there now?", "How many does that leave?"),
    ),
    Theme(  # game points
        start=(
            "{name} has {n} points in a video game.",
            "{name}'s team starts a quiz with {n} points.",
        ),
        add=(
            "{They} wins {n} points in the next round.",
            "A bonus adds {n} points.",
            "{They} scores {n} points on a hard question.",
        ),
        sub=(
            "A penalty takes away {n} points.",
            "{They} loses {n} points on a wrong answer.",
            "A missed turn costs {n} points.",
        ),
        mul=("A power-up multiplies the score by {n}.",),
        div=("The score is split equally among {n} players; take one player's share.",),
        ask=("What is the score now?", "How many points are there at the end?"),
        signed=True,
    ),
    Theme(  # bank balance
        start=("{name}'s bank account holds ${n}.", "{name} opens a bank account with ${n}."),
        add=(
            "{They} deposits ${n}.",
            "A salary payment of ${n} comes in.",
            "{They} receives a refund of ${n}.",
        ),
        sub=(
            "{They} pays a bill of ${n}.",
            "A withdrawal of ${n} is made.",
            "Rent of ${n} is paid.",
        ),
        mul=("An odd bank error multiplies the balance by {n}.",),
        div=("{They} moves the balance equally into {n} accounts and keeps watching only one.",),
        ask=(
            "What is the balance now, in dollars? (A negative balance means the account is overdrawn.)",
        ),
        signed=True,
    ),
    Theme(  # temperature: only + and -
        start=(
            "At dawn the temperature is {n} degrees.",
            "A thermometer on a mountain reads {n} degrees.",
        ),
        add=("By noon it rises by {n} degrees.", "The sun warms it up {n} degrees."),
        sub=("In the evening it drops {n} degrees.", "A cold front lowers it by {n} degrees."),
        ask=(
            "What is the temperature now, in degrees?",
            "What does the thermometer read at the end?",
        ),
        signed=True,
    ),
)

NAMES = (
    ("Maya", "she"),
    ("Leo", "he"),
    ("Priya", "she"),
    ("Tom", "he"),
    ("Aisha", "she"),
    ("Diego", "he"),
    ("Mei", "she"),
    ("Kofi", "he"),
    ("Sara", "she"),
    ("Ivan", "he"),
)


def _fill(template: str, n: int, name: str, they: str) -> str:
    them = {"she": "her", "he": "him"}[they]
    return template.format(
        n=n,
        k=n - 1,
        name=name,
        they=they,
        They=they.capitalize(),
        them=them,
        Them=them.capitalize(),
    )


def _choose_op(rng: random.Random, level: Level, value: int, theme: Theme) -> str:
    ops = [o for o in level.ops if o in "+-" or (theme.mul if o == "*" else theme.div)]
    if abs(value) > level.max_number * level.max_factor:
        ops = [o for o in ops if o != "*"] or ops
    if not (level.negative and theme.signed) and value <= 1:
        ops = [o for o in ops if o != "-"]
    if "/" in ops and not [d for d in range(2, level.max_factor + 1) if value % d == 0 and value]:
        ops.remove("/")
    return rng.choice(ops)


def _operand(rng: random.Random, level: Level, op: str, value: int, theme: Theme) -> int:
    if op == "+":
        return rng.randint(2, level.max_number)
    if op == "-":
        high = (
            level.max_number
            if (level.negative and theme.signed)
            else min(level.max_number, value - 1)
        )
        return rng.randint(min(2, high), max(1, high))
    if op == "*":
        return rng.randint(2, level.max_factor)
    divisors = [d for d in range(2, level.max_factor + 1) if value % d == 0]
    return rng.choice(divisors)


def _apply(op: str, value: int, n: int) -> int:
    if op == "+":
        return value + n
    if op == "-":
        return value - n
    if op == "*":
        return value * n
    return value // n


def _problem(rng: random.Random, level: Level) -> tuple[str, int, list[tuple[str, int]]]:
    theme = rng.choice(THEMES)
    name, they = rng.choice(NAMES)
    value = rng.randint(2 if level.max_number < 50 else 10, level.max_number)
    steps: list[tuple[str, int]] = [("start", value)]
    sentences = [_fill(rng.choice(theme.start), value, name, they)]
    used: set[str] = set()
    for _ in range(rng.randint(level.min_steps, level.max_steps)):
        op = _choose_op(rng, level, value, theme)
        n = _operand(rng, level, op, value, theme)
        templates = {"+": theme.add, "-": theme.sub, "*": theme.mul, "/": theme.div}[op]
        template = rng.choice([t for t in templates if t not in used] or list(templates))
        used.add(template)
        sentences.append(_fill(template, n, name, they))
        value = _apply(op, value, n)
        steps.append((op, n))
    sentences.append(_fill(rng.choice(theme.ask), 0, name, they))
    return " ".join(sentences), value, steps


def _expression(steps: list[tuple[str, int]]) -> str:
    expr = str(steps[0][1])
    for op, n in steps[1:]:
        expr = f"({expr} {'//' if op == '/' else op} {n})"
    return expr


def generate_arith(*, n: int = 1000, difficulty: int = 2, seed: int = 0) -> list[Task]:
    """``n`` problems at ``difficulty`` 1-5, the same for the same arguments.

    Each task's ``meta`` holds ``steps`` (``[("start", 45), ("+", 12), ...]``),
    the equivalent ``expression`` and the ``difficulty``.
    """
    if difficulty not in LEVELS:
        raise ConfigError(
            f"arith difficulty must be one of {sorted(LEVELS)}, got {difficulty!r}. "
            "1 is one or two small additions/subtractions; 5 is five or six steps "
            "with three-digit numbers and possibly negative results."
        )
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"arith needs n >= 1 problems, got {n!r}.")
    level = LEVELS[difficulty]
    rng = random.Random(f"metasearch-arith-{difficulty}-{seed}")
    tasks = []
    seen: set[str] = set()
    while len(tasks) < n:
        question, answer, steps = _problem(rng, level)
        if question in seen:
            continue
        seen.add(question)
        tasks.append(
            Task(
                id=f"arith-d{difficulty}-s{seed}-{len(tasks):04d}",
                question=question,
                answer=str(answer),
                meta={"steps": steps, "expression": _expression(steps), "difficulty": difficulty},
            )
        )
    return tasks
