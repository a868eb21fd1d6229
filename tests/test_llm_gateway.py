from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from metasearch.llm import (
    GatewaySettings,
    LLMRequest,
    ModelSettings,
    ProviderError,
    RawCompletion,
    delta,
    scripted_gateway,
)
from metasearch.llm.backend import BadRequest


def req(i: int = 0, **kw) -> LLMRequest:
    return LLMRequest(model="scripted/m", messages=({"role": "user", "content": f"q{i}"},), **kw)


def test_retries_until_success() -> None:
    with scripted_gateway(["ok"], failures=["rate_limit", "5xx", "timeout"]) as gw:
        reply = gw.complete(req())
        assert reply.text == "ok" and reply.meta["retries"] == 3
        assert len(gw.backend.calls) == 4


def test_gives_up_after_max_retries() -> None:
    settings = GatewaySettings(
        cache_enabled=False,
        retry_base_delay_s=0.0,
        models={"scripted/m": ModelSettings(max_retries=2)},
    )
    with scripted_gateway(["ok"], settings=settings, failures=["5xx"] * 5) as gw:
        with pytest.raises(ProviderError, match="server errors"):
            gw.complete(req())
        assert len(gw.backend.calls) == 3
        assert gw.snapshot().total.errors == 1


def test_connection_refused_becomes_unreachable() -> None:
    from metasearch.llm import EndpointUnreachableError

    settings = GatewaySettings(
        cache_enabled=False,
        retry_base_delay_s=0.0,
        models={"scripted/m": ModelSettings(max_retries=1, api_base="http://127.0.0.1:9/v1")},
    )
    with scripted_gateway(["ok"], settings=settings, failures=["connection_refused"] * 2) as gw:
        with pytest.raises(EndpointUnreachableError, match="127.0.0.1:9"):
            gw.complete(req())


def test_backoff_sleeps_grow() -> None:
    with scripted_gateway(["ok"], failures=["rate_limit"] * 2, retry_base_delay_s=0.05) as gw:
        import time

        t0 = time.perf_counter()
        gw.complete(req())
        # 0.05 * [0.5, 1.5) + 0.1 * [0.5, 1.5) >= 0.075
        assert time.perf_counter() - t0 >= 0.07


def test_per_call_timeout() -> None:
    settings = GatewaySettings(
        cache_enabled=False,
        retry_base_delay_s=0.0,
        models={"scripted/m": ModelSettings(timeout_s=0.05, max_retries=1)},
    )
    with scripted_gateway(["ok"], settings=settings, delay_s=1.0) as gw:
        with pytest.raises(ProviderError, match="timeout_s"):
            gw.complete(req())
        assert len(gw.backend.calls) == 2


def test_json_schema_falls_back_once_to_json_object() -> None:
    def fn(r: LLMRequest) -> str:
        if r.response_format and r.response_format["type"] == "json_schema":
            raise BadRequest("json_schema not supported")
        return '{"answer": 4}'

    schema = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}
    with scripted_gateway(fn) as gw:
        reply = gw.complete(req(response_format=schema))
        assert reply.text == '{"answer": 4}'
        assert reply.meta["response_format_fallback"] == "json_object"
        assert gw.backend.calls[-1].response_format == {"type": "json_object"}
    with scripted_gateway(["x"], failures=["bad_request"]) as gw:
        with pytest.raises(ProviderError, match="malformed"):
            gw.complete(req())


def test_concurrency_limit_is_respected() -> None:
    with scripted_gateway(["ok"], delay_s=0.02, default_concurrency=3) as gw:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: gw.complete(req(i)), range(30)))
        assert gw.backend.max_in_flight == 3


def test_model_max_concurrency_and_async_callers() -> None:
    settings = GatewaySettings(
        cache_enabled=False, models={"scripted/m": ModelSettings(max_concurrency=5)}
    )
    with scripted_gateway(["ok"], settings=settings, delay_s=0.02) as gw:

        async def many() -> list[str]:
            replies = await asyncio.gather(*(gw.acomplete(req(i)) for i in range(25)))
            return [r.text for r in replies]

        assert asyncio.run(many()) == ["ok"] * 25
        assert gw.backend.max_in_flight == 5


def test_sync_facade_from_many_threads() -> None:
    seen = set()
    lock = threading.Lock()

    def fn(r: LLMRequest) -> str:
        with lock:
            seen.add(threading.current_thread().name)
        return r.messages[0]["content"].upper()

    with scripted_gateway(fn, default_concurrency=64) as gw:
        with ThreadPoolExecutor(32) as pool:
            out = list(pool.map(lambda i: gw.complete(req(i)).text, range(500)))
        assert out == [f"Q{i}" for i in range(500)]
        assert seen == {"metasearch-gateway"}  # one loop thread serves all callers
        assert gw.snapshot().total.calls == 500


def test_ledger_per_role_candidate_and_delta() -> None:
    with scripted_gateway(["abcd"]) as gw:
        gw.complete(req(0, role="meta"))
        before = gw.snapshot()
        gw.complete(req(1, candidate="c1"))
        gw.complete(req(2, candidate="c1"))
        gw.complete(req(3, candidate="c2"))
        gw.note("parse_failure", candidate="c1")
        gw.note("repair", candidate="c1", n=2)
        after = gw.snapshot()
        d = delta(before, after)
        assert d.total.calls == 3 and "meta" not in d.by_role
        assert d.by_role["task"].calls == 3
        assert d.by_candidate["c1"].calls == 2
        assert d.by_candidate["c1"].events == {"parse_failure": 1, "repair": 2}
        assert after.by_role["meta"].calls == 1
        assert after.total.completion_tokens == 4
        import json

        json.dumps(after.to_json())


def test_user_prices_and_scripted_cost() -> None:
    settings = GatewaySettings(
        cache_enabled=False,
        models={"scripted/m": ModelSettings(price_input_per_mtok=2.0, price_output_per_mtok=8.0)},
    )
    reply = RawCompletion("x", prompt_tokens=1000, completion_tokens=500)
    with scripted_gateway([reply], settings=settings) as gw:
        r = gw.complete(req())
        assert r.cost_usd == pytest.approx(0.002 + 0.004)
        assert gw.snapshot().total.cost_usd == pytest.approx(0.006)
    with scripted_gateway([RawCompletion("x", 10, 10, cost_usd=None)]) as gw:
        r = gw.complete(req())
        assert r.cost_usd == 0.0 and r.prompt_tokens == 10


def test_resolve_protocol() -> None:
    settings = GatewaySettings(
        models={
            "openai/qwen": ModelSettings(api_base="http://127.0.0.1:8000/v1"),
            "openai/remote": ModelSettings(api_base="https://example.com/v1"),
            "anthropic/forced": ModelSettings(protocol="sections"),
            "local/qwen2.5-coder-0.5b": ModelSettings(protocol="json"),
        }
    )
    with scripted_gateway(["x"], settings=settings) as gw:
        assert gw.resolve_protocol("local/qwen2.5-coder-1.5b") == "sections"
        assert gw.resolve_protocol("openai/qwen") == "sections"
        assert gw.resolve_protocol("openai/remote") == "json"
        assert gw.resolve_protocol("openai/gpt-4o-mini") == "json"
        assert gw.resolve_protocol("anthropic/forced") == "sections"
        assert gw.resolve_protocol("local/qwen2.5-coder-0.5b") == "json"


def test_scripted_answers_local_models_without_a_server() -> None:
    with scripted_gateway(["hi"]) as gw:
        r = gw.complete(LLMRequest(model="local/qwen2.5-coder-0.5b", messages=req().messages))
        assert r.text == "hi" and r.cost_usd == 0.0
        assert gw._local is None


def test_close_is_idempotent_and_final() -> None:
    gw = scripted_gateway(["x"])
    gw.complete(req())
    gw.close()
    gw.close()
    with pytest.raises(RuntimeError):
        gw.complete(req())


def test_import_does_not_import_litellm() -> None:
    import subprocess
    import sys

    code = "import sys, metasearch.llm; assert 'litellm' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_identical_requests_in_flight_at_once_are_billed_once(tmp_path) -> None:
    """Concurrent candidates can send the same request together: one call, one cache hit."""
    from metasearch.llm import ResponseCache

    cache = ResponseCache(directory=tmp_path / "responses")
    with scripted_gateway(["ok"], cache=cache, delay_s=0.2, default_concurrency=8) as gw:
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda _: gw.complete(req(7)), range(4)))
        assert [r.text for r in replies] == ["ok"] * 4
        assert len(gw.backend.calls) == 1
        assert sum(r.cached for r in replies) == 3
        # a different request is not held back by the one in flight
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda i: gw.complete(req(100 + i)), range(2)))
        assert len(gw.backend.calls) == 3


def test_a_failed_leader_lets_the_waiting_request_call_itself(tmp_path) -> None:
    from metasearch.llm import ResponseCache

    cache = ResponseCache(directory=tmp_path / "responses")
    settings = GatewaySettings(retry_base_delay_s=0.0,
                               models={"scripted/m": ModelSettings(max_retries=0)})
    with scripted_gateway(["ok"], cache=cache, settings=settings, delay_s=0.1,
                          failures=["5xx"]) as gw:
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(gw.complete, req(3)) for _ in range(2)]
        outcomes = []
        for f in futures:
            try:
                outcomes.append(f.result().text)
            except ProviderError:
                outcomes.append("error")
        assert sorted(outcomes) == ["error", "ok"]
