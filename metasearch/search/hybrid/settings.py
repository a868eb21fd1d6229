"""``[search.hybrid]``: the meta agent's structures and the Optuna study that tunes their knobs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from metasearch.candidate.knobs import MAX_KNOBS
from metasearch.search.registry import StrategySettings


class HybridSettings(StrategySettings):
    width: int = Field(
        1, ge=1, le=16, description="new structures the meta agent writes per generation, 1 to 16 "
        "(each gets its own study)")
    trials: int = Field(
        6, ge=0, le=98, description="tuning trials per structure besides its defaults, 0 to 98 "
        "(fewer when the knobs have fewer distinct configurations)")
    batch: int = Field(
        2, ge=1, le=32, description="trials of one study asked together (TPE with constant "
        "liar), 1 to 32: a batch opens once every earlier trial is told, so the records do not "
        "depend on run.parallel_candidates")
    startup_trials: int = Field(
        2, ge=0, le=1000, description="random trials before TPE models the results, an integer "
        ">= 0 (the defaults trial counts)")
    seed: int = Field(0, ge=0, description="an integer >= 0: the sampler of each trial is "
                      "seeded by (seed, candidate id)")
    max_knobs: int = Field(
        MAX_KNOBS, ge=1, le=20, description="knobs one structure may declare, 1 to 20; more is "
        "a finding the meta agent must repair")
    pruner: Literal["wilcoxon", "none"] = Field(
        "wilcoxon", description='"wilcoxon" (after each minibatch, a paired signed-rank test '
        'against the best earlier trial of the same structure on the same tasks) or "none"')
    p_threshold: float = Field(
        0.1, gt=0, lt=1, description="the Wilcoxon p-value below which a trial is pruned, "
        "between 0 and 1")
    min_tasks: int = Field(
        2, ge=2, le=100_000, description="tasks a trial runs before it can be pruned, >= 2")
    storage: str | None = Field(
        None, min_length=1, description="an RDB URL for the studies (sqlite:///studies.db, "
        "postgresql://user@host/db) or a journal file path; default: hybrid.journal in the "
        "campaign directory")
    reflexion_rounds: int = Field(0, ge=0, le=2, description="an integer from 0 to 2")
    repair_rounds: int = Field(2, ge=0, le=10, description="an integer from 0 to 10")
    debug_rounds: int = Field(1, ge=0, le=10, description="debug rounds of a structure (trials "
                              "are not debugged), an integer from 0 to 10")
    idea_hints: bool = Field(True, description="true or false: suggest a concrete design idea "
                             "in each propose prompt")
    archive_context: int = Field(8, ge=1, le=1000, description="structures the meta prompt "
                                 "shows (each as its tuned best), an integer >= 1")
