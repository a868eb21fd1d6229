"""Test doubles and contract suites for code that plugs into metasearch.

Shipped in the package, as Optuna ships ``optuna.testing``: a strategy
author subclasses :class:`StrategyContract` in their own tests and gets the
guarantees every built-in strategy is held to; a gateway client's author
subclasses :class:`BackendContract` (against :class:`FakeOpenAIServer`). Nothing here is used by a
campaign; it needs pytest only when a contract is run.
"""

from metasearch.testing.backend_contract import BackendContract
from metasearch.testing.campaigns import (
    TOY_SUITE,
    TOY_TASKS,
    ScriptedModel,
    toy_agent,
    toy_campaign,
)
from metasearch.testing.fake_openai import FakeOpenAIServer
from metasearch.testing.strategy_contract import StrategyContract

__all__ = [
    "TOY_SUITE",
    "TOY_TASKS",
    "BackendContract",
    "FakeOpenAIServer",
    "ScriptedModel",
    "StrategyContract",
    "toy_agent",
    "toy_campaign",
]
