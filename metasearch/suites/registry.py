"""The task suites: what each one is, how it scores and where its data comes from.

>>> suite = get_suite("arith")
>>> len(suite.load()), suite.answer_hint
(1000, 'an integer')
>>> get_suite("arith", difficulty=4).options["difficulty"]
4
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metasearch.errors import ConfigError
from metasearch.scoring import choice_match, f1_score, numeric_match
from metasearch.suites import sources
from metasearch.suites.arith import generate_arith
from metasearch.suites.task import Task

__all__ = ["Suite", "get_suite", "list_suites"]

Loader = Callable[[Path | None, Mapping[str, Any]], list[Task]]


@dataclass(frozen=True)
class Suite:
    """One task domain.

    ``description`` is the task overview a meta agent reads; ``answer_hint``
    describes the answer field for ``LLMAgentBase``; ``scorer(prediction,
    gold)`` returns a score in [0, 1]; ``source`` says where data comes from.
    ``options`` are the suite's settings (e.g. arith's ``difficulty``).
    """

    name: str
    description: str
    answer_hint: str
    scorer: Callable[[str, str], float]
    source: str
    metric: str = "accuracy"
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    loader: Loader | None = field(default=None, repr=False, compare=False)

    def load(self, data_path: str | Path | None = None) -> list[Task]:
        """All tasks of the suite, in a fixed order (see ``source`` for where from)."""
        if self.loader is None:
            raise ConfigError(f"Suite {self.name!r} has no loader.")
        path = Path(data_path).expanduser() if data_path is not None else None
        return self.loader(path, self.options)

    def with_options(self, **options: Any) -> Suite:
        """A copy with some options changed; unknown option names raise ConfigError."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise ConfigError(
                f"Suite {self.name!r} has no option {', '.join(map(repr, unknown))}; its options "
                f"are: {known}. Remove the option from the [suite] section or fix its name."
            )
        merged = {**self.options, **options}
        return dataclasses.replace(self, options=merged)


_OVERVIEW = (
    "Your aim is to design an agent that performs well on {what}\n\n"
    "## An example question:\n\n{example}\n\n"
    "The agent receives the question as `taskInfo`; its answer is scored {how}."
)

_ARITH_EXAMPLE = (
    "Maya has $45 in a wallet. She spends $12 on a new book. Her savings then grow to 3 "
    "times as much. How many dollars does Maya have now?\n\n**Answer (not given to the agent)**: 99"
)
_GSM_EXAMPLE = (
    "A shop sells pencils in packs of 12. A teacher buys 4 packs and gives away 15 pencils. "
    "How many pencils does the teacher have left?\n\n**Answer (not given to the agent)**: 33"
)
_DROP_EXAMPLE = (
    "Passage: In 1998 the club won 12 games; in 1999 it won 7 more than the year before.\n"
    "Question: How many games did the club win in 1999?\n\n"
    "**Answer (not given to the agent)**: 19"
)
_MMLU_EXAMPLE = (
    "Which gas makes up most of Earth's atmosphere?\n\n(A) Oxygen\n(B) Nitrogen\n"
    "(C) Carbon dioxide\n(D) Argon\n\n**Answer (not given to the agent)**: B"
)


def _arith(path: Path | None, options: Mapping[str, Any]) -> list[Task]:
    if path is not None:
        raise ConfigError(
            "The arith suite generates its problems and takes no data file; remove --data, or "
            "choose a file-based suite (gsm8k, mgsm, drop, mmlu)."
        )
    return generate_arith(
        n=int(options["n"]), difficulty=int(options["difficulty"]), seed=int(options["seed"])
    )


_SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite(
            name="arith",
            description=_OVERVIEW.format(
                what="generated multi-step arithmetic word problems. Each problem tells a short "
                "story in which one quantity changes through several steps of addition, "
                "subtraction, multiplication or exact division, and asks for the final amount, "
                "always an integer. Careful step-by-step calculation matters more than knowledge.",
                example=_ARITH_EXAMPLE,
                how="by exact match of the integer",
            ),
            answer_hint="an integer",
            scorer=numeric_match,
            source="generated offline from a seed (options: difficulty 1-5, n, seed); no data file",
            options={"difficulty": 1, "n": 1000, "seed": 0},
            loader=_arith,
        ),
        Suite(
            name="gsm8k",
            description=_OVERVIEW.format(
                what="GSM8K, grade-school math word problems that take two to eight steps of "
                "basic arithmetic to solve; the answer is a single number.",
                example=_GSM_EXAMPLE,
                how="by exact match of the number",
            ),
            answer_hint="an integer",
            scorer=numeric_match,
            source=sources.GSM8K_SOURCE,
            loader=sources.load_gsm8k,
        ),
        Suite(
            name="mgsm",
            description=_OVERVIEW.format(
                what="MGSM (Multilingual Grade School Math), grade-school math word problems "
                "that take several steps of arithmetic; the answer is a single number.",
                example=_GSM_EXAMPLE,
                how="by exact match of the number",
            ),
            answer_hint="an integer",
            scorer=numeric_match,
            source=sources.MGSM_SOURCE,
            loader=sources.load_mgsm,
        ),
        Suite(
            name="drop",
            description=_OVERVIEW.format(
                what="DROP (Discrete Reasoning Over Paragraphs), reading comprehension that needs "
                "counting, sorting, addition or subtraction over a passage. Answers are numbers, "
                "dates or short spans of text from the passage.",
                example=_DROP_EXAMPLE,
                how="by token-level F1 against the gold answers",
            ),
            answer_hint="a short span of text copied or computed from the passage",
            scorer=f1_score,
            source=sources.DROP_SOURCE,
            metric="F1",
            loader=sources.load_drop,
        ),
        Suite(
            name="mmlu",
            description=_OVERVIEW.format(
                what="MMLU, multiple-choice questions on 57 subjects from elementary mathematics "
                "to law and medicine. Each question has four options lettered A to D.",
                example=_MMLU_EXAMPLE,
                how="by exact match of the letter",
            ),
            answer_hint="a single letter A-D",
            scorer=choice_match,
            source=sources.MMLU_SOURCE,
            loader=sources.load_mmlu,
        ),
    )
}


def list_suites() -> list[Suite]:
    """Every built-in suite, in name order."""
    return [_SUITES[name] for name in sorted(_SUITES)]


def get_suite(name: str, **options: Any) -> Suite:
    """The suite called ``name`` with ``options`` applied; ConfigError names the known suites."""
    key = str(name).strip().lower()
    if key not in _SUITES:
        raise ConfigError(
            f"Unknown task suite {name!r}. Known suites: {', '.join(sorted(_SUITES))}. "
            "Fix the suite name in the config or on the command line."
        )
    # a fresh copy each time, so no caller can change the registry's suites
    return _SUITES[key].with_options(**options)
