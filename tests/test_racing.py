"""Racing: evaluate a minibatch first and prune a candidate the data already says is worse."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from metasearch.campaign.racing import merge, race
from metasearch.evaluation.run import Evaluation
from metasearch.evaluation.score import EvalResult, TaskResult
from metasearch.evaluation.stats import bootstrap_ci
from metasearch.llm.ledger import Counts
from metasearch.store.records import SplitScore
from metasearch.suites.task import Task

TASKS = [Task(id=f"t{i}", question=f"q{i}", answer="1") for i in range(12)]


class FakeEval:
    """Scores by task id; 3 calls per task; remembers which task lists it was given."""

    def __init__(self, scores: dict[str, float]):
        self.scores = scores
        self.batches: list[list[str]] = []

    def __call__(self, tasks: Sequence[Task]) -> Evaluation:
        self.batches.append([t.id for t in tasks])
        results = tuple(
            TaskResult(task_id=t.id, score=self.scores[t.id], answer="x", gold="1") for t in tasks
        )
        fitness = bootstrap_ci([r.score for r in results])
        return Evaluation(EvalResult(results, fitness), Counts(calls=3 * len(tasks)), 1.0)


def incumbent(scores: list[float]) -> SplitScore:
    return SplitScore.of(bootstrap_ci(scores), scores={f"i{k}": s for k, s in enumerate(scores)})


STRONG = incumbent([1.0] * 12)


def test_clearly_worse_candidate_is_pruned_after_the_minibatch():
    ev = FakeEval({t.id: 0.0 for t in TASKS} | {"t0": 1.0})
    res = race(TASKS, evaluate=ev, incumbent=STRONG, minibatch=4)
    assert res.pruned
    assert ev.batches == [["t0", "t1", "t2", "t3"]]
    assert res.evaluation.result.n == 4 and res.evaluation.result.fitness.mean == 0.25
    assert res.calls_saved == 3 * 8  # 3 calls a task x 8 tasks not run
    assert "pruned after 4 of 12 tasks" in res.reason and "25.0%" in res.reason


def test_close_candidate_runs_every_task_and_scores_are_merged():
    scores = {t.id: float(i % 2) for i, t in enumerate(TASKS)}
    ev = FakeEval(scores)
    res = race(TASKS, evaluate=ev, incumbent=incumbent([1.0, 0.0] * 6), minibatch=4)
    assert not res.pruned and res.calls_saved == 0
    assert ev.batches == [[t.id for t in TASKS[:4]], [t.id for t in TASKS[4:]]]
    assert [r.task_id for r in res.evaluation.result.results] == [t.id for t in TASKS]
    assert res.evaluation.result.fitness == bootstrap_ci(list(scores.values()))
    assert res.evaluation.cost.calls == 36 and res.evaluation.wall_s == 2.0


@pytest.mark.parametrize(
    "kw",
    [
        {"enabled": False},
        {"incumbent": None},
        {"minibatch": 0},
        {"minibatch": 12},  # the minibatch is the whole split: nothing to save
    ],
)
def test_no_racing_runs_everything_in_one_go(kw):
    ev = FakeEval({t.id: 0.0 for t in TASKS})
    args = {"incumbent": STRONG, "minibatch": 4} | kw
    res = race(TASKS, evaluate=ev, **args)
    assert not res.pruned and ev.batches == [[t.id for t in TASKS]]


def test_an_unlucky_minibatch_is_not_pruned_when_its_upper_bound_reaches_the_best():
    # 2 of 4 right: its upper bound is 100%, so it cannot be told apart from a perfect incumbent
    ev = FakeEval({t.id: float(i % 2) for i, t in enumerate(TASKS)})
    assert not race(TASKS, evaluate=ev, incumbent=STRONG, minibatch=4).pruned


def test_incumbent_bound_is_taken_at_the_configured_confidence():
    inc = incumbent([1.0] * 9 + [0.0] * 3)  # 75%; its 95% lower bound is 50%
    ev = FakeEval({t.id: 0.0 for t in TASKS} | {"t0": 1.0, "t1": 1.0})  # minibatch 2/6
    loose = race(TASKS, evaluate=ev, incumbent=inc, minibatch=6, confidence=0.6)
    strict = race(TASKS, evaluate=FakeEval(ev.scores), incumbent=inc, minibatch=6, confidence=0.99)
    assert loose.pruned and not strict.pruned


def test_merge_adds_costs_and_events():
    a = Evaluation(EvalResult((TaskResult("a", 1.0, "1", "1"),), bootstrap_ci([1.0])),
                   Counts(calls=2, cached_calls=1, prompt_tokens=5, events={"repair": 1}), 0.5)
    b = Evaluation(EvalResult((TaskResult("b", 0.0, "2", "1"),), bootstrap_ci([0.0])),
                   Counts(calls=3, completion_tokens=7, events={"repair": 2, "truncated": 1}), 0.25)
    m = merge(a, b)
    assert m.result.fitness.mean == 0.5 and m.result.n == 2
    assert m.cost.calls == 5 and m.cost.cached_calls == 1 and m.cost.tokens == 12
    assert m.cost.events == {"repair": 3, "truncated": 1} and m.wall_s == 0.75
