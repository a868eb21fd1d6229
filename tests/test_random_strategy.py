"""The random strategy: a trial depends on (seed, candidate id) only; config and registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from metasearch.config import load_config
from metasearch.errors import ConfigError
from metasearch.search.base import ArchiveView, Slot
from metasearch.search.random import RandomSettings, RandomStrategy
from metasearch.search.registry import StrategyContext, get_strategy
from metasearch.search.spaces import load_space
from metasearch.store.archive import Archive
from metasearch.store.records import candidate_id

ROOT = Path(__file__).resolve().parents[1]


def strategy(seed: int = 0, width: int = 3, generations: int = 2) -> RandomStrategy:
    return RandomStrategy(space=load_space("search_spaces/reasoning.toml"),
                          generations=generations, width=width, seed=seed)


@pytest.fixture
def archive(tmp_path):
    a = Archive.open(tmp_path / "campaign")
    yield a
    a.close()


def propose(s: RandomStrategy, cid: str, archive: Archive):
    slot = Slot(cid, int(cid[1:4]), int(cid[-2:]))
    out = s.propose(slot, ArchiveView.for_slot(archive, slot))
    assert out.ok, out.reason
    return out.proposal


def test_a_trial_depends_on_its_candidate_id_and_seed_only(archive):
    first, second = strategy(), strategy()
    ids = [candidate_id(g, i) for g in (1, 2) for i in range(3)]
    forward = {c: propose(first, c, archive) for c in ids}
    backward = {c: propose(second, c, archive) for c in reversed(ids)}  # another order
    assert {c: p.code for c, p in forward.items()} == {c: p.code for c, p in backward.items()}
    assert len({p.code for p in forward.values()}) == len(ids)  # different ids, different agents
    other_seed = propose(strategy(seed=1), ids[0], archive)
    assert other_seed.code != forward[ids[0]].code
    p = forward[ids[0]]
    assert p.parents == () and p.meta["space"] == "reasoning" and p.meta["seed"] == 0
    searched = {q.name for q in first.space.searched()}
    assert p.params and set(p.params) <= searched  # the drawn knobs, none of the fixed ones
    assert "roles.judge.temperature" not in p.params


def test_ask_opens_each_id_once_in_order_and_skips_what_the_archive_has(archive):
    s = strategy(width=2, generations=2)
    first = s.ask(3, archive)
    assert [x.candidate_id for x in first] == ["g001-00", "g001-01", "g002-00"]
    assert [(x.generation, x.index) for x in first] == [(1, 0), (1, 1), (2, 0)]
    assert [x.candidate_id for x in s.ask(5, archive)] == ["g002-01"]
    assert s.ask(5, archive) == []
    resumed = strategy(width=2, generations=2)
    resumed._asked.update({"g001-00", "g001-01"})  # as if archived before a restart
    assert [x.candidate_id for x in resumed.ask(2, archive)] == ["g002-00", "g002-01"]
    assert strategy(generations=0).ask(4, archive) == []


def test_the_builtin_is_registered_and_built_from_a_campaign_config():
    spec = get_strategy("random")
    config = load_config(ROOT / "experiments" / "random-local.toml")
    assert config.search.strategy == "random"
    settings = config.search.settings
    assert isinstance(settings, RandomSettings) and settings.width == 3
    built = spec.build(StrategyContext(settings=settings, config=config, gateway=None,
                                       suite=None))
    assert isinstance(built, RandomStrategy) and built.space.name == "reasoning"
    assert built.generations == config.search.generations


def test_random_settings_errors_name_the_field(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[search]\nstrategy = "random"\n[search.random]\nwidht = 2\n',
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=r"search\.random\.widht is not a known field\. "
                                          r"Did you mean 'width'"):
        load_config(path)
    path.write_text('[search]\nstrategy = "random"\n[search.random]\nspace = "nope.toml"\n',
                    encoding="utf-8")
    config = load_config(path)
    with pytest.raises(ConfigError, match="Search space nope.toml does not exist"):
        get_strategy("random").build(StrategyContext(
            settings=config.search.settings, config=config, gateway=None, suite=None))
