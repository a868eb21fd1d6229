"""Where parameter values come from: one small protocol, a seeded-random and an Optuna adapter.

:meth:`Space.sample <metasearch.search.spaces.space.Space.sample>` calls a
:class:`Draw` once per *active* parameter, by its dotted name. The method
names and arguments mirror Optuna's ``Trial.suggest_int / suggest_float /
suggest_categorical``, so an Optuna trial drives a space through a thin
adapter and its conditional parameters are simply never suggested when
inactive (define-by-run)::

    space.sample(RandomDraw(seeded_random(0, "g001-00")))   # the random strategy
    space.sample(OptunaDraw(study.ask()))                     # an Optuna trial
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any, Protocol

from metasearch.search.spaces.format import Scalar

__all__ = ["Draw", "OptunaDraw", "RandomDraw", "seeded_random"]


class Draw(Protocol):
    """A source of values for named parameters (Optuna's ``suggest_*``, by another name)."""

    def int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        ...

    def float(self, name: str, low: float, high: float, *, step: float | None = None,
              log: bool = False) -> float:
        ...

    def categorical(self, name: str, choices: Sequence[Scalar]) -> Scalar:
        ...


def seeded_random(seed: int, key: str) -> random.Random:
    """A generator that depends only on (seed, key): the same candidate id, the same draws.

    A string seed is hashed with SHA-512 by :class:`random.Random`, so this does
    not depend on ``PYTHONHASHSEED`` or on the process.
    """
    return random.Random(f"{seed}:{key}")


class RandomDraw:
    """Uniform draws from a :class:`random.Random` (log scales uniform in the log)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        if log:
            # as Optuna's RandomSampler: uniform over [log(low - 0.5), log(high + 0.5)], rounded
            x = math.exp(self.rng.uniform(math.log(low - 0.5), math.log(high + 0.5)))
            return min(high, max(low, round(x)))
        return low + step * self.rng.randrange((high - low) // step + 1)

    def float(self, name: str, low: float, high: float, *, step: float | None = None,
              log: bool = False) -> float:
        if log:
            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        if step is not None:
            return low + step * self.rng.randrange(int(round((high - low) / step)) + 1)
        return self.rng.uniform(low, high)

    def categorical(self, name: str, choices: Sequence[Scalar]) -> Scalar:
        return choices[self.rng.randrange(len(choices))]


class OptunaDraw:
    """Suggestions from an ``optuna.Trial`` (duck-typed: this module never imports optuna)."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return int(self.trial.suggest_int(name, low, high, step=step, log=log))

    def float(self, name: str, low: float, high: float, *, step: float | None = None,
              log: bool = False) -> float:
        return float(self.trial.suggest_float(name, low, high, step=step, log=log))

    def categorical(self, name: str, choices: Sequence[Scalar]) -> Scalar:
        return self.trial.suggest_categorical(name, list(choices))  # type: ignore[no-any-return]
