"""``[search.adas]``: the settings of Meta Agent Search, each in this one place."""

from __future__ import annotations

from pydantic import Field

from metasearch.search.registry import StrategySettings


class AdasSettings(StrategySettings):
    reflexion_rounds: int = Field(1, ge=0, le=2, description="an integer from 0 to 2")
    repair_rounds: int = Field(2, ge=0, le=10, description="an integer from 0 to 10")
    debug_rounds: int = Field(2, ge=0, le=10, description="an integer from 0 to 10")
    idea_hints: bool = Field(
        True,
        description="true or false: suggest a concrete design idea in each propose prompt",
    )
    near_duplicates: bool = Field(
        True,
        description="true or false: reject code with the design skeleton of an archived agent "
        "(equal up to prompts, constants, literal arguments and variable names)",
    )
    attempts: int = Field(
        1,
        ge=1,
        le=10,
        description="fresh proposals a generation may make until one runs (valid, not failing "
        "every task), 1 to 10",
    )
    archive_context: int = Field(
        8,
        ge=1,
        le=1000,
        description="how many archive entries the meta prompt shows, an integer >= 1",
    )
    proposals_per_generation: int | None = Field(
        None,
        ge=1,
        le=64,
        description="agents proposed per generation from the same archive view, 1 to 64 (omit: "
        "run.parallel_candidates, so ADAS's one per generation when candidates run one at a time)",
    )


#: Fields that sat directly under [search] before strategies had their own tables.
LEGACY_FIELDS = ("reflexion_rounds", "repair_rounds", "debug_rounds", "idea_hints",
                 "near_duplicates", "attempts", "archive_context")
