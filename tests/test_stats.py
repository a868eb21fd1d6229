"""Bootstrap statistics: exact small cases, large-sample checks, ADAS format."""

from __future__ import annotations

import dataclasses
import itertools
import math
import tracemalloc

import numpy as np
import pytest

from metasearch.errors import DataError
from metasearch.evaluation import stats
from metasearch.evaluation.stats import (
    Fitness,
    PairedDiff,
    adas_fitness_string,
    bootstrap_ci,
    paired_bootstrap,
    parse_adas_fitness,
)


def _exact_means(scores: list[float]) -> np.ndarray:
    """Every one of the n**n equally likely resamples, enumerated."""
    n = len(scores)
    return np.array([sum(c) / n for c in itertools.product(scores, repeat=n)])


def _exact_quantile(means: np.ndarray, q: float) -> float:
    """Smallest value v with P(mean <= v) >= q, for the enumerated distribution."""
    values = np.sort(means)
    return float(values[math.ceil(q * values.size) - 1])


def test_bootstrap_matches_enumerated_distribution() -> None:
    scores = [0.0, 0.2, 0.5, 1.0]
    exact = _exact_means(scores)  # 256 resamples
    rng = np.random.default_rng(123)
    boot = stats.bootstrap_means(np.array(scores), 200_000, rng)
    # each atom's frequency matches its exact probability within 5 standard errors
    for value in np.unique(np.round(exact, 12)):
        p = float(np.mean(np.isclose(exact, value)))
        freq = float(np.mean(np.isclose(boot, value)))
        assert abs(freq - p) < 5 * math.sqrt(p * (1 - p) / boot.size) + 1e-9, value


def test_bootstrap_percentiles_equal_exact_quantiles() -> None:
    scores = [0.0, 0.2, 0.5, 1.0]
    exact = _exact_means(scores)
    fit = bootstrap_ci(scores, n_resamples=200_000, seed=7)
    # guard: the exact CDF is not near 2.5% / 97.5% at the quantiles, so the
    # bootstrap percentile must land on the same atom
    for q in (0.025, 0.975):
        v = _exact_quantile(exact, q)
        below, upto = np.mean(exact < v - 1e-12), np.mean(exact <= v + 1e-12)
        assert below + 0.003 < q < upto - 0.003
    assert fit.ci_low == pytest.approx(_exact_quantile(exact, 0.025))
    assert fit.ci_high == pytest.approx(_exact_quantile(exact, 0.975))
    assert fit.median == pytest.approx(_exact_quantile(exact, 0.5))
    assert fit.mean == pytest.approx(np.mean(scores))


def test_adas_percentile_bug_guard() -> None:
    # ADAS's DROP code passed 0.025/0.975 (fractions) to np.percentile; that
    # gives an "interval" far below the mean. Correct percentiles bracket it.
    scores = np.array([1.0] * 50 + [0.0] * 50)
    fit = bootstrap_ci(scores, n_resamples=20_000, seed=0)
    assert fit.ci_low < fit.mean < fit.ci_high
    half_width = 1.959964 * math.sqrt(0.25 / 100)
    assert fit.ci_low == pytest.approx(0.5 - half_width, abs=0.015)
    assert fit.ci_high == pytest.approx(0.5 + half_width, abs=0.015)
    # what the bug would have produced, for contrast
    means = stats.bootstrap_means(scores, 20_000, np.random.default_rng(0))
    buggy_high = np.percentile(means, 0.975)
    assert buggy_high < fit.mean


def test_large_sample_matches_normal_approximation() -> None:
    rng = np.random.default_rng(5)
    scores = rng.random(1000)  # continuous: the index-resampling path
    fit = bootstrap_ci(scores, n_resamples=20_000, seed=1)
    se = scores.std() / math.sqrt(scores.size)
    assert fit.ci_high - fit.ci_low == pytest.approx(2 * 1.959964 * se, rel=0.05)
    assert fit.median == pytest.approx(scores.mean(), abs=0.2 * se)


def test_chunked_resampling_fills_every_resample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", 1000)
    values = np.linspace(0, 1, 300)  # > _MAX_CATEGORIES distinct values
    means = stats.bootstrap_means(values, 5003, np.random.default_rng(0))
    assert means.shape == (5003,)
    assert np.all((means > 0.3) & (means < 0.7))
    assert means.std() == pytest.approx(values.std() / math.sqrt(300), rel=0.1)


def test_100k_resamples_of_1000_tasks_stay_small_in_memory() -> None:
    scores = np.random.default_rng(0).random(1000)
    tracemalloc.start()
    try:
        bootstrap_ci(scores, n_resamples=100_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 150 * 2**20  # one unchunked (100k, 1000) int64 array alone is 800 MB


def test_edge_cases() -> None:
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([0.5, float("nan")])
    with pytest.raises(ValueError):
        bootstrap_ci([1.0], confidence=1.5)
    one = bootstrap_ci([0.3])
    assert (one.mean, one.ci_low, one.ci_high, one.median, one.n) == pytest.approx(
        (0.3, 0.3, 0.3, 0.3, 1)
    )
    same = bootstrap_ci([0.7] * 50)
    assert same.ci_low == same.ci_high == pytest.approx(0.7)


def test_seeded_and_confidence_levels() -> None:
    scores = np.random.default_rng(2).random(200)
    assert bootstrap_ci(scores, seed=3) == bootstrap_ci(scores, seed=3)
    narrow = bootstrap_ci(scores, confidence=0.8)
    wide = bootstrap_ci(scores, confidence=0.99)
    assert wide.ci_high - wide.ci_low > narrow.ci_high - narrow.ci_low


def test_paired_identical_is_zero() -> None:
    a = np.random.default_rng(0).random(100)
    d = paired_bootstrap(a, a.copy())
    assert (d.mean_diff, d.ci_low, d.ci_high) == (0.0, 0.0, 0.0)
    assert d.p_value == 1.0  # every resample has diff <= 0


def test_paired_constant_shift() -> None:
    a = np.random.default_rng(0).random(100)
    d = paired_bootstrap(a, a - 0.1)
    assert d.mean_diff == pytest.approx(0.1)
    assert d.ci_low == pytest.approx(0.1) and d.ci_high == pytest.approx(0.1)
    assert d.p_value == 0.0


def test_paired_known_shift_binary() -> None:
    # b right on 50 tasks, a right on those and 20 more: diffs are 20 ones
    b = np.array([1.0] * 50 + [0.0] * 50)
    a = np.array([1.0] * 70 + [0.0] * 30)
    d = paired_bootstrap(a, b, n_resamples=20_000)
    half = 1.959964 * math.sqrt(0.2 * 0.8 / 100)
    assert d.mean_diff == pytest.approx(0.2)
    assert d.ci_low == pytest.approx(0.2 - half, abs=0.02)
    assert d.ci_high == pytest.approx(0.2 + half, abs=0.02)
    assert d.p_value < 0.001
    # pairing removes the shared variance: narrower than the two CIs' widths combined
    fa, fb = bootstrap_ci(a), bootstrap_ci(b)
    assert d.ci_high - d.ci_low < math.hypot(fa.ci_high - fa.ci_low, fb.ci_high - fb.ci_low)


def test_paired_p_value_near_half_for_no_difference() -> None:
    rng = np.random.default_rng(9)
    a, b = rng.random(400), rng.random(400)
    b = b - (b.mean() - a.mean())  # equal means exactly
    assert 0.3 < paired_bootstrap(a, b).p_value < 0.7


def test_paired_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="same tasks"):
        paired_bootstrap([1, 0, 1], [1, 0])


def test_records_frozen_and_json() -> None:
    fit = bootstrap_ci([1, 0, 1, 1], n_resamples=500)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.mean = 0.0  # type: ignore[misc]
    assert Fitness.from_json(fit.to_json()) == fit
    assert Fitness.from_json(fit.to_dict()) == fit
    diff = paired_bootstrap([1, 0, 1], [0, 0, 1], n_resamples=500)
    assert PairedDiff.from_json(diff.to_json()) == diff


def test_adas_fitness_string_format() -> None:
    fit = Fitness(mean=0.5, ci_low=0.41234, ci_high=0.6, median=0.50449, n=100)
    text = adas_fitness_string(fit)
    assert text == "95% Bootstrap Confidence Interval: (41.2%, 60.0%), Median: 50.4%"
    assert str(fit) == text


def test_parse_adas_fitness_round_trip() -> None:
    parsed = parse_adas_fitness("95% Bootstrap Confidence Interval: (12.5%, 30.0%), Median: 21.9%")
    assert (parsed.ci_low, parsed.ci_high, parsed.median, parsed.confidence) == pytest.approx(
        (0.125, 0.3, 0.219, 0.95)
    )
    fit = bootstrap_ci(np.random.default_rng(0).random(50), n_resamples=1000)
    back = parse_adas_fitness(adas_fitness_string(fit))
    assert back.ci_low == pytest.approx(fit.ci_low, abs=0.0005)
    assert back.median == pytest.approx(fit.median, abs=0.0005)


@pytest.mark.parametrize("bad", ["", "Median: 5%", "95% Bootstrap Confidence Interval: (a%, b%)"])
def test_parse_adas_fitness_rejects(bad: str) -> None:
    with pytest.raises(DataError, match="fitness string"):
        parse_adas_fitness(bad)
