"""Spend less on losers: evaluate a minibatch first, stop when clearly worse.

:func:`race` (the default): a candidate is pruned when the upper bound of its
minibatch CI lies below the lower bound of the incumbent's validation CI.
Both bounds are bootstrap percentiles at the configured confidence, so a
pruned candidate is one the data already says is worse, not merely unlucky
on a few tasks.

:func:`race_stepwise`: for a strategy that prunes itself
(:class:`~metasearch.search.base.Pruner`, e.g. Optuna's ``WilcoxonPruner``):
evaluate minibatch after minibatch and ask it after each one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from metasearch.evaluation.run import Evaluation
from metasearch.evaluation.score import EvalResult
from metasearch.evaluation.stats import bootstrap_ci
from metasearch.llm.ledger import Counts
from metasearch.store.records import SplitScore
from metasearch.suites.task import Task


@dataclass(frozen=True)
class RaceResult:
    evaluation: Evaluation
    pruned: bool
    reason: str = ""
    calls_saved: int = 0  # estimated: calls per task so far x tasks not run


def race(
    tasks: Sequence[Task],
    *,
    evaluate: Callable[[Sequence[Task]], Evaluation],
    incumbent: SplitScore | None,
    minibatch: int,
    confidence: float = 0.95,
    enabled: bool = True,
) -> RaceResult:
    """Evaluate ``tasks``, pruning after the first ``minibatch`` if clearly worse."""
    if not enabled or incumbent is None or minibatch <= 0 or minibatch >= len(tasks):
        return RaceResult(evaluate(tasks), pruned=False)
    first = evaluate(tasks[:minibatch])
    scores = [r.score for r in first.result.results]
    ci = bootstrap_ci(scores, confidence=confidence)
    floor = _lower_bound(incumbent, confidence)
    if ci.ci_high < floor:
        per_task = first.cost.calls / max(1, len(scores))
        saved = round(per_task * (len(tasks) - minibatch))
        reason = (
            f"pruned after {minibatch} of {len(tasks)} tasks: minibatch score {ci.mean:.1%} "
            f"(upper {confidence:.0%} bound {ci.ci_high:.1%}) is below the best's lower "
            f"bound {floor:.1%}"
        )
        return RaceResult(first, pruned=True, reason=reason, calls_saved=saved)
    rest = evaluate(tasks[minibatch:])
    return RaceResult(merge(first, rest), pruned=False)


def race_stepwise(
    tasks: Sequence[Task],
    *,
    evaluate: Callable[[Sequence[Task]], Evaluation],
    judge: Callable[[list[float]], str | None],
    minibatch: int,
) -> RaceResult:
    """Evaluate ``tasks`` ``minibatch`` at a time; stop when ``judge(scores so far)`` says why."""
    if minibatch <= 0 or minibatch >= len(tasks):
        return RaceResult(evaluate(tasks), pruned=False)
    done: Evaluation | None = None
    for start in range(0, len(tasks), minibatch):
        part = evaluate(tasks[start:start + minibatch])
        done = part if done is None else merge(done, part)
        n = len(done.result.results)
        if n >= len(tasks):
            break
        reason = judge([r.score for r in done.result.results])
        if reason:
            saved = round(done.cost.calls / max(1, n) * (len(tasks) - n))
            return RaceResult(done, pruned=True, reason=f"pruned after {n} of {len(tasks)} "
                              f"tasks: {reason}", calls_saved=saved)
    assert done is not None
    return RaceResult(done, pruned=False)


def _lower_bound(incumbent: SplitScore, confidence: float) -> float:
    """The incumbent's lower bound at ``confidence`` (the stored one is at 95%)."""
    if incumbent.scores and len(incumbent.scores) == incumbent.n:
        return bootstrap_ci(list(incumbent.scores.values()), confidence=confidence).ci_low
    return incumbent.ci_low


def merge(a: Evaluation, b: Evaluation) -> Evaluation:
    """One evaluation over both task lists (fitness recomputed on all tasks)."""
    results = a.result.results + b.result.results
    fitness = bootstrap_ci([r.score for r in results])
    return Evaluation(
        result=EvalResult(results=results, fitness=fitness),
        cost=_add(a.cost, b.cost),
        wall_s=a.wall_s + b.wall_s,
        traces=a.traces + b.traces,
    )


def _add(x: Counts, y: Counts) -> Counts:
    events = Counter(x.events)
    events.update(y.events)
    return Counts(
        calls=x.calls + y.calls, cached_calls=x.cached_calls + y.cached_calls,
        errors=x.errors + y.errors, prompt_tokens=x.prompt_tokens + y.prompt_tokens,
        completion_tokens=x.completion_tokens + y.completion_tokens,
        cost_usd=x.cost_usd + y.cost_usd, latency_s=x.latency_s + y.latency_s,
        events=dict(events),
    )
