"""Bootstrap statistics over per-task scores, and ADAS's fitness string.

Scores are fractions (a task scores in [0, 1]); :class:`Fitness` keeps them
as fractions and only :func:`adas_fitness_string` turns them into percents.

>>> f = bootstrap_ci([1, 0, 1, 1], n_resamples=2000)
>>> f.mean, f.n
(0.75, 4)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from metasearch.errors import DataError

__all__ = [
    "Fitness",
    "PairedDiff",
    "adas_fitness_string",
    "bootstrap_ci",
    "paired_bootstrap",
    "paired_by_task",
    "parse_adas_fitness",
]

# Resample in chunks of at most this many drawn indices (8 bytes each), so
# 100k resamples of 1000 tasks uses ~32 MB at a time instead of 800 MB.
_CHUNK_ELEMENTS = 1 << 22
# Up to this many distinct score values, draw multinomial counts per value
# instead of indices: the same bootstrap distribution, much cheaper.
_MAX_CATEGORIES = 64


@dataclass(frozen=True)
class Fitness:
    """The mean score with a percentile-bootstrap confidence interval.

    ``median`` is the median of the bootstrap means, which is what ADAS
    reports. All values are fractions in the scores' units.
    """

    mean: float
    ci_low: float
    ci_high: float
    median: float
    n: int
    confidence: float = 0.95
    n_resamples: int = 10_000

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str | dict[str, Any]) -> Fitness:
        data = json.loads(text) if isinstance(text, str) else dict(text)
        return cls(**data)

    def __str__(self) -> str:
        return adas_fitness_string(self)


@dataclass(frozen=True)
class PairedDiff:
    """mean(a) - mean(b) over the same tasks, with a paired bootstrap CI.

    ``p_value`` is the share of bootstrap resamples whose difference is
    <= 0: a one-sided bootstrap p-value for "a is better than b".
    """

    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    confidence: float = 0.95
    n_resamples: int = 10_000

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str | dict[str, Any]) -> PairedDiff:
        data = json.loads(text) if isinstance(text, str) else dict(text)
        return cls(**data)

    def verdict(self, a: str = "A", b: str = "B") -> str:
        """What the interval says: "A better", "B better" or "no clear winner"."""
        return interval_verdict(self.ci_low, self.ci_high, a, b)


def interval_verdict(ci_low: float, ci_high: float, a: str = "A", b: str = "B") -> str:
    """The one reading of a CI of a − b that every table and command prints."""
    if ci_low > 0:
        return f"{a} better"
    return f"{b} better" if ci_high < 0 else "no clear winner"


def _as_scores(scores: Sequence[float] | np.ndarray, what: str = "scores") -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{what} is empty: a bootstrap needs at least one task score")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return arr


def _check(confidence: float, n_resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")


def bootstrap_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_resamples`` resamples (with replacement) of ``values``."""
    n = values.size
    out = np.empty(n_resamples, dtype=np.float64)
    uniq, counts = np.unique(values, return_counts=True)
    if uniq.size <= _MAX_CATEGORIES:
        # Resampling n items = multinomial counts over the distinct values.
        probs = counts / n
        rows = max(1, _CHUNK_ELEMENTS // uniq.size)
        for start in range(0, n_resamples, rows):
            stop = min(start + rows, n_resamples)
            draws = rng.multinomial(n, probs, size=stop - start)
            out[start:stop] = draws @ uniq / n
        return out
    rows = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_resamples, rows):
        stop = min(start + rows, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = values[idx].mean(axis=1)
    return out


def _interval(means: np.ndarray, confidence: float) -> tuple[float, float]:
    # np.percentile takes percents (2.5, 97.5), not fractions (0.025, 0.975):
    # ADAS's DROP code passed fractions, which gives a wrong interval.
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_ci(
    scores: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> Fitness:
    """Percentile-bootstrap confidence interval of the mean score.

    Raises ``ValueError`` for no scores (n=0) or NaN scores: an evaluation
    over zero tasks has no fitness, and failed tasks must be scored 0, not
    dropped. One score, or all-equal scores, give a zero-width interval.
    """
    _check(confidence, n_resamples)
    arr = _as_scores(scores)
    means = bootstrap_means(arr, n_resamples, np.random.default_rng(seed))
    low, high = _interval(means, confidence)
    return Fitness(
        mean=float(arr.mean()),
        ci_low=low,
        ci_high=high,
        median=float(np.median(means)),
        n=int(arr.size),
        confidence=confidence,
        n_resamples=n_resamples,
    )


def paired_bootstrap(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> PairedDiff:
    """Paired bootstrap of mean(a) - mean(b); ``a[i]`` and ``b[i]`` are the same task.

    Task indices are resampled jointly, which is the same as resampling the
    per-task differences. Lengths must match.
    """
    _check(confidence, n_resamples)
    arr_a, arr_b = _as_scores(a, "a"), _as_scores(b, "b")
    if arr_a.size != arr_b.size:
        raise ValueError(
            f"paired_bootstrap needs scores on the same tasks: len(a)={arr_a.size}, "
            f"len(b)={arr_b.size}"
        )
    diff = arr_a - arr_b
    means = bootstrap_means(diff, n_resamples, np.random.default_rng(seed))
    low, high = _interval(means, confidence)
    return PairedDiff(
        mean_diff=float(diff.mean()),
        ci_low=low,
        ci_high=high,
        p_value=float(np.mean(means <= 0.0)),
        n=int(diff.size),
        confidence=confidence,
        n_resamples=n_resamples,
    )


def adas_fitness_string(fitness: Fitness) -> str:
    """``"95% Bootstrap Confidence Interval: (L%, U%), Median: M%"``, one decimal each."""
    level = f"{fitness.confidence * 100:g}"
    return (
        f"{level}% Bootstrap Confidence Interval: "
        f"({fitness.ci_low * 100:.1f}%, {fitness.ci_high * 100:.1f}%), "
        f"Median: {fitness.median * 100:.1f}%"
    )


_ADAS_RE = re.compile(
    r"^\s*(?P<level>[\d.]+)%\s*Bootstrap Confidence Interval:\s*"
    r"\(\s*(?P<low>-?[\d.]+)%\s*,\s*(?P<high>-?[\d.]+)%\s*\)\s*,\s*"
    r"Median:\s*(?P<median>-?[\d.]+)%\s*$"
)


def parse_adas_fitness(text: str) -> Fitness:
    """Read an ADAS fitness string back; values become fractions.

    The string has no mean or task count, so ``mean`` is the median (the
    best available stand-in) and ``n`` is 0. Raises :class:`DataError` when
    the string is not in ADAS's format.
    """
    match = _ADAS_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise DataError(
            f"Cannot read the fitness string {text!r}: expected ADAS's format "
            '"95% Bootstrap Confidence Interval: (L%, U%), Median: M%". Fix the '
            "fitness field of that archive entry or remove it so it is re-evaluated."
        )
    vals = {k: float(v) for k, v in match.groupdict().items()}
    median = vals["median"] / 100
    return Fitness(
        mean=median,
        ci_low=vals["low"] / 100,
        ci_high=vals["high"] / 100,
        median=median,
        n=0,
        confidence=vals["level"] / 100,
        n_resamples=0,
    )


def paired_by_task(
    a: Mapping[str, float], b: Mapping[str, float], *, n_resamples: int = 10_000, seed: int = 0
) -> PairedDiff | None:
    """:func:`paired_bootstrap` over the task ids both maps hold; None when they share none."""
    shared = sorted(set(a) & set(b))
    if not shared:
        return None
    return paired_bootstrap([float(a[t]) for t in shared], [float(b[t]) for t in shared],
                            n_resamples=n_resamples, seed=seed)
