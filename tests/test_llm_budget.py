from __future__ import annotations

import pytest

from metasearch.llm import (
    BudgetExceeded,
    BudgetSettings,
    GatewaySettings,
    LLMRequest,
    ModelSettings,
    ResponseCache,
    scripted_gateway,
)


def req(i: int = 0) -> LLMRequest:
    return LLMRequest(model="scripted/m", messages=({"role": "user", "content": f"q{i}"},))


def test_call_cap() -> None:
    settings = GatewaySettings(budget=BudgetSettings(max_calls=2), cache_enabled=False)
    with scripted_gateway(["a"], settings=settings) as gw:
        gw.complete(req(0))
        gw.complete(req(1))
        with pytest.raises(BudgetExceeded) as ei:
            gw.complete(req(2))
        assert ei.value.cap == "max_calls" and ei.value.limit == 2 and ei.value.used == 2
        assert "max_calls" in str(ei.value)
        assert len(gw.backend.calls) == 2


def test_usd_cap_with_user_prices() -> None:
    settings = GatewaySettings(
        cache_enabled=False,
        budget=BudgetSettings(max_usd=0.5),
        models={"scripted/m": ModelSettings(price_input_per_mtok=1e5, price_output_per_mtok=0)},
    )
    # prompt "q0" is 1 fake token -> 0.1 USD per call
    with scripted_gateway(["a"], settings=settings) as gw:
        costs = []
        with pytest.raises(BudgetExceeded) as ei:
            for i in range(100):
                costs.append(gw.complete(req(i)).cost_usd)
        assert ei.value.cap == "max_usd"
        assert costs[0] == pytest.approx(0.1)
        assert len(costs) == 5
        assert gw.budget.usage().usd == pytest.approx(0.5)


def test_token_cap() -> None:
    settings = GatewaySettings(cache_enabled=False, budget=BudgetSettings(max_tokens=5))
    with scripted_gateway(["abcdefgh"], settings=settings) as gw:  # 1 + 2 fake tokens
        gw.complete(req(0))
        gw.complete(req(1))
        with pytest.raises(BudgetExceeded) as ei:
            gw.complete(req(2))
        assert ei.value.cap == "max_tokens" and ei.value.used == 6


def test_cache_hits_are_never_refused(tmp_path) -> None:
    settings = GatewaySettings(cache_dir=tmp_path, budget=BudgetSettings(max_calls=1))
    with scripted_gateway(["a"], settings=settings, cache=ResponseCache(directory=tmp_path)) as gw:
        gw.complete(req(0))
        for _ in range(3):
            assert gw.complete(req(0)).cached
        with pytest.raises(BudgetExceeded):
            gw.complete(req(1))
        assert gw.budget.usage().calls == 1


def test_no_caps_by_default() -> None:
    with scripted_gateway(["a"]) as gw:
        for i in range(20):
            gw.complete(req(i))
