"""One trial of a space as a proposal: render it, and check that it is a clean candidate.

Shared by every strategy over a space (``random``, ``optuna``): a trial's code
is written by the renderer, not a model, so it must need no repair and pass
validation; if it does not, that is a renderer bug, reported as such.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metasearch.candidate.normalize import normalize_proposal
from metasearch.candidate.validate import format_findings, validate_code
from metasearch.search.base import STAGES, Proposal, ProposalOutcome
from metasearch.search.spaces.format import Scalar
from metasearch.search.spaces.render import render
from metasearch.search.spaces.space import Space

__all__ = ["propose_trial"]


def propose_trial(space: Space, values: Mapping[str, Scalar],
                  meta: Mapping[str, Any]) -> ProposalOutcome:
    """The rendered agent of ``values``, with the searched ones as ``params`` and ``meta``."""
    agent = render(space, dict(values))
    searched = {p.name for p in space.searched()}
    proposal = Proposal(
        code=agent.code, name=agent.name, thought=agent.thought, parents=(),
        params={k: v for k, v in values.items() if k in searched},
        meta={"space": space.name, "space_file": space.source, **meta})
    normalised = normalize_proposal(agent.code)
    findings = validate_code(agent.code)
    if normalised.code != agent.code or normalised.findings or findings:
        problems = format_findings(findings) or "; ".join(
            [*normalised.changes, *(f.message for f in normalised.findings)])
        return ProposalOutcome(
            status="invalid", proposal=proposal, failure="invalid",
            reason=f"the rendered trial is not a clean candidate (a renderer bug): {problems}",
            stages=("parsed",))
    return ProposalOutcome(status="valid", proposal=proposal, stages=STAGES)
