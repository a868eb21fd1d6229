"""``[search.random]``: which space to sample, how many trials per generation, and the seed."""

from __future__ import annotations

from pydantic import Field

from metasearch.search.registry import StrategySettings
from metasearch.search.spaces.load import DEFAULT_SPACE


class RandomSettings(StrategySettings):
    space: str = Field(
        DEFAULT_SPACE, min_length=1,
        description="a search space file: a path, or a shipped space such as "
        "search_spaces/reasoning.toml (found beside the package when not in ./search_spaces)")
    width: int = Field(4, ge=1, le=64, description="trials per generation, 1 to 64")
    seed: int = Field(0, ge=0, description="an integer >= 0: trial g001-00 of seed 0 is always "
                      "the same agent")
