from __future__ import annotations

from dataclasses import replace

from metasearch.llm import LLMRequest, ResponseCache, cache_key, scripted_gateway

MSG = ({"role": "user", "content": "What is 2+2?"},)


def req(**kw) -> LLMRequest:
    return LLMRequest(model="scripted/m", messages=MSG, **kw)


def test_key_distinguishes_sample_index_and_params() -> None:
    base = req()
    assert cache_key(base) == cache_key(req())
    for changed in (
        replace(base, sample_index=1),
        replace(base, temperature=0.0),
        replace(base, max_tokens=64),
        replace(base, model="scripted/other"),
        replace(base, response_format={"type": "json_object"}),
        replace(base, messages=({"role": "user", "content": "What is 3+3?"},)),
    ):
        assert cache_key(changed) != cache_key(base)


def test_key_ignores_role_and_candidate() -> None:
    base = req()
    assert cache_key(replace(base, role="meta")) == cache_key(base)
    assert cache_key(replace(base, candidate="c7")) == cache_key(base)


def test_hit_is_free_marked_and_ledgered(tmp_path) -> None:
    cache = ResponseCache(directory=tmp_path)
    with scripted_gateway(["four"], cache=cache) as gw:
        first = gw.complete(req(candidate="a"))
        second = gw.complete(req(candidate="b", role="meta"))
        assert not first.cached and second.cached
        assert second.text == "four" and second.cost_usd == 0.0
        assert len(gw.backend.calls) == 1
        snap = gw.snapshot()
        assert snap.total.calls == 2 and snap.total.cached_calls == 1
        assert snap.by_candidate["b"].cached_calls == 1
        assert snap.by_role["meta"].cached_calls == 1


def test_persists_across_gateways(tmp_path) -> None:
    with scripted_gateway(["one"], cache=ResponseCache(directory=tmp_path)) as gw:
        gw.complete(req())
    with scripted_gateway(["two"], cache=ResponseCache(directory=tmp_path)) as gw:
        reply = gw.complete(req())
        assert reply.cached and reply.text == "one"
        assert gw.backend.calls == []


def test_sample_index_misses(tmp_path) -> None:
    with scripted_gateway(["a", "b"], cache=ResponseCache(directory=tmp_path)) as gw:
        assert gw.complete(req(sample_index=0)).text == "a"
        assert gw.complete(req(sample_index=1)).text == "b"
        assert gw.complete(req(sample_index=1)).cached


def test_disabled_cache_always_calls(tmp_path) -> None:
    cache = ResponseCache(directory=tmp_path, enabled=False)
    with scripted_gateway(["a", "b"], cache=cache) as gw:
        assert gw.complete(req()).text == "a"
        assert gw.complete(req()).text == "b"
    assert not any(tmp_path.iterdir())


def test_settings_cache_switch(tmp_path) -> None:
    from metasearch.llm import Gateway, GatewaySettings, ScriptedBackend

    on = GatewaySettings(cache_dir=tmp_path)
    with Gateway(settings=on, backend=ScriptedBackend(["x"])) as gw:
        gw.complete(req())
        assert gw.complete(req()).cached
    off = GatewaySettings(cache_dir=tmp_path / "off", cache_enabled=False)
    with Gateway(settings=off, backend=ScriptedBackend(["x"])) as gw:
        assert gw.cache is None
        gw.complete(req())
        assert not gw.complete(req()).cached
