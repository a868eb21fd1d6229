"""``[search.optuna]``: the space, the sampler, the objectives, pruning and the study's storage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from metasearch.search.registry import StrategySettings
from metasearch.search.spaces.load import DEFAULT_SPACE


class OptunaSettings(StrategySettings):
    space: str = Field(
        DEFAULT_SPACE, min_length=1,
        description="a search space file: a path, or a shipped space such as "
        "search_spaces/reasoning.toml (found beside the package when not in ./search_spaces)")
    width: int = Field(
        4, ge=1, le=64,
        description="trials per generation, 1 to 64: a generation's trials are asked together "
        "(TPE with constant liar) once the previous generation is told, so set it to at least "
        "run.parallel_candidates")
    seed: int = Field(0, ge=0, description="an integer >= 0: the sampler of trial g001-00 is "
                      "seeded by (seed, candidate id), so the study replays the same way")
    objectives: list[Literal["score", "cost"]] = Field(
        default_factory=lambda: ["score"], min_length=1, max_length=2,
        description='["score"] (maximise validation score) or ["score", "cost"] (the '
        "accuracy/cost Pareto front: also minimise cost per validation task)")
    cost: Literal["usd", "tokens", "calls"] = Field(
        "usd", description='what "cost" measures per validation task: "usd" (litellm prices or '
        'models.*.input_usd_per_mtok / output_usd_per_mtok), "tokens" or "calls"')
    sampler: Literal["tpe", "nsga2", "random"] = Field(
        "tpe", description='"tpe" (multivariate, grouped, constant liar; for one or two '
        'objectives), "nsga2" (two objectives) or "random" (Optuna\'s RandomSampler)')
    startup_trials: int = Field(
        8, ge=0, le=10_000, description="trials drawn at random before TPE models the results, "
        "an integer >= 0 (warm-start trials count)")
    pruner: Literal["wilcoxon", "none"] = Field(
        "wilcoxon", description='"wilcoxon" (Optuna\'s WilcoxonPruner: after each minibatch, a '
        'paired test against the best earlier trial on the same tasks) or "none"; single '
        "objective only")
    p_threshold: float = Field(
        0.1, gt=0, lt=1, description="the WilcoxonPruner's p-value below which a trial is "
        "pruned, a number between 0 and 1")
    min_tasks: int = Field(
        2, ge=2, le=100_000, description="tasks a trial runs before it can be pruned "
        "(the WilcoxonPruner's n_startup_steps), an integer >= 2")
    warm_start: bool = Field(
        True, description="enqueue the space's [[warm_start]] configurations (the ones that "
        "reproduce the seed agents) as the study's first trials")
    storage: str | None = Field(
        None, min_length=1,
        description="an RDB URL for the study (sqlite:///study.db, postgresql://user@host/db) "
        "or a journal file path; default: optuna.journal in the campaign directory")

    @model_validator(mode="after")
    def _consistent(self) -> OptunaSettings:
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"objectives lists an objective twice: {self.objectives}")
        if self.objectives[0] != "score":
            raise ValueError('objectives must start with "score": ["score"] or ["score", "cost"]')
        if self.sampler == "nsga2" and len(self.objectives) < 2:
            raise ValueError('sampler = "nsga2" needs objectives = ["score", "cost"]; use '
                             '"tpe" for one objective')
        return self
