"""Validation/test splits: deterministic, disjoint, stable across processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from metasearch.errors import ConfigError
from metasearch.suites import Task, get_suite, load_split, split_tasks


def _pool(n: int) -> list[Task]:
    return [Task(id=f"t{i}", question=f"q{i}", answer=str(i)) for i in range(n)]


def test_sizes_and_disjoint() -> None:
    splits = split_tasks(_pool(100), seed=0, n_val=20, n_test=50)
    val, test = {t.id for t in splits.validation}, {t.id for t in splits.test}
    assert len(val) == 20 and len(test) == 50
    assert not val & test


def test_deterministic_by_seed() -> None:
    pool = _pool(100)
    a = split_tasks(pool, seed=3, n_val=10, n_test=10)
    assert a == split_tasks(pool, seed=3, n_val=10, n_test=10)
    assert a.validation != split_tasks(pool, seed=4, n_val=10, n_test=10).validation
    # shuffled, not the file order
    assert [t.id for t in a.validation] != [f"t{i}" for i in range(10)]


def test_validation_does_not_depend_on_n_test() -> None:
    pool = _pool(100)
    assert (
        split_tasks(pool, n_val=10, n_test=5).validation == split_tasks(pool, n_val=10).validation
    )


def test_rest_goes_to_test() -> None:
    splits = split_tasks(_pool(30), n_val=10)
    assert len(splits.test) == 20


def test_too_few_tasks() -> None:
    with pytest.raises(ConfigError, match="has 30 tasks"):
        split_tasks(_pool(30), n_val=20, n_test=20)
    with pytest.raises(ConfigError):
        split_tasks(_pool(10), n_val=10)
    with pytest.raises(ConfigError):
        split_tasks(_pool(10), n_val=-1)


def test_duplicate_ids_refused() -> None:
    pool = _pool(5) + _pool(5)
    with pytest.raises(ConfigError, match="not unique"):
        split_tasks(pool, n_val=2)


def test_load_split_arith() -> None:
    val = load_split("arith", "validation", n_val=15, n_test=30)
    test = load_split(get_suite("arith"), "test", n_val=15, n_test=30)
    assert len(val) == 15 and len(test) == 30
    assert not {t.id for t in val} & {t.id for t in test}
    with pytest.raises(ConfigError, match="Unknown split"):
        load_split("arith", "train")  # type: ignore[arg-type]


def test_stable_across_processes() -> None:
    code = (
        "from metasearch.suites import load_split; "
        "print(','.join(t.id for t in load_split('arith', 'validation', seed=7, n_val=12)))"
    )
    here = ",".join(t.id for t in load_split("arith", "validation", seed=7, n_val=12))
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "99", "PATH": ""},
    )
    assert out.stdout.strip() == here
