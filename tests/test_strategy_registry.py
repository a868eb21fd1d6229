"""Strategies are found by name: built-ins, and third-party ones through an entry point."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from metasearch.config import load_config
from metasearch.errors import ConfigError
from metasearch.search import registry
from metasearch.search.registry import StrategyContext, get_strategy, strategy_names
from metasearch.testing.campaigns import ScriptedModel, close_campaign, toy_campaign

TOY = Path(__file__).parent / "toy_strategy"


def install(site: Path, entry: str = "toy = toy_strategy:SPEC") -> None:
    """What `pip install tests/toy_strategy` leaves in site-packages: the module and its dist-info."""
    shutil.copy(TOY / "toy_strategy.py", site / "toy_strategy.py")
    info = site / "metasearch_toy_strategy-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: metasearch-toy-strategy\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[metasearch.strategies]\n{entry}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    d = tmp_path / "site"
    d.mkdir()
    monkeypatch.syspath_prepend(str(d))
    registry.refresh()
    yield d
    sys.modules.pop("toy_strategy", None)
    registry.refresh()


def test_builtin_adas_is_known_without_plugins():
    assert strategy_names()[0] == "adas"
    assert get_strategy("adas").settings.model_fields["attempts"].default == 1


def test_a_plugin_registers_a_strategy_that_a_config_selects_and_a_campaign_runs(site, tmp_path):
    install(site)
    registry.refresh()
    assert "toy" in strategy_names()
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('[search]\nstrategy = "toy"\ngenerations = 2\n[search.toy]\nwidth = 3\n')
    cfg = load_config(cfg_file)
    assert cfg.search.settings.width == 3
    assert cfg.to_flat_params()["search.toy.width"] == "3"
    spec = get_strategy("toy")

    def make(gateway, parallel):
        return spec.build(StrategyContext(settings=cfg.search.settings, config=cfg,
                                          gateway=gateway, suite=None, parallel=parallel))

    campaign = toy_campaign(tmp_path / "run", ScriptedModel(), make, parallel=2)
    try:
        result = campaign.run()
    finally:
        close_campaign(campaign)
    generated = [r for r in result.records if not r.is_seed]
    assert [r.id for r in generated] == [f"g00{g}-0{i}" for g in (1, 2) for i in range(3)]
    assert all(r.strategy == "toy" and r.status == "ok" for r in generated)
    assert all(r.meta["params"]["passes"] >= 1 for r in generated)
    # parents are the one agent it edited, never the whole archive
    assert all(len(r.parent_ids) == 1 for r in generated)


def test_a_plugin_settings_error_names_its_table(site, tmp_path):
    install(site)
    registry.refresh()
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('[search]\nstrategy = "toy"\n[search.toy]\nwidht = 3\n')
    with pytest.raises(ConfigError) as ei:
        load_config(cfg_file)
    assert "search.toy.widht is not a known field" in str(ei.value)
    assert "Did you mean 'width'" in str(ei.value)


def test_a_broken_plugin_is_a_clear_error_not_a_traceback(site, tmp_path):
    install(site, entry="toy = toy_strategy:NO_SUCH_SPEC")
    registry.refresh()
    with pytest.raises(ConfigError) as ei:
        get_strategy("toy")
    assert "registered but cannot be loaded" in str(ei.value)


def test_a_plugin_cannot_shadow_a_builtin(site):
    install(site, entry="adas = toy_strategy:SPEC")
    registry.refresh()
    assert get_strategy("adas").summary.startswith("Meta Agent Search")
