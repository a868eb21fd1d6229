"""Random search over a declarative search space (``search_spaces/*.toml``).

``SPEC`` is what the strategy registry loads; the space file is read when a
campaign builds the strategy, so a bad file is reported before anything runs.
"""

from __future__ import annotations

from metasearch.search.random.settings import RandomSettings
from metasearch.search.random.strategy import RandomStrategy
from metasearch.search.registry import StrategyContext, StrategySpec
from metasearch.search.spaces import check_space_models, load_space


def build(ctx: StrategyContext) -> RandomStrategy:
    """A :class:`RandomStrategy` over the ``[search.random]`` space of a campaign config."""
    s: RandomSettings = ctx.settings
    space = load_space(s.space)
    check_space_models(space, ctx.config)
    return RandomStrategy(space=space, generations=ctx.config.search.generations,
                          width=s.width, seed=s.seed)


SPEC = StrategySpec(
    name="random",
    settings=RandomSettings,
    build=build,
    summary="random trials of a declarative search space (search_spaces/*.toml), rendered to code",
)

__all__ = ["SPEC", "RandomSettings", "RandomStrategy", "build"]
