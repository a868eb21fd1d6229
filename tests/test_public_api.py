"""The public API does not change by accident (as httpx guards its own)."""

from __future__ import annotations

import subprocess
import sys

import metasearch

PUBLIC = [
    "AgentCodeError", "Archive", "ArchiveView", "CampaignConfig", "CampaignResult",
    "CandidateRecord", "ConfigError", "DataError", "Fixer", "MetasearchError", "Proposal",
    "ProposalOutcome", "SearchStrategy", "Slot", "SplitScore", "StrategyContext",
    "StrategySettings", "StrategySpec", "__version__", "evaluate", "load_config",
    "run_campaign", "strategy_names",
]


def test_the_public_names_are_exactly_these():
    assert sorted(metasearch.__all__) == sorted(PUBLIC)


def test_every_public_name_resolves():
    for name in metasearch.__all__:
        assert getattr(metasearch, name) is not None, name


def test_importing_the_package_loads_no_heavy_library():
    code = ("import sys, metasearch; metasearch.Slot; metasearch.load_config; "
            "print(','.join(m for m in ('litellm', 'mlflow', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_an_unknown_name_is_an_attribute_error():
    try:
        metasearch.no_such_thing  # noqa: B018
    except AttributeError as e:
        assert "no_such_thing" in str(e)
    else:
        raise AssertionError("expected AttributeError")
