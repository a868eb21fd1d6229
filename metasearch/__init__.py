"""metasearch: automated design of LLM agents, sandboxed and honest.

The public API is what ``__all__`` lists; everything else is internal and
may change. Names load on first use, so ``import metasearch`` and
``metasearch --help`` stay fast (no litellm, mlflow or optuna)::

    import metasearch

    result = metasearch.run_campaign("experiments/quickstart.toml",
                                     overrides={"run.out": "runs/mine"})
    print(result.best.name, result.best.val.mean)
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# litellm fetches its price map from the network at import unless told not to;
# offline that costs seconds and can deadlock mlflow's UI (PITFALLS.md). Its
# bundled map is what we want. A user can still set the variable to False.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    # running things
    "run_campaign": "metasearch.api",
    "evaluate": "metasearch.api",
    "load_config": "metasearch.config",
    "CampaignConfig": "metasearch.config",
    "CampaignResult": "metasearch.campaign.loop",
    # what a campaign leaves behind
    "Archive": "metasearch.store.archive",
    "CandidateRecord": "metasearch.store.records",
    "SplitScore": "metasearch.store.records",
    # writing a strategy
    "SearchStrategy": "metasearch.search.base",
    "Fixer": "metasearch.search.base",
    "Slot": "metasearch.search.base",
    "Proposal": "metasearch.search.base",
    "ProposalOutcome": "metasearch.search.base",
    "ArchiveView": "metasearch.search.base",
    "StrategySpec": "metasearch.search.registry",
    "StrategySettings": "metasearch.search.registry",
    "StrategyContext": "metasearch.search.registry",
    "strategy_names": "metasearch.search.registry",
    # errors
    "MetasearchError": "metasearch.errors",
    "ConfigError": "metasearch.errors",
    "DataError": "metasearch.errors",
    "AgentCodeError": "metasearch.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'metasearch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
