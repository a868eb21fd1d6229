"""Error mapping through the real litellm backend (no network needed)."""

from __future__ import annotations

import socket

import pytest

from metasearch.llm import (
    EndpointUnreachableError,
    Gateway,
    GatewaySettings,
    LLMRequest,
    MissingAPIKeyError,
    ModelSettings,
    UnknownModelError,
)

MSG = ({"role": "user", "content": "hi"},)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gw(tmp_path):
    settings = GatewaySettings(cache_enabled=False, retry_base_delay_s=0.0)
    with Gateway(settings=settings) as g:
        yield g


def test_unknown_provider(gw) -> None:
    with pytest.raises(UnknownModelError) as ei:
        gw.complete(LLMRequest(model="nosuch/model", messages=MSG))
    msg = str(ei.value)
    assert "nosuch/model" in msg and "openai" in msg and "local/qwen2.5-coder-1.5b" in msg
    with pytest.raises(UnknownModelError):
        gw.preflight("gpt-4o-mini")  # no provider prefix


def test_unknown_local_model(gw) -> None:
    with pytest.raises(UnknownModelError, match="qwen2.5-coder-0.5b"):
        gw.preflight("local/llama-70b")


def test_unknown_hosted_model_in_preflight(gw, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with pytest.raises(UnknownModelError, match="gpt-4o"):
        gw.preflight("openai/gpt-99-imaginary")


def test_missing_key_names_the_variable(gw, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError) as ei:
        gw.complete(LLMRequest(model="openai/gpt-4o-mini", messages=MSG))
    assert "OPENAI_API_KEY" in str(ei.value) and "openai/gpt-4o-mini" in str(ei.value)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="ANTHROPIC_API_KEY"):
        gw.preflight("anthropic/claude-3-5-haiku-20241022")


def test_custom_key_env(monkeypatch) -> None:
    monkeypatch.delenv("MY_VLLM_KEY", raising=False)
    settings = GatewaySettings(
        cache_enabled=False,
        models={
            "openai/m": ModelSettings(api_base="http://127.0.0.1:1/v1", api_key_env="MY_VLLM_KEY")
        },
    )
    with Gateway(settings=settings) as gw, pytest.raises(MissingAPIKeyError, match="MY_VLLM_KEY"):
        gw.preflight("openai/m")


def test_unreachable_endpoint_names_the_url(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    url = f"http://127.0.0.1:{closed_port()}/v1"
    settings = GatewaySettings(
        cache_enabled=False,
        retry_base_delay_s=0.0,
        models={"openai/x": ModelSettings(api_base=url, max_retries=1, timeout_s=10)},
    )
    with Gateway(settings=settings) as gw:
        with pytest.raises(EndpointUnreachableError) as ei:
            gw.preflight("openai/x")
        assert url in str(ei.value) and "openai/x" in str(ei.value)
        with pytest.raises(EndpointUnreachableError) as ei:
            gw.complete(LLMRequest(model="openai/x", messages=MSG))
        assert url in str(ei.value) and "2 attempts" in str(ei.value)
        assert gw.resolve_protocol("openai/x") == "sections"


def test_messages_are_one_paragraph(gw, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for model in ("nosuch/m", "openai/gpt-4o-mini"):
        with pytest.raises(Exception) as ei:
            gw.preflight(model)
        assert "\n" not in str(ei.value)
