"""The ``hybrid`` strategy: the meta agent writes each structure, Optuna tunes its knobs.

``SPEC`` is what the strategy registry loads. :func:`build` wires the ADAS
proposer (its validator also checks the knobs, :mod:`metasearch.candidate.knobs`)
and the campaign's studies (``hybrid.journal`` beside the campaign unless
``search.hybrid.storage`` names an RDB URL).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from metasearch.errors import ConfigError
from metasearch.search.hybrid.settings import HybridSettings
from metasearch.search.hybrid.strategy import HybridStrategy, family_of
from metasearch.search.hybrid.studies import Studies, open_shared_studies, open_studies
from metasearch.search.registry import StrategyContext, StrategySpec

__all__ = ["SPEC", "HybridSettings", "HybridStrategy", "Studies", "build", "family_of",
           "knob_validator", "open_shared_studies", "open_studies"]


def knob_validator(max_knobs: int) -> Callable[[str], Sequence[Any]]:
    """``validate_code`` plus the knob findings: what the meta agent repairs."""
    from metasearch.candidate.knobs import knob_findings
    from metasearch.candidate.validate import validate_code

    def validate(code: str) -> Sequence[Any]:
        return [*validate_code(code), *knob_findings(code, max_knobs=max_knobs)]

    return validate


def build(ctx: StrategyContext) -> HybridStrategy:
    """A :class:`HybridStrategy` for a campaign config (the meta model writes the structures)."""
    from metasearch.search.adas.context import TaskBrief
    from metasearch.search.adas.proposer import Proposer

    s: HybridSettings = ctx.settings
    if ctx.directory is None:
        raise ConfigError("The hybrid strategy keeps its studies beside the campaign; build it "
                          "with a campaign directory (StrategyContext.directory).")
    meta = ctx.config.models.meta
    proposer = Proposer(
        complete=ctx.gateway.complete, model=meta.model, temperature=meta.temperature,
        max_tokens=meta.max_tokens, output_format=ctx.gateway.resolve_protocol(meta.model),
        reflexion_rounds=s.reflexion_rounds, repair_rounds=s.repair_rounds,
        validate=knob_validator(s.max_knobs))
    shared = ctx.shared
    studies = (open_studies(Path(ctx.directory), s.storage) if shared is None
               else open_shared_studies(shared, Path(ctx.directory), s.storage))
    return HybridStrategy(
        proposer=proposer, task=TaskBrief.from_suite(ctx.suite), studies=studies,
        claims=shared.coordinator if shared is not None else None,
        generations=ctx.config.search.generations, width=s.width, trials=s.trials,
        batch=s.batch, startup_trials=s.startup_trials, seed=s.seed, max_knobs=s.max_knobs,
        pruner=s.pruner, p_threshold=s.p_threshold, min_tasks=s.min_tasks,
        debug_rounds=s.debug_rounds, idea_hints=s.idea_hints,
        archive_context=s.archive_context)


SPEC = StrategySpec(
    name="hybrid",
    settings=HybridSettings,
    build=build,
    summary="the meta agent writes each structure, declaring tunable() knobs; a small Optuna "
    "study per structure tunes them (TPE, Wilcoxon pruning)",
)
