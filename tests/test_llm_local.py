from __future__ import annotations

import hashlib
import os

import pytest

from metasearch.llm import GatewaySettings, LocalModelError, list_local_models
from metasearch.llm.local import KNOWN_MODELS, assemble_parts, part_paths


def make_parts(tmp_path, payload: bytes, n: int = 3):
    size = len(payload) // n + 1
    parts = []
    for i in range(n):
        p = tmp_path / f"part{i + 1:02d}.bin"
        p.write_bytes(payload[i * size : (i + 1) * size])
        parts.append(p)
    return parts


PAYLOAD = b"GGUF" + os.urandom(10_000)


def test_assembles_and_checks(tmp_path) -> None:
    parts = make_parts(tmp_path, PAYLOAD)
    dest = tmp_path / "models" / "m.gguf"
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    assert assemble_parts(parts, dest, size=len(PAYLOAD), sha256=sha) == dest
    assert dest.read_bytes() == PAYLOAD
    assert [p.name for p in dest.parent.iterdir()] == ["m.gguf"]  # no temp files left
    # second call is a no-op even if the parts are gone
    for p in parts:
        p.unlink()
    assert assemble_parts(parts, dest, size=len(PAYLOAD), sha256=sha) == dest


def test_sha_mismatch_is_caught(tmp_path) -> None:
    parts = make_parts(tmp_path, PAYLOAD)
    dest = tmp_path / "models" / "m.gguf"
    with pytest.raises(LocalModelError, match="sha256") as ei:
        assemble_parts(parts, dest, size=len(PAYLOAD), sha256="0" * 64)
    assert "pip install 'metasearch[local]'" in str(ei.value)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_size_and_magic_are_checked(tmp_path) -> None:
    parts = make_parts(tmp_path, PAYLOAD)
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises(LocalModelError, match="bytes"):
        assemble_parts(parts[:2], tmp_path / "a.gguf", size=len(PAYLOAD), sha256=sha)
    bad = b"NOPE" + PAYLOAD[4:]
    parts = make_parts(tmp_path, bad)
    with pytest.raises(LocalModelError, match="GGUF"):
        assemble_parts(parts, tmp_path / "b.gguf", size=len(bad), sha256=sha)


def test_wrong_order_is_caught(tmp_path) -> None:
    parts = make_parts(tmp_path, PAYLOAD)
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises(LocalModelError):
        assemble_parts(parts[::-1], tmp_path / "c.gguf", size=len(PAYLOAD), sha256=sha)


def test_missing_extra_gives_the_command(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n.startswith("pandas_sns") else real(n)
    )
    with pytest.raises(LocalModelError, match=r"pip install 'metasearch\[local\]'"):
        part_paths(KNOWN_MODELS["qwen2.5-coder-0.5b"])


def test_list_local_models(tmp_path) -> None:
    rows = list_local_models(GatewaySettings(cache_dir=tmp_path))
    names = {r.name for r in rows}
    assert names == {"local/qwen2.5-coder-0.5b", "local/qwen2.5-coder-1.5b"}
    assert not any(r.assembled for r in rows)
    assert all(r.path.startswith(str(tmp_path)) for r in rows)


def test_part_packages_are_installed() -> None:
    for spec in KNOWN_MODELS.values():
        paths = part_paths(spec)
        assert len(paths) == len(spec.part_modules)
        assert sum(p.stat().st_size for p in paths) == spec.size


@pytest.mark.slow
def test_real_local_model_through_gateway(tmp_path) -> None:
    from metasearch.llm import Gateway, LLMRequest, ModelSettings

    model = "local/qwen2.5-coder-0.5b"
    # the assembled weights go to the shared cache dir; the replies to a fresh cache
    settings = GatewaySettings(
        models={model: ModelSettings(n_parallel=1, n_threads=2, n_ctx_per_slot=1024)},
    )
    from metasearch.llm import ResponseCache

    cache = ResponseCache(directory=tmp_path / "responses")
    req = LLMRequest(
        model=model,
        messages=({"role": "user", "content": "What is 2+3? Reply with the number only."},),
        temperature=0.0,
        max_tokens=8,
    )
    with Gateway(settings=settings, cache=cache) as gw:
        gw.preflight(model)
        first = gw.complete(req)
        assert "5" in first.text and not first.cached
        assert first.completion_tokens > 0 and first.cost_usd == 0.0
        second = gw.complete(req)
        assert second.cached and second.text == first.text
        assert list(gw._local.running().values())[0].startswith("http://127.0.0.1:")


@pytest.mark.slow
def test_real_local_model_same_reply_on_both_clients() -> None:
    """The fast path and litellm get the same completion from the real server (temperature 0)."""
    from dataclasses import replace

    from metasearch.llm import Gateway, LLMRequest, ModelSettings

    model = "local/qwen2.5-coder-0.5b"
    ms = ModelSettings(n_parallel=1, n_threads=2, n_ctx_per_slot=1024)
    messages = ({"role": "user", "content": "Name three prime numbers, comma-separated."},)
    with Gateway(settings=GatewaySettings(models={model: ms}, cache_enabled=False)) as fast:
        req = LLMRequest(model=model, messages=messages, temperature=0.0, max_tokens=24)
        first = fast.complete(req)
        assert fast._routes[model].transport == "http"
        (api_base,) = fast._local.running().values()
        alias = "openai/qwen2.5-coder-0.5b"
        slow_ms = ModelSettings(api_base=api_base, transport="litellm")
        slow_settings = GatewaySettings(models={alias: slow_ms}, cache_enabled=False)
        with Gateway(settings=slow_settings) as slow:
            second = slow.complete(replace(req, model=alias))
            assert slow._routes[alias].transport == "litellm"
    assert first.text and first.completion_tokens > 0
    same = ("text", "prompt_tokens", "completion_tokens", "finish_reason", "cost_usd", "meta")
    assert [getattr(first, f) for f in same] == [getattr(second, f) for f in same]
