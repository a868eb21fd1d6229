"""Campaign config: shipped experiments, overrides, and field-level errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from metasearch.config import (
    DEFAULT_META_MODEL,
    DEFAULT_TASK_MODEL,
    CampaignConfig,
    load_config,
    parse_override,
)
from metasearch.errors import ConfigError
from metasearch.search.registry import strategy_names

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def error_of(path: Path, overrides: dict | None = None) -> str:
    with pytest.raises(ConfigError) as ei:
        load_config(path, overrides)
    msg = str(ei.value)
    assert "\n\n" not in msg  # one paragraph
    return msg


@pytest.mark.parametrize(
    "name", sorted(p.name for p in EXPERIMENTS.glob("*.toml")) or ["quickstart.toml"]
)
def test_shipped_experiments_parse(name: str) -> None:
    cfg = load_config(EXPERIMENTS / name)
    assert cfg.search.strategy in strategy_names()
    assert cfg.search.settings is not None  # its [search.NAME] table validates
    assert cfg.run.out.startswith("runs/")


def test_shipped_set_is_complete() -> None:
    names = {p.stem for p in EXPERIMENTS.glob("*.toml")}
    assert {"quickstart", "arith-local", "mgsm", "gsm8k", "drop"} <= names


def test_quickstart_is_local_and_tiny() -> None:
    cfg = load_config(EXPERIMENTS / "quickstart.toml")
    assert cfg.suite.name == "arith"
    assert cfg.models.meta.model.startswith("local/")
    assert cfg.models.task.model.startswith("local/")
    assert 1 <= cfg.search.generations <= 2
    assert cfg.search.settings.reflexion_rounds <= 1
    assert isinstance(cfg.search.seeds, list) and len(cfg.search.seeds) <= 4
    assert cfg.suite.n_val <= 16 and cfg.suite.n_test <= 32
    # the search time limit is what keeps the worst case under ten minutes (README)
    assert cfg.budget.max_search_minutes is not None and cfg.budget.max_search_minutes <= 5


def test_arith_local_meets_campaign_size() -> None:
    cfg = load_config(EXPERIMENTS / "arith-local.toml")
    assert cfg.search.generations >= 3
    assert cfg.suite.n_val >= 30 and cfg.suite.n_test >= 60


@pytest.mark.parametrize("name", ["mgsm", "gsm8k", "drop"])
def test_benchmark_configs_take_a_data_path(name: str) -> None:
    cfg = load_config(EXPERIMENTS / f"{name}.toml", {"suite.data": "/data/x"})
    assert cfg.suite.name == name
    assert cfg.suite.data_path == Path("/data/x")


def test_empty_file_gives_defaults_and_out_from_stem(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "", "my-campaign.toml"))
    assert cfg.models.meta.model == DEFAULT_META_MODEL
    assert cfg.models.task.model == DEFAULT_TASK_MODEL
    assert cfg.run.out == "runs/my-campaign"
    assert cfg.search.seeds == "all"


def test_role_defaults_survive_a_partial_table(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, '[models.meta]\ntemperature = 0.3\n[models.task]\nmodel = "openai/x"\n')
    )
    assert cfg.models.meta.model == DEFAULT_META_MODEL
    assert cfg.models.meta.temperature == 0.3
    assert cfg.models.task.model == "openai/x"
    assert cfg.models.task.max_tokens == 512


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    msg = error_of(tmp_path / "nope.toml")
    assert "nope.toml" in msg and "does not exist" in msg


def test_directory_is_an_error(tmp_path: Path) -> None:
    assert "is a directory" in error_of(tmp_path)


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    p = write(tmp_path, "[suite]\nname = arith\n")
    msg = error_of(p)
    assert str(p) in msg and "line 2" in msg


def test_unknown_field_suggests_closest(tmp_path: Path) -> None:
    p = write(tmp_path, "[search]\ngeneratons = 3\n")
    msg = error_of(p)
    assert str(p) in msg
    assert "search.generatons" in msg
    assert "'generations'" in msg


def test_unknown_section(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "[serach]\ngenerations = 3\n"))
    assert "serach" in msg and "'search'" in msg


def test_unknown_nested_model_table(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, '[models.metta]\nmodel = "x"\n'))
    assert "models.metta" in msg and "'meta'" in msg


def test_wrong_type_names_field_value_and_expectation(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, '[search]\ngenerations = "3"\n'))
    assert "search.generations" in msg and "'3'" in msg and "integer" in msg


def test_out_of_range(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "[search.adas]\nreflexion_rounds = 3\n"))
    assert "search.adas.reflexion_rounds = 3" in msg and "0 to 2" in msg


def test_search_time_limit_is_minutes_and_not_negative(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "[budget]\nmax_search_minutes = 4\n")).budget.max_search_minutes == 4.0
    msg = error_of(write(tmp_path, "[budget]\nmax_search_minutes = -1\n"))
    assert "budget.max_search_minutes = -1" in msg and "minutes" in msg


def test_literal_lists_allowed_values(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, '[run]\nsandbox = "docker"\n'))
    assert "run.sandbox" in msg and "'docker'" in msg
    for allowed in ("bwrap", "unshare", "none", "auto"):
        assert allowed in msg


def test_several_errors_in_one_paragraph(tmp_path: Path) -> None:
    msg = error_of(
        write(tmp_path, "[search]\ngenerations = -1\nseeds = 3\n[local]\nn_parallel = 0\n")
    )
    assert "3 invalid fields" in msg
    assert "search.generations" in msg and "search.seeds" in msg and "local.n_parallel" in msg


def test_seed_names(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[search]\nseeds = ["chain_of_thought.py", "debate"]\n'))
    assert cfg.search.seeds == ["chain_of_thought", "debate"]
    assert "search.seeds" in error_of(write(tmp_path, "[search]\nseeds = []\n"))
    assert "search.seeds" in error_of(write(tmp_path, '[search]\nseeds = ["../etc"]\n'))
    cfg = load_config(write(tmp_path, '[search]\ntest_seeds = ["program_of_thought.py"]\n'))
    assert cfg.search.test_seeds == ["program_of_thought"]
    assert load_config(write(tmp_path, "[search]\ntest_seeds = []\n")).search.test_seeds == []
    assert "search.test_seeds" in error_of(write(tmp_path, '[search]\ntest_seeds = ["a b"]\n'))


def test_api_key_env_is_a_variable_name(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, '[models.task]\napi_key_env = "sk-123 abc"\n'))
    assert "models.task.api_key_env" in msg


def test_overrides_merge_before_validation(tmp_path: Path) -> None:
    p = write(tmp_path, "[search]\ngenerations = 2\n")
    cfg = load_config(p, {"search.generations": 7, "budget.max_usd": 1.5, "run.out": "x"})
    assert cfg.search.generations == 7
    assert cfg.budget.max_usd == 1.5
    assert cfg.run.out == "x"


def test_bad_override_is_named_as_override(tmp_path: Path) -> None:
    p = write(tmp_path, "")
    msg = error_of(p, {"search.generations": -4})
    assert "search.generations" in msg and "override" in msg and str(p) in msg
    assert "'minibatch'" in error_of(p, {"pruning.minbatch": 3})


def test_override_through_a_value(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, ""), {"search.generations": 1, "search.generations.x": 1})
    assert "search.generations" in msg


def test_parse_override() -> None:
    assert parse_override("search.generations=5") == ("search.generations", 5)
    assert parse_override("budget.max_usd = 2.5") == ("budget.max_usd", 2.5)
    assert parse_override("pruning.enabled=false") == ("pruning.enabled", False)
    assert parse_override("suite.data=/tmp/a b.tsv") == ("suite.data", "/tmp/a b.tsv")
    assert parse_override('search.seeds=["a", "b"]') == ("search.seeds", ["a", "b"])
    with pytest.raises(ConfigError):
        parse_override("nothing")


def test_frozen(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""))
    with pytest.raises(ValidationError):
        cfg.search.generations = 9  # type: ignore[misc]


def test_flat_params() -> None:
    cfg = CampaignConfig()
    flat = cfg.to_flat_params()
    assert all(isinstance(v, str) for v in flat.values())
    assert flat["search.generations"] == str(cfg.search.generations)
    assert flat["models.meta.model"] == DEFAULT_META_MODEL
    assert flat["pruning.enabled"] == "true"
    assert flat["budget.max_usd"] == ""
    assert len(flat) > 30


def test_quickstart_seeds_exist() -> None:
    cfg = load_config(EXPERIMENTS / "quickstart.toml")
    seeds_dir = EXPERIMENTS.parent / "archive"
    assert isinstance(cfg.search.seeds, list)
    for name in cfg.search.seeds:
        assert (seeds_dir / f"{name}.py").is_file(), name


def test_strategy_settings_live_in_their_own_table(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[search.adas]\nattempts = 4\n[run]\nparallel_candidates = 3\n"))
    assert cfg.search.settings.attempts == 4 and cfg.run.parallel_candidates == 3
    flat = cfg.to_flat_params()
    assert flat["search.adas.attempts"] == "4" and "search.attempts" not in flat
    assert not cfg.notes


def test_old_adas_fields_under_search_still_work_with_a_note(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[search]\nattempts = 3\ndebug_rounds = 0\n"))
    assert cfg.search.settings.attempts == 3 and cfg.search.settings.debug_rounds == 0
    assert len(cfg.notes) == 1 and "[search.adas]" in cfg.notes[0]
    assert "search.attempts" in cfg.notes[0] and "search.debug_rounds" in cfg.notes[0]
    # an override in the old place is moved too
    cfg = load_config(write(tmp_path, ""), {"search.attempts": 2})
    assert cfg.search.settings.attempts == 2


def test_an_old_field_in_both_places_is_an_error(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "[search]\nattempts = 3\n[search.adas]\nattempts = 2\n"))
    assert "both under [search] and under [search.adas]" in msg


def test_unknown_strategy_lists_the_known_ones(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, '[search]\nstrategy = "nope"\n'))
    assert "'nope' is not a known search strategy" in msg and "adas" in msg
    assert "metasearch.strategies" in msg and "\n" not in msg


def test_a_misplaced_strategy_field_says_where_it_belongs(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, '[search]\nstrategy = "adas"\nproposals_per_generation = 2\n'))
    assert "search.proposals_per_generation is not a known field" in msg
    assert "put it under [search.adas]" in msg
