"""Deterministic validation/test splits.

The pool is shuffled once with ``numpy.random.default_rng(seed)``; the
validation split is the first ``n_val`` tasks of that order and the test
split the next ``n_test``. The same pool and seed give the same splits in
every process and on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from metasearch.errors import ConfigError
from metasearch.suites.registry import Suite, get_suite
from metasearch.suites.task import Task

__all__ = ["Splits", "load_split", "split_tasks"]

SplitName = Literal["validation", "test"]


@dataclass(frozen=True)
class Splits:
    validation: list[Task]
    test: list[Task]


def split_tasks(
    tasks: Sequence[Task], *, seed: int = 0, n_val: int = 128, n_test: int | None = None
) -> Splits:
    """Shuffle ``tasks`` once by ``seed`` and cut validation then test.

    ``n_test=None`` takes every task left after validation. Asking for more
    tasks than the pool holds raises ConfigError.
    """
    if n_val < 0 or (n_test is not None and n_test < 0):
        raise ConfigError(f"Split sizes must be >= 0, got n_val={n_val}, n_test={n_test}.")
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        raise ConfigError("Task ids in the pool are not unique, so splits would be ambiguous.")
    wanted = n_val + (n_test or 0)
    if wanted > len(tasks) or (n_test is None and n_val >= len(tasks)):
        raise ConfigError(
            f"The task pool has {len(tasks)} tasks, too few for n_val={n_val} and "
            f"n_test={'all the rest' if n_test is None else n_test}. Lower suite.n_val/n_test "
            "in the config (`metasearch eval --n-val`), or use a larger data file."
        )
    order = np.random.default_rng(seed).permutation(len(tasks))
    shuffled = [tasks[i] for i in order]
    end = len(tasks) if n_test is None else n_val + n_test
    return Splits(validation=shuffled[:n_val], test=shuffled[n_val:end])


def load_split(
    suite: str | Suite,
    split: SplitName,
    *,
    data_path: str | Path | None = None,
    seed: int = 0,
    n_val: int = 128,
    n_test: int | None = None,
) -> list[Task]:
    """Load ``suite`` and return its ``"validation"`` or ``"test"`` split."""
    if split not in ("validation", "test"):
        raise ConfigError(f"Unknown split {split!r}; use 'validation' or 'test'.")
    resolved = get_suite(suite) if isinstance(suite, str) else suite
    splits = split_tasks(resolved.load(data_path), seed=seed, n_val=n_val, n_test=n_test)
    return splits.validation if split == "validation" else splits.test
