"""``[search.evolve]``: the frontier's mutations and merges, the gate's budget, the prompt's size."""

from __future__ import annotations

from pydantic import Field

from metasearch.search.reflect import EditSettings


class EvolveSettings(EditSettings):
    width: int | None = Field(
        None, ge=1, le=64, description="children per generation, 1 to 64 (omit: "
        "run.parallel_candidates)")
    merge_every: int = Field(
        0, ge=0, le=64, description="every merge_every-th slot of a generation merges two "
        "frontier agents that win on different tasks, an integer >= 0 (0: never merge)")
    max_metric_calls: int | None = Field(
        None, ge=1, description="task evaluations (agent x task, seeds included) after which "
        "no generation opens, an integer >= 1 (omit: no limit; LLM calls are capped by "
        "budget.max_search_calls)")
    debug_rounds: int = Field(0, ge=0, le=10, description="an integer from 0 to 10")
    seed: int = Field(0, ge=0, description="an integer >= 0: seeds the parent draws and the "
                      "sample of tasks shown, per candidate id")
