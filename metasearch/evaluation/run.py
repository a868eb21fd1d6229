"""Run one agent on a list of tasks and score it: the path shared by ``eval`` and campaigns.

An :class:`~metasearch.execution.base.AgentRunner` executes code (in the
sandbox, or in-process for the trusted seeds); :func:`evaluate_agent` runs it, scores the outcomes on the
host (gold answers never leave the host) and measures what it cost from the
gateway's ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from metasearch.evaluation.score import EvalResult, score_outcomes
from metasearch.execution.base import AgentRunner, OnOutcome
from metasearch.llm.ledger import Counts
from metasearch.runtime.settings import AgentSettings
from metasearch.runtime.traces import task_traces
from metasearch.suites.task import Task


@dataclass(frozen=True)
class Evaluation:
    """Scores plus the cost of getting them (this candidate's slice of the ledger)."""

    result: EvalResult
    cost: Counts
    wall_s: float
    sandbox: str = ""  # the sandbox mode it ran in ("" when the caller did not say)
    # one line per task (answer vs gold, its LLM calls; see runtime.traces); () untraced
    traces: tuple[dict[str, Any], ...] = ()

    def summary(self) -> dict[str, Any]:
        f = self.result.fitness
        return {
            "score": f.mean,
            "ci_low": f.ci_low,
            "ci_high": f.ci_high,
            "n": self.result.n,
            "errors": self.result.n_errors,
            "calls": self.cost.calls,
            "tokens": self.cost.tokens,
            "cost_usd": self.cost.cost_usd,
            "cached_calls": self.cost.cached_calls,
            "wall_s": self.wall_s,
            "parse_failures": self.cost.events.get("parse_failure", 0),
            "truncated": self.cost.events.get("truncated", 0),
        }


def evaluate_agent(
    code: str,
    tasks: Sequence[Task],
    *,
    scorer: Callable[[str, str], float],
    runner: AgentRunner,
    settings: AgentSettings,
    gateway: Any,
    on_outcome: OnOutcome | None = None,
) -> Evaluation:
    """Run ``code`` on ``tasks`` through ``runner`` and score it on the host.

    Cost is read from the gateway's ledger slice for ``settings.candidate``,
    so concurrent evaluations of other candidates don't leak into it.
    """
    key = settings.candidate
    before = gateway.snapshot()
    start = time.monotonic()
    outcomes = runner.run(code, tasks, settings, on_outcome=on_outcome)
    wall = time.monotonic() - start
    check = getattr(gateway, "check_storage", None)
    if check is not None:  # a reply the cache could not keep (disk full) failed the agent's
        check()            # call: those outcomes are not the agent's, so they are not scored
    after = gateway.snapshot()
    if key is None:
        cost = after.total.minus(before.total)
    else:
        cost = after.by_candidate.get(key, Counts()).minus(before.by_candidate.get(key, Counts()))
    result = score_outcomes(outcomes, tasks, scorer)
    recorded = {o.task_id: o.trace for o in outcomes if o.trace is not None}
    traces = task_traces(result.results, recorded, {t.id: t.question for t in tasks}) \
        if recorded else ()
    return Evaluation(result=result, cost=cost, wall_s=wall, traces=traces)
