"""Both clients of the gateway, the fast path and litellm, against one fake server.

Each path passes the whole backend contract on its own, and for every
scenario both give the same replies, send the same requests and book the
same ledger entries.
"""

from __future__ import annotations

import pytest

from metasearch.llm import Gateway, GatewaySettings, LLMRequest, ModelSettings
from metasearch.llm.backend import RateLimited, retry_after_s
from metasearch.llm.transport import choose_transport
from metasearch.testing import BackendContract
from metasearch.testing.backend_contract import SCENARIOS, Scenario, run_scenario
from metasearch.testing.fake_openai import FakeOpenAIServer


class TestFastPath(BackendContract):
    transport = "auto"
    expect = "http"


class TestLiteLLMPath(BackendContract):
    transport = "litellm"
    expect = "litellm"


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer() as s:
        yield s


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_both_paths_give_identical_outcomes(scenario: Scenario, server, tmp_path) -> None:
    fast = run_scenario(scenario, server, transport="auto", cache_dir=tmp_path / "fast")
    slow = run_scenario(scenario, server, transport="litellm", cache_dir=tmp_path / "litellm")
    assert (fast.transport, slow.transport) == ("http", "litellm")
    assert fast.comparable() == slow.comparable()


def test_hosted_vllm_takes_the_fast_path_with_the_same_request(server, tmp_path) -> None:
    scenario = Scenario("hosted_vllm", lambda o: None, model="hosted_vllm/org/fake-7b")
    fast = run_scenario(scenario, server, transport="auto")
    slow = run_scenario(scenario, server, transport="litellm")
    assert (fast.transport, slow.transport) == ("http", "litellm")
    assert fast.bodies[0]["model"] == "org/fake-7b"
    assert fast.comparable() == slow.comparable()


@pytest.mark.parametrize(
    ("model", "settings", "expected"),
    [
        ("local/qwen2.5-coder-0.5b", {}, "http"),
        ("openai/my-model", {"api_base": "http://10.0.0.5:8000/v1"}, "http"),
        ("hosted_vllm/x", {"api_base": "http://127.0.0.1:8000/v1"}, "http"),
        ("openai/gpt-4o-mini", {}, "litellm"),
        ("hosted_vllm/x", {}, "litellm"),
        ("anthropic/claude-3-5-haiku-latest", {}, "litellm"),
        ("ollama/llama3", {"api_base": "http://127.0.0.1:11434"}, "litellm"),
        ("local/qwen2.5-coder-0.5b", {"transport": "litellm"}, "litellm"),
        ("openai/x", {"api_base": "http://127.0.0.1:1/v1", "transport": "litellm"}, "litellm"),
    ],
)
def test_selection(model: str, settings: dict, expected: str) -> None:
    choice = choose_transport(model, ModelSettings(**settings))
    assert choice.name == expected and choice.reason
    gw = Gateway(settings=GatewaySettings(models={model: ModelSettings(**settings)},
                                          cache_enabled=False))  # fmt: skip
    assert gw.transport(model) == choice
    gw.close()


def test_forced_litellm_reaches_litellm(server) -> None:
    ms = ModelSettings(api_base=server.url, transport="litellm")
    with Gateway(settings=GatewaySettings(models={"openai/fake": ms}, cache_enabled=False)) as gw:
        gw.complete(LLMRequest(model="openai/fake", messages=({"role": "user", "content": "hi"},)))
        assert gw._routes["openai/fake"].transport == "litellm"
        assert gw.backend._http is None, "the fast path was built for a forced-litellm model"


def test_retry_after_forms() -> None:
    assert retry_after_s({"Retry-After": "3"}) == 3.0
    assert retry_after_s({"retry-after-ms": "250", "Retry-After": "3"}) == 0.25
    assert retry_after_s({"Retry-After": "soon"}) is None
    assert retry_after_s({"Retry-After": "-1"}) is None
    assert retry_after_s({}) is None and retry_after_s(None) is None
    assert retry_after_s({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past


def test_retry_after_is_a_floor_capped_by_retry_max_delay() -> None:
    gw = Gateway(settings=GatewaySettings(cache_enabled=False, retry_base_delay_s=0.0,
                                          retry_max_delay_s=5.0))  # fmt: skip
    assert gw._delay(0, RateLimited("x", retry_after_s=2.0)) == 2.0
    assert gw._delay(0, RateLimited("x", retry_after_s=3600.0)) == 5.0
    assert gw._delay(0, RateLimited("x")) == 0.0
    gw.close()


def test_models_command_shows_each_configured_models_client(tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    cfg = tmp_path / "c.toml"
    cfg.write_text('[models.meta]\nmodel = "anthropic/claude-3-5-haiku-latest"\n'
                   '[models.task]\nmodel = "openai/qwen"\napi_base = "http://127.0.0.1:8000/v1"\n'
                   'transport = "litellm"\n')  # fmt: skip
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    root = Path(__file__).resolve().parent.parent

    def models(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "metasearch.cli.app", "models", *args],
                              capture_output=True, text=True, env=env, cwd=root, timeout=120)  # fmt: skip

    out = json.loads(models(str(cfg), "--json").stdout)["configured"]
    assert [(m["role"], m["transport"]) for m in out] == [("meta", "litellm"), ("task", "litellm")]
    assert "forced" in out[1]["reason"]
    alt = tmp_path / "alt.toml"
    alt.write_text('[models.task]\nalternatives = ["local/qwen2.5-coder-1.5b", '
                   '{ model = "openai/big", api_base = "http://127.0.0.1:9/v1", '
                   'transport = "litellm" }]\n')
    alts = json.loads(models(str(alt), "--json").stdout)["configured"]
    assert [(m["role"], m["model"], m["transport"]) for m in alts[2:]] == [
        ("task (alternative)", "local/qwen2.5-coder-1.5b", "http"),
        ("task (alternative)", "openai/big", "litellm")]
    defaults = json.loads(models("--json").stdout)["configured"]
    assert {m["transport"] for m in defaults} == {"http"}  # the embedded local models
    text = models(str(cfg)).stdout
    assert "Configured models" in text and "litellm" in text
    cfg.write_text('[models.task]\ntransport = "fast"\n')
    bad = models(str(cfg))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "models.task.transport" in bad.stderr and '"litellm"' in bad.stderr


def test_routes_built_on_many_threads_at_once_share_one_fast_path_client(monkeypatch) -> None:
    """The first calls of a campaign build their routes on several threads together. Two
    fast-path clients would strand the connection pool of the one replaced ("Unclosed client
    session" in a local campaign's log)."""
    import threading
    import time

    import metasearch.llm.openai_http as openai_http
    from metasearch.llm.transport import AutoBackend

    class Slow(openai_http.OpenAIHTTPBackend):
        def __init__(self) -> None:
            time.sleep(0.05)  # every thread is inside the check-then-create window at once
            super().__init__()

    monkeypatch.setattr(openai_http, "OpenAIHTTPBackend", Slow)
    backend, got = AutoBackend(), []
    start = threading.Barrier(8)

    def first_call() -> None:
        start.wait()
        got.append(backend.http)

    threads = [threading.Thread(target=first_call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in got}) == 1
