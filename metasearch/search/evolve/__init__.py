"""Reflective evolution on a per-task Pareto frontier (GEPA-like), with an acceptance gate.

``SPEC`` is what the strategy registry loads.
"""

from __future__ import annotations

from metasearch.search.adas.context import TaskBrief
from metasearch.search.evolve.settings import EvolveSettings
from metasearch.search.evolve.strategy import EvolveStrategy, gate
from metasearch.search.reflect import edit_proposer
from metasearch.search.registry import StrategyContext, StrategySpec


def build(ctx: StrategyContext) -> EvolveStrategy:
    """An :class:`EvolveStrategy` for a campaign config (the meta model writes the children)."""
    s: EvolveSettings = ctx.settings
    proposer = edit_proposer(ctx, s.repair_rounds)
    return EvolveStrategy(
        proposer=proposer, task=TaskBrief.from_suite(ctx.suite),
        questions={t.id: t.question for t in ctx.val_tasks},
        generations=ctx.config.search.generations, width=s.width or ctx.parallel,
        merge_every=s.merge_every, max_metric_calls=s.max_metric_calls, failures=s.failures,
        trace_chars=s.trace_chars, debug_rounds=s.debug_rounds, seed=s.seed,
    )


SPEC = StrategySpec(
    name="evolve",
    settings=EvolveSettings,
    build=build,
    summary="reflective evolution on a per-task Pareto frontier (GEPA): parents by tasks won, "
    "an acceptance gate on the first minibatch, merges of complementary agents",
)

__all__ = ["SPEC", "EvolveSettings", "EvolveStrategy", "build", "gate"]
