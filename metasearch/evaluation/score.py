"""Outcomes × gold answers → per-task results and a bootstrap fitness. Pure: no I/O.

A task that failed (exception, timeout, crash, budget) scores 0 and keeps its
error, so failures are visible in the result instead of hiding as wrong answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from metasearch.evaluation.stats import Fitness, bootstrap_ci
from metasearch.outcomes import TaskError, TaskOutcome
from metasearch.suites.task import Task

Scorer = Callable[[str, str], float]
"""``scorer(prediction, gold) -> score in [0, 1]``, e.g. ``metasearch.scoring.numeric_match``."""


@dataclass(frozen=True)
class TaskResult:
    task_id: str
    score: float
    answer: str | None
    gold: str
    error: TaskError | None = None
    truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EvalResult:
    results: tuple[TaskResult, ...]
    fitness: Fitness

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def n_errors(self) -> int:
        return sum(r.error is not None for r in self.results)

    @property
    def errors(self) -> list[TaskResult]:
        return [r for r in self.results if r.error is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "fitness": self.fitness.to_dict(),
            "n": self.n,
            "n_errors": self.n_errors,
            "results": [r.to_json() for r in self.results],
        }


_MISSING = TaskError(kind="crash", type="MissingOutcome", message="the runner produced no outcome for this task")


def score_outcomes(outcomes: Sequence[TaskOutcome], tasks: Sequence[Task], scorer: Scorer) -> EvalResult:
    """Score each task's outcome against its gold answer, in task order.

    A task without an outcome counts as a crash (score 0); an outcome for a
    task not in ``tasks`` is a bug and raises ``ValueError``, as does a scorer
    returning a value outside [0, 1]. Raises ``ValueError`` for no tasks.
    """
    by_id = {o.task_id: o for o in outcomes}
    unknown = set(by_id) - {t.id for t in tasks}
    if unknown:
        raise ValueError(f"outcomes for unknown task ids: {sorted(unknown)[:5]}")
    results = []
    for task in tasks:
        outcome = by_id.get(task.id)
        if outcome is None:
            results.append(TaskResult(task.id, 0.0, None, task.answer, _MISSING))
            continue
        if outcome.error is not None or outcome.answer is None:
            results.append(TaskResult(task.id, 0.0, outcome.answer, task.answer, outcome.error,
                                      outcome.truncated))
            continue
        score = float(scorer(outcome.answer, task.answer))
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"scorer returned {score} for task {task.id!r}; scores must be in [0, 1]")
        results.append(TaskResult(task.id, score, outcome.answer, task.answer, None, outcome.truncated))
    fitness = bootstrap_ci([r.score for r in results])
    return EvalResult(results=tuple(results), fitness=fitness)
