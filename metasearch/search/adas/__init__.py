"""Meta Agent Search (ADAS): the meta agent writes each new agent, conditioned on the archive.

``SPEC`` is what the strategy registry loads; everything heavier is imported
when a campaign builds the strategy.
"""

from __future__ import annotations

from typing import Any

from metasearch.search.adas.settings import LEGACY_FIELDS, AdasSettings
from metasearch.search.registry import StrategyContext, StrategySpec


def build(ctx: StrategyContext) -> Any:
    """An :class:`~metasearch.search.adas.strategy.AdasStrategy` for a campaign config."""
    from metasearch.candidate.validate import validate_code
    from metasearch.search.adas.context import TaskBrief
    from metasearch.search.adas.proposer import Proposer
    from metasearch.search.adas.strategy import AdasStrategy

    s: AdasSettings = ctx.settings
    meta = ctx.config.models.meta
    proposer = Proposer(
        complete=ctx.gateway.complete, model=meta.model, temperature=meta.temperature,
        max_tokens=meta.max_tokens, output_format=ctx.gateway.resolve_protocol(meta.model),
        reflexion_rounds=s.reflexion_rounds, repair_rounds=s.repair_rounds,
        validate=validate_code,
    )
    return AdasStrategy(
        proposer=proposer,
        # no examples from the splits: the meta agent must not see validation or test
        # gold answers; the suite's description carries its own example
        task=TaskBrief.from_suite(ctx.suite),
        generations=ctx.config.search.generations,
        attempts=s.attempts,
        width=s.proposals_per_generation or ctx.parallel,
        debug_rounds=s.debug_rounds,
        archive_context=s.archive_context,
        idea_hints=s.idea_hints,
        near_duplicates=s.near_duplicates,
    )


SPEC = StrategySpec(
    name="adas",
    settings=AdasSettings,
    build=build,
    summary="Meta Agent Search: an LLM writes each agent, shown the best of the archive",
    legacy=LEGACY_FIELDS,
)

__all__ = ["SPEC", "AdasSettings", "build"]
