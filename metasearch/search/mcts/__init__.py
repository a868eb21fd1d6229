"""Tree search over code edits (AFlow-like): each child is one targeted edit of its parent.

``SPEC`` is what the strategy registry loads.
"""

from __future__ import annotations

from metasearch.search.adas.context import TaskBrief
from metasearch.search.mcts.settings import MctsSettings
from metasearch.search.mcts.strategy import MctsStrategy
from metasearch.search.reflect import edit_proposer
from metasearch.search.registry import StrategyContext, StrategySpec


def build(ctx: StrategyContext) -> MctsStrategy:
    """An :class:`MctsStrategy` for a campaign config (the meta model writes the edits)."""
    s: MctsSettings = ctx.settings
    proposer = edit_proposer(ctx, s.repair_rounds)
    return MctsStrategy(
        proposer=proposer, task=TaskBrief.from_suite(ctx.suite),
        questions={t.id: t.question for t in ctx.val_tasks},
        generations=ctx.config.search.generations, width=s.width or ctx.parallel,
        selection=s.selection, exploration=s.exploration, max_children=s.max_children,
        top_k=s.top_k, alpha=s.alpha, mix=s.mix, patience=s.patience, failures=s.failures,
        trace_chars=s.trace_chars, debug_rounds=s.debug_rounds, seed=s.seed,
    )


SPEC = StrategySpec(
    name="mcts",
    settings=MctsSettings,
    build=build,
    summary="tree search over code edits (AFlow): UCT or soft-mix selection, one targeted "
    "edit of the parent per child, shown its failed validation tasks",
)

__all__ = ["SPEC", "MctsSettings", "MctsStrategy", "build"]
