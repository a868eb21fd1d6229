"""Turn a finished slot into its archive record: status, reason, scores, spend.

A failure is a state with a reason, never a metric: ``invalid`` (the code
never ran), ``failed`` / ``timeout`` (every task errored), ``pruned``
(clearly worse after the minibatch), else ``ok``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from metasearch.candidate.validate import fingerprint
from metasearch.evaluation.run import Evaluation
from metasearch.llm.ledger import Counts
from metasearch.search.base import ProposalOutcome, Slot
from metasearch.store.records import CandidateRecord, SplitScore


@dataclass(frozen=True)
class Done:
    """A finished candidate waiting to be committed: its record and side files."""

    record: CandidateRecord
    code: str | None
    evaluation: Evaluation | None = None
    transcript: str = ""
    foreign: bool = False  # committed by another worker (--worker): told, not stored again


def split_score(evaluation: Evaluation) -> SplitScore:
    scores = {r.task_id: r.score for r in evaluation.result.results}
    return SplitScore.of(evaluation.result.fitness, scores=scores)


def scored_record(
    cid: str, name: str, generation: int | str, thought: str, code: str,
    evaluation: Evaluation, *, wall_s: float, strategy: str, parents: tuple[str, ...],
    spent: Counts | None = None, meta: Mapping[str, Any] | None = None,
) -> CandidateRecord:
    res = evaluation.result
    cost = spent if spent is not None else evaluation.cost
    kinds = {r.error.kind for r in res.results if r.error is not None}
    status, reason = "ok", ""
    if res.n and res.n_errors == res.n:
        status = "timeout" if kinds == {"timeout"} else "failed"
        first = res.errors[0].error
        reason = f"every task failed; first error: {first.brief()}" if first else "every task failed"
    return CandidateRecord(
        id=cid, name=name, generation=generation, status=status,  # type: ignore[arg-type]
        thought=thought, reason=reason, parent_ids=tuple(parents), val=split_score(evaluation),
        calls=cost.calls, tokens=cost.tokens, cost_usd=cost.cost_usd, wall_s=wall_s,
        errors=res.n_errors, fingerprint=fingerprint(code), strategy=strategy,
        meta={"cached_calls": cost.cached_calls, "events": dict(cost.events)} | dict(meta or {}),
    )


def invalid_record(
    slot: Slot, outcome: ProposalOutcome, strategy: str, spent: Counts, *, wall_s: float,
    stages: list[str],
) -> CandidateRecord:
    """A proposal that never ran: kept with its reason, so the yield and the feedback show it."""
    proposal = outcome.proposal
    return CandidateRecord(
        id=slot.candidate_id, name=proposal.name if proposal else "(unparsed)",
        generation=slot.generation, status="invalid",
        thought=proposal.thought if proposal else "", reason=outcome.reason,
        parent_ids=proposal.parents if proposal else (), calls=spent.calls, tokens=spent.tokens,
        cost_usd=spent.cost_usd, wall_s=wall_s,
        fingerprint=fingerprint(proposal.code) if proposal and proposal.code else "",
        strategy=strategy,
        meta={"stages": stages, "failure": outcome.failure, "cached_calls": spent.cached_calls,
              "changes": list(outcome.changes)},
    )
