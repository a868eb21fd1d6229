"""Strategy name -> how to configure and build it; third parties register by entry point.

A strategy is one :class:`StrategySpec`: its name, the pydantic model of its
``[search.NAME]`` table, and a builder. Built-in specs are named here as
import paths (nothing is imported until asked for); others come from the
``metasearch.strategies`` entry-point group, so a package can add one
without forking::

    # pyproject.toml of a plugin
    [project.entry-points."metasearch.strategies"]
    mine = "my_package.strategy:SPEC"
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from metasearch.errors import ConfigError

if TYPE_CHECKING:
    from metasearch.search.base import SearchStrategy

__all__ = [
    "ENTRY_POINT_GROUP",
    "StrategyContext",
    "StrategySettings",
    "StrategySpec",
    "get_strategy",
    "strategy_names",
]

ENTRY_POINT_GROUP = "metasearch.strategies"

#: Built-in strategies: one line each, ``name -> "module:ATTRIBUTE"``.
BUILTIN: dict[str, str] = {
    "adas": "metasearch.search.adas:SPEC",
    "evolve": "metasearch.search.evolve:SPEC",
    "hybrid": "metasearch.search.hybrid:SPEC",
    "mcts": "metasearch.search.mcts:SPEC",
    "optuna": "metasearch.search.optuna:SPEC",
    "random": "metasearch.search.random:SPEC",
}


class StrategySettings(BaseModel):
    """Base of a ``[search.NAME]`` table: unknown fields are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


@dataclass(frozen=True)
class StrategyContext:
    """What a builder may use. It builds the strategy; it starts nothing else."""

    settings: Any  # the validated [search.NAME] table (an instance of spec.settings)
    config: Any  # the whole CampaignConfig, read-only
    gateway: Any  # the LLM gateway: complete(LLMRequest), resolve_protocol(model)
    suite: Any  # the task suite (description, answer hint, scorer)
    parallel: int = 1  # run.parallel_candidates
    directory: Path | None = None  # the campaign directory (a strategy may keep state there)
    resume: bool = False  # whether the campaign is resumed (its directory has records)
    val_tasks: tuple[Any, ...] = ()  # the validation split (never the test split), in order
    # one of several --worker processes: campaign.workers.SharedState (name, url, coordinator),
    # for strategies whose own state must be shared too (the optuna study)
    shared: Any = None


@dataclass(frozen=True)
class StrategySpec:
    """One registered strategy.

    ``legacy`` names old fields that used to sit directly under ``[search]``;
    the config loader moves them into ``[search.NAME]`` with a note.
    """

    name: str
    settings: type[StrategySettings]
    build: Callable[[StrategyContext], SearchStrategy]
    summary: str = ""
    legacy: tuple[str, ...] = ()


@functools.cache
def _table() -> dict[str, str | Any]:
    table: dict[str, Any] = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        table.setdefault(ep.name, ep)  # a plugin cannot shadow a built-in
    return table


def strategy_names() -> list[str]:
    """Every known strategy, built-in first."""
    return list(_table())


def refresh() -> None:
    """Forget discovered entry points (after installing a plugin in the same process)."""
    _table.cache_clear()
    get_strategy.cache_clear()


@functools.cache
def get_strategy(name: str) -> StrategySpec:
    """The spec registered as ``name``; a one-paragraph error lists the known ones."""
    table = _table()
    if name not in table:
        raise ConfigError(
            f"search.strategy = {name!r} is not a known search strategy. Known strategies: "
            f"{', '.join(table)}. A third-party strategy is installed as a package that "
            f"registers a StrategySpec in the {ENTRY_POINT_GROUP!r} entry-point group."
        )
    ref = table[name]
    try:
        spec = _load(ref) if isinstance(ref, str) else ref.load()
    except Exception as exc:  # a broken plugin must not look like a bad config value
        raise ConfigError(
            f"The search strategy {name!r} is registered but cannot be loaded "
            f"({type(exc).__name__}: {exc}). Reinstall the package that provides it, or "
            "choose another search.strategy."
        ) from exc
    if not isinstance(spec, StrategySpec) or spec.name != name:
        raise ConfigError(
            f"The search strategy {name!r} is registered as {ref!r}, which is not a "
            f"StrategySpec named {name!r}. Fix the plugin's entry point."
        )
    return spec


def _load(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)
