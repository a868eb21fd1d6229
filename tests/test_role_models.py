"""Per-role task models: ``models.task.alternatives``, ``LLMAgentBase(model=)``, the host's
allow-list, the ``roles.NAME.model`` knob of search spaces, and standalone exports."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from test_export import load_module, rec
from test_export_helpers import FakeOpenAI
from test_runtime_fakes import FakeTransport, settings

from metasearch.campaign.build import build_bench
from metasearch.candidate.normalize import normalize_proposal
from metasearch.candidate.validate import validate_code
from metasearch.config import load_config
from metasearch.errors import ConfigError
from metasearch.execution.sandbox import SandboxLimits, SandboxRunner
from metasearch.execution.sandbox.launch import probe
from metasearch.interop.export import CampaignInfo, parse_alternatives, render_module
from metasearch.llm import ModelSettings, scripted_gateway
from metasearch.runtime.gateway_transport import GatewayTransport
from metasearch.runtime.loader import load_agent
from metasearch.runtime.settings import AgentSettings
from metasearch.search.registry import StrategyContext, get_strategy
from metasearch.search.spaces import check_space_models, load_space, render
from metasearch.suites.task import Task

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
BIG = "local/qwen2.5-coder-1.5b"
SMALL = "local/qwen2.5-coder-0.5b"
TWO_MODELS = f'[roles.solver]\nmodel = {{ kind = "categorical", choices = ["{SMALL}", "{BIG}"] }}\n'


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- config


def test_alternatives_are_validated_field_by_field(tmp_path):
    path = write(tmp_path, "c.toml", '[models.task]\nalternatives = ["gpt-4o", "local/nope", '
                 '{ model = "openai/x", colour = 1 }]\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert msg.startswith(f"Campaign config {path} has 3 invalid fields: ")
    assert "models.task.alternatives[0].model = 'gpt-4o' is invalid ('gpt-4o' names no provider" in msg
    assert "models.task.alternatives[1].model = 'local/nope' is invalid" in msg and BIG in msg
    assert "models.task.alternatives[2].colour is not a known field" in msg
    path = write(tmp_path, "c.toml", f'[models.task]\nalternatives = ["{SMALL}"]\n')
    with pytest.raises(ConfigError, match=r"models\.task\.alternatives = .* lists the task model"):
        load_config(path)
    path = write(tmp_path, "c.toml", f'[models.task]\nalternatives = ["{BIG}", "{BIG}"]\n')
    with pytest.raises(ConfigError, match="twice"):
        load_config(path)


def test_alternatives_are_names_or_tables_and_flatten_readably(tmp_path):
    path = write(tmp_path, "c.toml", f'[models.task]\nalternatives = ["{BIG}", '
                 '{ model = "openai/big", api_base = "http://127.0.0.1:9/v1", '
                 'input_usd_per_mtok = 2.0 }]\n')
    task = load_config(path).models.task
    assert task.allowed == (SMALL, BIG, "openai/big")
    assert task.alternatives[1].input_usd_per_mtok == 2.0
    flat = load_config(path).to_flat_params()["models.task.alternatives"]
    assert parse_alternatives(flat) == (BIG, "openai/big")
    # the quickstart allows the 1.5B for its optuna variant (README run 32); adas is unchanged
    assert load_config(ROOT / "experiments" / "quickstart.toml").models.task.allowed == (
        SMALL, BIG)
    assert load_config(ROOT / "experiments" / "random-local.toml").models.task.allowed == (
        SMALL, BIG)


def test_the_bench_routes_and_allows_each_alternative(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    suite = type("S", (), {"answer_hint": "an integer"})()
    models = {m: ModelSettings(protocol=p) for m, p in (("openai/small", "json"),
                                                         ("openai/big", "sections"))}
    with pytest.warns(Warning), build_bench(
            suite, task_model="openai/small", models=models, alternatives=["openai/big"],
            sandbox="none", cache_enabled=False) as bench:
        assert bench.settings.allowed == ("openai/small", "openai/big")
        assert bench.settings.alternatives == {"openai/big": "sections"}
        assert bench.runner._allowed_models == {"openai/small", "openai/big"}
        assert bench.gateway.resolve_protocol("openai/big") == "sections"


# --------------------------------------------------------------------------- runtime


AGENT = f"""
def forward(self, taskInfo):
    big = LLMAgentBase(["answer"], "Big", model="{BIG}")
    gpt = LLMAgentBase(["answer"], "ADAS", model="gpt-3.5-turbo")
    plain = LLMAgentBase(["answer"], "Plain")
    a = big([taskInfo], "x")[0]
    b = gpt([taskInfo], "x")[0]
    c = plain([taskInfo], "x")[0]
    return a.content + b.content + c.content
"""


def test_model_is_honoured_within_the_allowed_list_only():
    t = FakeTransport()
    agent = load_agent(AGENT, settings(model=SMALL, alternatives={BIG: "json"}), t)
    assert agent("What is 6*7?") == "424242"
    assert [r.model for r in t.requests] == [BIG, SMALL, SMALL]
    assert t.requests[0].response_format is not None  # the alternative's own protocol (json)
    assert t.requests[1].response_format is None  # the task model's (sections)
    t = FakeTransport()
    load_agent(AGENT, settings(model=SMALL), t)("What is 6*7?")
    assert [r.model for r in t.requests] == [SMALL] * 3  # nothing allowed: today's behaviour


def test_the_cache_and_ledger_see_the_model_used():
    gw = scripted_gateway(lambda req: "## answer\n7")
    try:
        s = settings(model="scripted/small", alternatives={"scripted/big": "sections"})
        code = ('def forward(self, taskInfo):\n'
                '    a = LLMAgentBase(["answer"], "A", model="scripted/big")([taskInfo], "x")[0]\n'
                '    b = LLMAgentBase(["answer"], "B")([taskInfo], "x")[0]\n'
                '    return a.content + b.content\n')
        assert load_agent(code, s, GatewayTransport(gw))("q") == "77"
        assert sorted(r.model for r in gw.backend.calls) == ["scripted/big", "scripted/small"]
        # without the alternative, both agents call the task model
        load_agent(code, settings(model="scripted/small"), GatewayTransport(gw))("q")
        assert [r.model for r in gw.backend.calls[2:]] == ["scripted/small"] * 2
    finally:
        gw.close()


def test_settings_survive_the_trip_to_the_worker():
    s = AgentSettings(model=SMALL, answer_hint="x", alternatives={BIG: "sections"})
    back = AgentSettings.from_json(s.to_json())
    assert back == s and back.model_for(BIG) == BIG and back.model_for("openai/gpt-4o") == SMALL


# --------------------------------------------------------------------------- the host


def _modes() -> list:
    uid = 61100
    return [pytest.param(m, marks=pytest.mark.skipif(
        probe(m, sys.executable, uid) is not None, reason=f"{m} unavailable"))
        for m in ("bwrap", "unshare")]


HOSTILE = (ROOT / "tests" / "hostile" / "rpc_other_model.py").read_text()


@pytest.mark.parametrize("mode", _modes())
def test_the_host_routes_only_the_allowed_models(mode):
    """A jailed agent that goes around LLMAgentBase gets the allowed models, nothing else."""
    gw = scripted_gateway(lambda req: '{"answer": "42"}')
    s = AgentSettings(model="scripted/small", answer_hint="an integer", protocol="json",
                      candidate="c", max_tokens=64, alternatives={"scripted/big": "json"})
    code = HOSTILE.replace("@@MODEL@@ ", "scripted/small ").replace(
        '"openai/gpt-4o", ', '"openai/gpt-4o", "scripted/big", "scripted/small", ')
    limits = SandboxLimits(task_timeout_s=20.0, candidate_timeout_s=40.0)
    try:
        with SandboxRunner(mode=mode, gateway=gw, limits=limits, uids=range(61100, 61104),
                           allowed_models=["scripted/small", "scripted/big"]) as runner:
            [outcome] = runner.run(code, [Task(id="t", question="q", answer="42")], s)
    finally:
        gw.close()
    # refused: the meta model, a made-up provider, a paid model, a near miss of the task model
    assert outcome.answer == "refused 4 of 6", outcome
    assert sorted(r.model for r in gw.backend.calls) == ["scripted/big", "scripted/small"]


# --------------------------------------------------------------------------- spaces


def test_a_model_knob_renders_as_a_keyword_that_normalises_unchanged(tmp_path):
    space = load_space(write(tmp_path, "s.toml", '[space]\nname = "m"\n' + TWO_MODELS))
    assert space.models() == {"roles.solver.model": (SMALL, BIG)}
    values = {"blocks.answerer": "chain_of_thought", "blocks.ensemble": "none",
              "blocks.refine_rounds": 0, "blocks.role_assignment": "none",
              "roles.solver.temperature": 0.5, "roles.solver.protocol": "campaign",
              "roles.solver.instruction": "default", "roles.solver.model": BIG}
    agent = render(space, values)
    assert f'model="{BIG}"' in agent.code and f"model {BIG}" in agent.thought
    normalised = normalize_proposal(agent.code)
    assert (normalised.code, normalised.changes, normalised.findings) == (agent.code, [], [])
    assert validate_code(agent.code) == []
    fixed = load_space(write(tmp_path, "f.toml", '[space]\nname = "f"\n[roles.solver]\n'
                             'model = "campaign"\n'))
    assert "model=" not in render(fixed, {**values, "roles.solver.model": "campaign"}).code


def test_model_knobs_are_drawn_last_so_other_draws_keep_their_values():
    space = load_space("reasoning")
    names = [p.name for p in space.params]
    first_model = min(i for i, n in enumerate(names) if n.endswith(".model"))
    assert all(n.endswith(".model") for n in names[first_model:])
    assert set(space.models()) == {f"roles.{r}.model" for r in ("solver", "coder", "judge", "critic")}


def test_a_space_whose_models_the_campaign_does_not_allow_is_refused(tmp_path):
    space_path = write(tmp_path, "s.toml", '[space]\nname = "m"\n' + TWO_MODELS)
    config_path = write(tmp_path, "c.toml", '[search]\nstrategy = "random"\n[search.random]\n'
                        f'space = "{space_path}"\n')
    config = load_config(config_path)
    with pytest.raises(ConfigError) as err:
        check_space_models(load_space(space_path), config)
    msg = str(err.value)
    assert msg.startswith(f"Search space {space_path}: roles.solver.model can choose \"{BIG}\"")
    assert "models.task.alternatives" in msg and "\n" not in msg
    ctx = StrategyContext(settings=config.search.settings, config=config, gateway=None, suite=None)
    with pytest.raises(ConfigError, match=r"roles\.solver\.model"):
        get_strategy("random").build(ctx)  # the random strategy checks at build time
    allowed = load_config(config_path, {"models.task.alternatives": [BIG]})
    check_space_models(load_space(space_path), allowed)


# --------------------------------------------------------------------------- export


def test_an_exported_agent_calls_the_model_its_role_names(tmp_path):
    code = ('def forward(self, taskInfo):\n'
            '    big = LLMAgentBase(["answer"], "Big", model="openai/big")\n'
            '    small = LLMAgentBase(["answer"], "Small", model="gpt-3.5-turbo")\n'
            '    a = big([taskInfo], "x")[0]\n'
            '    return small([taskInfo, a], "y")[0]\n')
    info = CampaignInfo(name="c", suite="arith", task_model="openai/small", protocol="sections",
                        answer_hint="an integer", alternatives=("openai/big", BIG))
    path = tmp_path / "agent.py"
    path.write_text(render_module(rec("g001-00", "Two", {"a": 1.0}), code, info))
    module = load_module(path)
    assert module.ALTERNATIVES == ("openai/big", BIG)
    with FakeOpenAI(lambda messages: "## answer\n42") as server:
        assert module.solve("q", model="openai/small", api_base=server.url, api_key="x") == "42"
        assert [r["model"] for r in server.requests] == ["big", "small"]
    local = code.replace("openai/big", BIG)
    path.write_text(render_module(rec("g001-00", "Two", {"a": 1.0}), local, info))
    module = load_module(path, "exported_local")
    with pytest.raises(RuntimeError, match="embedded models.*models="):
        module.solve("q", model="openai/small", api_key="x")
    with FakeOpenAI(lambda messages: "## answer\n42") as server:
        module.solve("q", model="openai/small", models={BIG: "openai/mapped"},
                     api_base=server.url, api_key="x")
        assert [r["model"] for r in server.requests] == ["mapped", "small"]
