"""The optuna strategy: pruning on minibatches, resume after kill -9, storage, settings, config."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import optuna
import pytest
from kill9_kit import kill_and_resume, run_to_end, starter, summary
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).parent))
import optuna_kit as kit  # noqa: E402

from metasearch.config import load_config  # noqa: E402
from metasearch.errors import ConfigError, DataError  # noqa: E402
from metasearch.search.optuna import (  # noqa: E402
    OptunaSettings,
    OptunaStrategy,
    objective_values,
    open_study,
)
from metasearch.search.optuna.storage import read_location, redact  # noqa: E402
from metasearch.search.registry import StrategyContext, get_strategy  # noqa: E402
from metasearch.store.archive import Archive  # noqa: E402
from metasearch.store.records import CandidateRecord, SplitScore  # noqa: E402
from metasearch.testing.campaigns import comparable  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KIT = Path(kit.__file__)
child = starter(KIT)


def test_wilcoxon_prunes_a_trial_worse_than_the_best_earlier_one_on_the_same_tasks(tmp_path):
    result, strategy = kit.run(tmp_path / "c", kit.ColdModel())
    records = {r.id: r for r in result.records}
    pruned = [r for r in result.records if r.status == "pruned"]
    assert pruned, "a hot (always wrong) trial after a cold (always right) one was not pruned"
    for r in pruned:
        assert r.meta["params"]["roles.solver.temperature"] == 0.9
        assert r.val.n == 6 and r.val.mean == 0.0  # two minibatches of 3, then the test
        assert "Wilcoxon signed-rank test against trial" in r.reason
        assert r.meta["calls_saved_by_pruning"] == r.calls  # half the tasks were skipped
        assert r.generation > 1  # generation 1 has no earlier trial to compare with
    # generation 1's hot trials ran to the end: nothing earlier to compare with
    assert all(r.status == "ok" for r in records.values() if r.generation == 1)
    trials = strategy.study.get_trials()
    by_cid = {t.user_attrs["candidate_id"]: t for t in trials}
    assert sorted(by_cid) == sorted(r.id for r in result.records if not r.is_seed)
    for cid, t in by_cid.items():
        r = records[cid]
        assert t.state == (TrialState.PRUNED if r.status == "pruned" else TrialState.COMPLETE)
        assert t.params == r.meta["params"] and r.meta["trial"] == t.number
        assert list(t.intermediate_values.values()) == list(r.val.scores.values())
        if t.state == TrialState.COMPLETE:
            assert t.value == pytest.approx(r.val.mean)
    assert "Pruning saved an estimated" in (tmp_path / "c" / "report.md").read_text()


def test_pruning_off_evaluates_every_task(tmp_path):
    opt = kit.settings().model_copy(update={"pruner": "none"})
    result, _ = kit.run(tmp_path / "c", kit.ColdModel(), opt=opt)
    assert not [r for r in result.records if r.status == "pruned"]
    assert all(r.val.n == 12 for r in result.records)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return run_to_end(child, tmp_path_factory.mktemp("ref") / "c")


def study_of(d: Path) -> optuna.Study:
    loc = read_location(d)
    return optuna.load_study(study_name=loc.study, storage=kit_storage(loc.storage))


def kit_storage(path: str):
    from metasearch.search.optuna.storage import open_storage

    return open_storage(path)


@pytest.mark.parametrize(("at", "parallel"), [(0.05, 1), (0.5, 1), (0.3, 3), (0.8, 3)])
def test_resume_after_kill_9_replays_the_study_without_rebilling(tmp_path, reference, at,
                                                                 parallel):
    """kill -9 from outside after a fraction ``at`` of the reference run's calls."""
    d = tmp_path / "c"
    kill_and_resume(child, d, reference, at=at, parallel=parallel)
    trials = study_of(d).get_trials()
    ids = [t.user_attrs.get("candidate_id") for t in trials if t.state != TrialState.FAIL]
    assert sorted(ids) == sorted(r[0] for r in summary(d) if not r[0].startswith("seed-"))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
               for t in trials)
    ref = {t.user_attrs["candidate_id"]: (t.params, t.state) for t in study_of(reference).trials}
    assert {t.user_attrs["candidate_id"]: (t.params, t.state) for t in trials
            if t.state != TrialState.FAIL} == ref


def test_an_rdb_url_holds_the_study_and_a_bad_one_is_a_clear_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    opt = kit.settings().model_copy(update={"storage": url})
    kit.run(tmp_path / "c", kit.ColdModel(), opt=opt, generations=1)
    loc = read_location(tmp_path / "c")
    assert loc.storage == url and not (tmp_path / "c" / "optuna.journal").exists()
    assert len(optuna.load_study(study_name=loc.study, storage=url).trials) == 3
    bad = kit.settings().model_copy(update={"storage": "nosuchdb://x/y"})
    with pytest.raises(ConfigError, match=r"Cannot open the Optuna storage nosuchdb://x/y"):
        kit.run(tmp_path / "d", kit.ColdModel(), opt=bad)
    assert redact("postgresql://me:secret@host/db") == "postgresql://me:***@host/db"
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "optuna.json").write_text(json.dumps(
        {"storage": "postgresql://me:***@host/db", "study": "s"}))
    with pytest.raises(DataError, match="pass the full URL with --storage"):
        read_location(tmp_path / "e")


def test_a_database_holding_an_mlflow_store_is_refused_with_the_fix(tmp_path):
    """Optuna and MLflow both keep Alembic's alembic_version table: in one schema, Optuna
    refuses to start; the error says why and how to give the study its own schema."""
    import sqlite3

    from metasearch.search.optuna.storage import open_storage

    path = tmp_path / "shared.db"
    with sqlite3.connect(path) as conn:  # what an MLflow backend store leaves there
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES ('dc11669786a5')")
    with pytest.raises(ConfigError, match=r"another Alembic user .*-csearch_path%3Doptuna"):
        open_storage(f"sqlite:///{path}")


def test_a_resumed_study_keeps_its_objectives(tmp_path):
    kit.run(tmp_path / "c", kit.ColdModel(), generations=1)
    two = kit.settings().model_copy(update={"objectives": ["score", "cost"]})
    with pytest.raises(ConfigError, match=r"optimises 1 objective\(s\).*Keep the objectives"):
        kit.run(tmp_path / "c", kit.ColdModel(), opt=two)


def test_two_objectives_tell_score_and_cost_per_task(tmp_path):
    opt = kit.settings().model_copy(update={"objectives": ["score", "cost"], "cost": "calls"})
    result, strategy = kit.run(tmp_path / "c", kit.ColdModel(), opt=opt, generations=2)
    assert not [r for r in result.records if r.status == "pruned"]  # pruners are 1-objective
    for t in strategy.study.trials:
        r = next(x for x in result.records if x.id == t.user_attrs["candidate_id"])
        assert t.values == [pytest.approx(r.val.mean), pytest.approx(r.calls / r.val.n)]
    rec = CandidateRecord(id="g001-00", name="x", generation=1, status="ok", calls=30,
                          tokens=900, cost_usd=0.03,
                          val=SplitScore(mean=0.5, ci_low=0.2, ci_high=0.8, n=10))
    usd = OptunaSettings(objectives=["score", "cost"])
    assert objective_values(rec, usd) == [0.5, pytest.approx(0.003)]
    assert objective_values(rec, usd.model_copy(update={"cost": "tokens"})) == [0.5, 90.0]
    assert objective_values(rec, OptunaSettings()) == [0.5]


@pytest.mark.parametrize(("table", "message"), [
    ('sampler = "nsga2"', r'sampler = "nsga2" needs objectives = \["score", "cost"\]'),
    ('objectives = ["cost"]', r'objectives must start with "score"'),
    ('objectives = ["score", "score"]', r"lists an objective twice"),
    ('objectives = ["accuracy"]', r"search\.optuna\.objectives"),
    ("width = 0", r"search\.optuna\.width"),
    ("p_threshold = 1.5", r"search\.optuna\.p_threshold"),
    ('pruner = "median"', r"search\.optuna\.pruner"),
])
def test_settings_errors_name_the_field(tmp_path, table, message):
    path = tmp_path / "c.toml"
    path.write_text(f'[search]\nstrategy = "optuna"\n[search.optuna]\n{table}\n')
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_built_from_a_campaign_config_with_its_study_in_the_campaign_directory(tmp_path):
    config = load_config(ROOT / "experiments" / "structured-local.toml")
    assert config.search.strategy == "optuna"
    ctx = StrategyContext(settings=config.search.settings, config=config, gateway=None,
                          suite=None, directory=tmp_path)
    built = get_strategy("optuna").build(ctx)
    assert isinstance(built, OptunaStrategy) and built.space.name == "reasoning"
    loc = read_location(tmp_path)
    assert Path(loc.storage) == tmp_path / "optuna.journal"
    again = get_strategy("optuna").build(ctx)  # a resumed campaign opens the same study
    assert again.study.study_name == built.study.study_name
    assert len(again.study.trials) == len(built.study.trials)  # warm start enqueued once


def test_a_study_with_a_name_the_storage_lacks_is_a_clear_error(tmp_path):
    opt = kit.settings()
    kit.run(tmp_path / "c", kit.ColdModel(), opt=opt, generations=1)
    (tmp_path / "c" / "optuna.json").write_text(json.dumps(
        {"storage": str(tmp_path / "c" / "optuna.journal"), "study": "gone"}))
    with pytest.raises(ConfigError, match="names the study 'gone', which is not in the storage"):
        open_study(tmp_path / "c", opt, None)  # type: ignore[arg-type]


def test_max_search_calls_stops_new_trials_and_still_runs_the_final_test(tmp_path):
    full, _ = kit.run(tmp_path / "full", kit.ColdModel())
    seed_calls = next(r.calls for r in full.records if r.is_seed)
    cap = seed_calls + 20  # a few trials' worth after the seed
    result, _ = kit.run(tmp_path / "capped", kit.ColdModel(), max_search_calls=cap)
    generated = [r for r in result.records if not r.is_seed]
    assert 0 < len(generated) < len([r for r in full.records if not r.is_seed])
    assert "budget.max_search_calls = " in result.time_limit
    assert not result.stopped and result.best is not None and result.best.test is not None
    # what ran is what the uncapped campaign ran first (the trials do not depend on the cap)
    ref = comparable(full.records)
    assert [k[:-1] for k in comparable(result.records)][1:] == [k[:-1] for k in ref[1:len(generated) + 1]]


def test_the_warm_start_enqueues_the_seed_configurations_first(tmp_path):
    from metasearch.search.spaces import load_space

    space = load_space("search_spaces/reasoning.toml")
    names = [w.name for w in space.warm_start]
    assert names == ["chain_of_thought", "self_consistency", "llm_debate", "self_refine",
                     "step_back_abstraction", "role_assignment", "program_of_thought"]
    opt = OptunaSettings(width=4)
    study = open_study(tmp_path, opt, space)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs["warm_start"] for t in waiting] == names
    strategy = OptunaStrategy(space=space, study=study, settings=opt, generations=2)
    with Archive.open(tmp_path / "archive") as archive:
        slots = strategy.ask(4, archive)
    assert [s.candidate_id for s in slots] == ["g001-00", "g001-01", "g001-02", "g001-03"]
    for slot, ws in zip(slots, space.warm_start, strict=False):
        values = strategy._values[slot.candidate_id]
        assert {k: values[k] for k in ws.params} == ws.params
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 3  # the next generation's
    off = open_study(tmp_path / "off", opt.model_copy(update={"warm_start": False}), space)
    assert not off.trials


@pytest.mark.parametrize(("entry", "message"), [
    ('name = "a"\nparams = { "blocks.nope" = 1 }', r"warm_start\[0\] \(a\)\.params names 'blocks\.nope'"),
    ('name = "a"\nparams = { "blocks.refine_rounds" = 9 }', r"refine_rounds = 9, a value outside"),
    ('name = "a"\nparams = { "blocks.ensemble" = "none", "debate.agents" = 2 }',
     r"gives debate\.agents, which exists only when blocks\.ensemble is 'debate'"),
])
def test_a_bad_warm_start_names_the_entry_and_the_parameter(tmp_path, entry, message):
    from metasearch.search.spaces import load_space

    path = tmp_path / "s.toml"
    path.write_text('[space]\nname = "s"\ndescription = "d"\n[blocks]\n'
                    'refine_rounds = { kind = "int", low = 0, high = 2 }\n'
                    'ensemble = { kind = "categorical", choices = ["none", "debate"] }\n'
                    '[debate]\nagents = { kind = "int", low = 2, high = 3 }\n'
                    "[[warm_start]]\n" + entry + "\n")
    with pytest.raises(ConfigError, match=message):
        load_space(path)
