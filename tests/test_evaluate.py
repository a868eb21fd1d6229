"""score_outcomes: per-task results, failures score 0 and keep their error, fitness."""

from __future__ import annotations

import json

import pytest

from metasearch.evaluation.score import EvalResult, score_outcomes
from metasearch.evaluation.stats import bootstrap_ci
from metasearch.outcomes import TaskError, TaskOutcome
from metasearch.scoring import exact_match, numeric_match
from metasearch.suites.task import Task

TASKS = [Task(id=f"t{i}", question=f"q{i}", answer=str(i)) for i in range(4)]
BOOM = TaskError(kind="exception", type="ValueError", message="boom", traceback="...")


def test_scores_errors_and_fitness():
    outcomes = [
        TaskOutcome("t0", "0"),
        TaskOutcome("t1", "The answer is 1.", truncated=True),
        TaskOutcome("t2", "5"),
        TaskOutcome("t3", None, error=BOOM),
    ]
    res = score_outcomes(outcomes, TASKS, numeric_match)
    assert isinstance(res, EvalResult)
    assert [r.score for r in res.results] == [1.0, 1.0, 0.0, 0.0]
    assert res.n == 4 and res.n_errors == 1
    assert res.results[3].error == BOOM and res.results[3].gold == "3"
    assert res.results[1].truncated and res.results[1].answer == "The answer is 1."
    assert res.fitness == bootstrap_ci([1.0, 1.0, 0.0, 0.0])
    assert res.errors == [res.results[3]]


def test_order_follows_tasks_and_missing_outcome_is_a_crash():
    res = score_outcomes([TaskOutcome("t2", "2"), TaskOutcome("t0", "0")], TASKS, exact_match)
    assert [r.task_id for r in res.results] == ["t0", "t1", "t2", "t3"]
    assert [r.score for r in res.results] == [1.0, 0.0, 1.0, 0.0]
    assert res.results[1].error.kind == "crash" and res.n_errors == 2


def test_to_json_is_serialisable():
    res = score_outcomes([TaskOutcome("t0", "0", error=None)] + [TaskOutcome(f"t{i}", None, error=BOOM) for i in (1, 2, 3)],
                         TASKS, exact_match)
    d = json.loads(json.dumps(res.to_json()))
    assert d["n"] == 4 and d["n_errors"] == 3
    assert d["fitness"]["mean"] == 0.25
    assert d["results"][1]["error"]["type"] == "ValueError"


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown task ids"):
        score_outcomes([TaskOutcome("nope", "1")], TASKS, exact_match)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        score_outcomes([TaskOutcome("t0", "0")], TASKS[:1], lambda p, g: 2.0)
    with pytest.raises(ValueError):
        score_outcomes([], [], exact_match)
