"""``build_campaign``: clear one-paragraph errors before anything starts; a failed build cleans up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from metasearch.campaign.build import build_campaign
from metasearch.config import load_config
from metasearch.errors import ConfigError, MetasearchError
from metasearch.store.archive import Archive

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

TINY = """
[suite]
name = "arith"
n_val = 2
n_test = 2
[search]
generations = 1
seeds = ["chain_of_thought"]
[run]
sandbox = "none"
"""


def config(tmp_path: Path, **overrides):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return load_config(path, {"run.out": str(tmp_path / "out"), **overrides})


def one_paragraph(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and len(text) < 600
    return text


def test_an_existing_campaign_needs_resume(tmp_path):
    cfg = config(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "archive.jsonl").write_text('{"v": 1, "kind": "state"}\n')
    with pytest.raises(ConfigError) as e:
        build_campaign(cfg)
    assert "already holds a campaign" in one_paragraph(e.value) and "--resume" in str(e.value)


def test_resume_without_records_builds_like_a_new_campaign(tmp_path):
    # past the resume check to the next one (an unknown seed), nothing written
    with pytest.raises(ConfigError) as e:
        build_campaign(config(tmp_path, **{"search.seeds": ["nope"]}), resume=True)
    assert "nope" in one_paragraph(e.value)
    assert not (tmp_path / "out").exists()


def test_resume_without_records_of_a_different_campaign_refuses(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "archive.jsonl").write_text("")
    (tmp_path / "out" / "config.json").write_text('{"suite.name": "gsm8k"}')
    with pytest.raises(ConfigError) as e:
        build_campaign(config(tmp_path), resume=True)
    assert "suite.name was 'gsm8k', now 'arith'" in one_paragraph(e.value)


def test_unknown_seed_names_the_available_ones(tmp_path):
    with pytest.raises(ConfigError) as e:
        build_campaign(config(tmp_path, **{"search.seeds": ["chain_of_thought", "nope"]}))
    text = one_paragraph(e.value)
    assert "nope" in text and "self_consistency" in text
    assert not (tmp_path / "out").exists()


def test_unknown_suite_names_the_known_ones(tmp_path):
    with pytest.raises(ConfigError) as e:
        build_campaign(config(tmp_path, **{"suite.name": "nosuch"}))
    assert "nosuch" in one_paragraph(e.value) and "arith" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_a_failed_build_releases_the_campaign_lock(tmp_path, monkeypatch):
    monkeypatch.delenv("METASEARCH_TEST_NO_SUCH_KEY", raising=False)
    cfg = config(tmp_path, **{
        "models.task.model": "openai/gpt-4o-mini",
        "models.task.api_key_env": "METASEARCH_TEST_NO_SUCH_KEY",
    })
    with pytest.raises(MetasearchError) as e:
        build_campaign(cfg)
    assert "METASEARCH_TEST_NO_SUCH_KEY" in str(e.value)
    Archive.open(tmp_path / "out").close()  # not locked by the failed build


def test_campaigns_share_the_user_weights_but_keep_their_own_response_cache(tmp_path, monkeypatch):
    from metasearch.campaign.build import build_gateway
    from metasearch.llm.local import model_path

    monkeypatch.setenv("METASEARCH_CACHE_DIR", str(tmp_path / "user"))
    gateways = [build_gateway(cache_dir=tmp_path / c / "cache") for c in ("a", "b")]
    try:
        paths = {model_path("local/qwen2.5-coder-0.5b", g.settings) for g in gateways}
        assert len(paths) == 1 and paths.pop().parent == tmp_path / "user" / "models"
        assert [g.settings.cache_dir for g in gateways] == [
            tmp_path / "a" / "cache", tmp_path / "b" / "cache"]
    finally:
        for g in gateways:
            g.close()


def test_resume_refuses_another_suite_or_task_model_but_allows_more_generations(tmp_path):
    from metasearch.campaign.build import check_resume_config, close_campaign

    campaign = build_campaign(config(tmp_path, **{"search.generations": 1}))
    close_campaign(campaign)
    out = tmp_path / "out"
    stored = (out / "config.json").read_text()
    assert '"search.generations": "1"' in stored
    check_resume_config(out, config(tmp_path, **{"search.generations": 4, "budget.max_usd": 2.0}))
    for field, value in (("suite.n_val", 3), ("models.task.temperature", 0.9)):
        with pytest.raises(ConfigError) as e:
            check_resume_config(out, config(tmp_path, **{field: value}))
        text = one_paragraph(e.value)
        assert field in text and "--out NEW_DIR" in text and str(out) in text


def test_resume_compares_with_config_toml_for_campaigns_without_config_json(tmp_path):
    from metasearch.campaign.build import check_resume_config

    out = tmp_path / "old"
    out.mkdir()
    (out / "config.toml").write_text(TINY)
    check_resume_config(out, config(tmp_path))
    with pytest.raises(ConfigError, match="suite.seed was '0', now '7'"):
        check_resume_config(out, config(tmp_path, **{"suite.seed": 7}))
