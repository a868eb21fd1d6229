"""Export: the standalone module (rendering, runtime parity, solve) and the MLflow pyfunc."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from test_export_helpers import (
    COT,
    DEFAULT_PARAMS,
    VOTE,
    FakeOpenAI,
    fresh_db,
    json_reply,
    make_campaign,
    score,
    sections_reply,
    shared_store,
)

from metasearch.errors import MetasearchError
from metasearch.interop.export import (
    CampaignInfo,
    campaign_info,
    export_py,
    python_literal,
    render_module,
    resolve_protocol,
)
from metasearch.runtime.info import Info
from metasearch.store.records import CandidateRecord, candidate_id, seed_id

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

HELPERS = (
    "import re\n"
    "\n"
    "def clean(text):\n"
    "    return re.sub(r'\\s+', ' ', text).strip()\n"
    "\n"
    "def forward(self, taskInfo):\n"
    "    '''Uses a helper and a string with \"\"\" quotes and a backslash \\\\.'''\n"
    "    agent = LLMAgentBase(['answer'], 'Direct')\n"
    "    (answer,) = agent([taskInfo], 'Answer.')\n"
    "    return self.clean(answer.content) + self.suffix()\n"
    "\n"
    "def suffix(self):\n"
    "    return ''\n"
)


def load_module(path: Path, name: str = "exported_agent") -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_{abs(hash(path))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rec(
    cid: str, name: str, val: dict[str, float] | None, generation: object = 1
) -> CandidateRecord:
    return CandidateRecord(
        id=cid,
        name=name,
        generation=generation,  # type: ignore[arg-type]
        status="ok" if val is not None else "failed",
        thought=f"thought of {name}",
        val=score(val) if val is not None else None,
        calls=3,
        tokens=300,
        cost_usd=0.01,
        wall_s=2.0,
    )


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A campaign with its own mlflow.db: seed CoT, a better Vote, a failed one.

    The CoT seed has the higher *test* score; --best must still pick Vote.
    """
    root = tmp_path_factory.mktemp("campaigns") / "export-camp"
    uri = fresh_db(tmp_path_factory, root)
    ids = [f"t{i}" for i in range(8)]
    make_campaign(
        root,
        [
            (rec(seed_id("cot"), "Chain-of-Thought", dict.fromkeys(ids, 0.5), "initial"), COT),
            (
                rec(
                    candidate_id(1, 0),
                    "Vote",
                    {t: 1.0 if i < 6 else 0.0 for i, t in enumerate(ids)},
                ),
                VOTE,
            ),
            (rec(candidate_id(1, 1), "Broken", None), None),
        ],
        uri=uri,
        params=DEFAULT_PARAMS,
        tests={
            seed_id("cot"): score(dict.fromkeys(ids, 1.0)),
            candidate_id(1, 0): score(dict.fromkeys(ids, 0.25)),
        },
    )
    return root


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize(
    "text",
    [COT, VOTE, HELPERS, 'x = """a"""\n', "x = '''b'''\ny = \"\"\"c\"\"\"\n", "a \\", 'ends "', ""],
)
def test_python_literal_round_trips(text: str) -> None:
    import ast

    assert ast.literal_eval(f"({python_literal(text)})") == text


def test_protocol_resolution_follows_the_gateway_rule() -> None:
    assert resolve_protocol({"models.task.model": "local/qwen"}) == "sections"
    assert resolve_protocol({"models.task.model": "openai/gpt-4o-mini"}) == "json"
    local_server = {
        "models.task.model": "openai/x",
        "models.task.api_base": "http://127.0.0.1:8000/v1",
    }
    assert resolve_protocol(local_server) == "sections"
    assert resolve_protocol({**local_server, "models.task.protocol": "json"}) == "json"
    assert (
        resolve_protocol({"runtime.protocol": "sections", "models.task.protocol": "json"})
        == "sections"
    )


def test_campaign_info_reads_the_tracking_store(campaign: Path) -> None:
    info = campaign_info(campaign)
    assert (info.name, info.suite, info.task_model) == (
        "export-camp",
        "arith",
        "openai/gpt-4o-mini",
    )
    assert info.protocol == "json" and info.answer_hint == "an integer" and info.max_tokens == 256


def test_export_py_picks_best_on_validation_and_writes_provenance(
    campaign: Path, tmp_path: Path
) -> None:
    path, chosen, _ = export_py(campaign, tmp_path / "agent.py", best=True)
    assert chosen.id == candidate_id(1, 0)  # best on validation, although CoT is better on test
    text = path.read_text()
    header = text.split('"""', 1)[0]
    for needle in (
        "Campaign: export-camp (suite arith)",
        "Agent id: g001-00",
        "Validation: 75.0%",
        "Test: 25.0%",
        "95% Bootstrap Confidence Interval",
        "task openai/gpt-4o-mini",
        "meta openai/gpt-4o",
        "Exported: ",
    ):
        assert needle in header, needle
    module = load_module(path)
    assert module.AGENT_SOURCE == VOTE
    assert module.PROTOCOL == "json" and module.ANSWER_HINT == "an integer"
    assert "In the metasearch package" not in text
    subprocess.run([sys.executable, "-m", "ruff", "check", "--quiet", str(path)], check=False)


def test_export_py_errors_are_user_errors(campaign: Path, tmp_path: Path) -> None:
    with pytest.raises(MetasearchError, match="no code file"):
        export_py(campaign, tmp_path / "a.py", agent_id=candidate_id(1, 1))
    with pytest.raises(MetasearchError, match="No candidate"):
        export_py(campaign, tmp_path / "a.py", agent_id="nope")
    with pytest.raises(MetasearchError, match="not a campaign directory"):
        export_py(tmp_path / "missing", tmp_path / "a.py", best=True)


# --------------------------------------------------------------------------- runtime parity


def _module_for(
    tmp_path: Path, protocol: str, code: str = COT, hint: str = "an integer"
) -> ModuleType:
    info = CampaignInfo(
        name="c", suite="arith", task_model="openai/fake", protocol=protocol, answer_hint=hint
    )
    text = render_module(rec("g001-00", "A", {"a": 1.0}), code, info)
    path = tmp_path / f"agent_{protocol}.py"
    path.write_text(text)
    return load_module(path)


@pytest.mark.parametrize("protocol", ["json", "sections"])
def test_prompts_match_metasearch_runtime(tmp_path: Path, protocol: str) -> None:
    from metasearch.runtime.agent_base import bind_agent_class
    from metasearch.runtime.context import RuntimeContext
    from metasearch.runtime.settings import AgentSettings

    module = _module_for(tmp_path, protocol)
    ours = bind_agent_class(
        RuntimeContext(
            AgentSettings(model="m", answer_hint="an integer", protocol=protocol), transport=None
        )
    )
    theirs = module.LLMAgentBase(["thinking", "answer"], "Critic", role="math teacher")
    mine = ours(["thinking", "answer"], "Critic", role="math teacher")
    theirs.id = mine.id = "ab12"
    task = Info("task", "User", "What is 2+3?", -1)
    prior = [Info("answer", repr(mine), "4", 0), Info("feedback", "Critic x", "wrong", -1)]
    exported = theirs.generate_prompt(
        [module.Info(*task), *[module.Info(*p) for p in prior]], "Fix it."
    )
    assert exported == mine.generate_prompt([task, *prior], "Fix it.")
    assert "(yourself)" in exported[1] and "### answer #1 by" in exported[1]


@pytest.mark.parametrize(
    "reply",
    [
        '{"thinking": "t", "answer": "5"}',
        'Sure!\n```json\n{"thinking": "a {brace} \\"q\\"", "answer": 5}\n```\nDone.',
        '{"Thinking": "t", "ANSWER": "5", "extra": 1}',
        "## thinking\nstep\n\n## answer\n5",
        "**thinking**: step\n**answer**: 5",
        "thinking: a\nanswer: 5\n",
        "no structure at all",
    ],
)
def test_reply_parsing_matches_metasearch(tmp_path: Path, reply: str) -> None:
    from metasearch.runtime.protocols import get_protocol

    module = _module_for(tmp_path, "json")
    fields = ["thinking", "answer"]
    for name in ("json", "sections", "answer_line"):
        assert module.parse_reply(name, reply, fields) == get_protocol(name).parse(reply, fields), (
            name
        )


def test_an_agents_own_protocol_and_reply_limit_match_metasearch(tmp_path: Path) -> None:
    """Rendered search-space trials pass protocol= and max_tokens= to LLMAgentBase."""
    from metasearch.runtime.agent_base import bind_agent_class
    from metasearch.runtime.context import RuntimeContext
    from metasearch.runtime.protocols import get_protocol
    from metasearch.runtime.settings import AgentSettings

    module = _module_for(tmp_path, "json")
    ours = bind_agent_class(RuntimeContext(
        AgentSettings(model="m", answer_hint="an integer", protocol="json"), transport=None))
    for fields in (["thinking", "answer"], ["answer"], ["feedback", "correct"]):
        theirs = module.LLMAgentBase(fields, "A", protocol="answer_line", max_tokens=64)
        mine = ours(fields, "A", protocol="answer_line", max_tokens=64)
        theirs.id = mine.id = "ab12"
        task = Info("task", "User", "What is 2+3?", -1)
        assert theirs.generate_prompt([module.Info(*task)], "Go.") == mine.generate_prompt(
            [task], "Go.")
    assert theirs.max_tokens == 64
    assert module.LLMAgentBase(["answer"], "B", max_tokens=10**6).max_tokens == module.MAX_TOKENS
    for reply in ("I add.\nFinal answer: 5", "**answer**: 5", "text only"):
        assert module.parse_reply("answer_line", reply, ["thinking", "answer"]) == get_protocol(
            "answer_line").parse(reply, ["thinking", "answer"])


# --------------------------------------------------------------------------- solving


@pytest.mark.parametrize(
    "protocol,reply", [("json", json_reply("5")), ("sections", sections_reply("5"))]
)
def test_solve_against_a_local_endpoint(tmp_path: Path, protocol: str, reply) -> None:
    module = _module_for(tmp_path, protocol, code=VOTE)
    with FakeOpenAI(reply) as server:
        answer = module.solve("What is 2+3?", model="openai/fake", api_base=server.url, api_key="x")
    assert answer == "5"
    assert len(server.requests) == 3  # three voters
    first = server.requests[0]
    assert first["model"] == "fake" and first["temperature"] == 0.8 and first["max_tokens"] == 1024
    assert ("response_format" in first) == (protocol == "json")
    assert first["messages"][1]["content"].startswith("# Your Task:\nWhat is 2+3?")


def test_an_exported_search_space_trial_solves_with_its_own_protocols(tmp_path: Path) -> None:
    from metasearch.search.spaces import load_space, render

    space = load_space("search_spaces/reasoning.toml")
    values = space.sample(PickLast())  # debate, refine rounds, answer_line for the solver
    assert values["roles.solver.protocol"] == "answer_line" and values["blocks.ensemble"] == "debate"
    module = _module_for(tmp_path, "json", code=render(space, values).code)
    def reply(messages: list[dict[str, str]]) -> str:
        if "JSON" in messages[0]["content"]:  # the roles left at the campaign's protocol
            return '{"thinking": "t", "answer": "5", "feedback": "fine", "correct": "True"}'
        return "I added them.\nanswer: 5"

    with FakeOpenAI(reply) as server:
        answer = module.solve("What is 2+3?", model="openai/fake", api_base=server.url, api_key="x")
    assert answer == "5"
    lines = [r for r in server.requests
             if "end your reply with exactly these line(s)" in r["messages"][0]["content"]]
    assert lines and all("response_format" not in r for r in lines)  # debaters and the judge
    debaters = [r for r in lines if "You are a helpful assistant." not in r["messages"][0]["content"]]
    assert len(debaters) == 6 and all(r["max_tokens"] == 256 for r in debaters)  # 3 agents x 2
    others = [r for r in server.requests if r not in lines]  # the campaign's protocol, json
    assert others and all("response_format" in r and r["max_tokens"] == 1024 for r in others)


class PickLast:
    """The last choice and the high end of every parameter."""

    def int(self, name, low, high, *, step=1, log=False):
        return high

    def float(self, name, low, high, *, step=None, log=False):
        return high

    def categorical(self, name, choices):
        return choices[-1]


def test_solve_repairs_once_and_binds_helpers(tmp_path: Path) -> None:
    replies = iter(["I think it is five.", '{"answer": "  5 \\n"}'])
    module = _module_for(tmp_path, "json", code=HELPERS)
    with FakeOpenAI(lambda _m: next(replies)) as server:
        answer = module.solve("q", model="openai/fake", api_base=server.url, api_key="x")
    assert answer == "5"
    repair = server.requests[1]["messages"]
    assert repair[2] == {"role": "assistant", "content": "I think it is five."}
    assert "does not contain a well-formed JSON object" in repair[3]["content"]


# --------------------------------------------------------------------------- MLflow pyfunc


@pytest.mark.slow
def test_pyfunc_round_trip(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import pandas as pd

    from metasearch.interop.export import export_mlflow

    uri, _root = shared_store(tmp_path_factory)
    camp = tmp_path_factory.mktemp("pyfunc") / "pyfunc-camp"
    make_campaign(
        camp,
        [(rec(seed_id("cot"), "Chain-of-Thought", {"a": 1.0, "b": 0.0}, "initial"), COT)],
        uri=uri,
        params=DEFAULT_PARAMS,
    )
    monkeypatch.setenv("FAKE_KEY", "x")
    with FakeOpenAI(json_reply("7")) as server:
        res = export_mlflow(
            camp,
            "pyfunc-agent",
            best=True,
            model="openai/fake",
            api_base=server.url,
            api_key_env="FAKE_KEY",
            tracking_uri=uri,
        )
        assert res.model_uri == "models:/pyfunc-agent/1" and res.record.id == seed_id("cot")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
        model = mlflow.pyfunc.load_model(res.model_uri)
        assert model.predict(["What is 3+4?", "And 1+6?"]) == ["7", "7"]
        assert model.predict(pd.DataFrame({"question": ["What is 3+4?"]})) == ["7"]
        assert len(server.requests) == 3
    run = mlflow.MlflowClient(tracking_uri=uri).get_run(res.run_id)
    assert run.data.tags["metasearch.role"] == "export"
    assert run.data.tags["metasearch.candidate_id"] == seed_id("cot")
    # the served model's code needs mlflow and litellm only
    import ast

    src = Path(__file__).parents[1] / "metasearch" / "interop" / "mlflow_pyfunc.py"
    tree = ast.parse(src.read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m.startswith("metasearch") for m in imported), imported
