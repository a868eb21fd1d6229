"""Calls crossing onto the gateway's loop: batched, cancellable, and never left hanging."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import pytest

from metasearch.llm import LLMRequest, ModelSettings, ProviderError, scripted_gateway


def req(i: int = 0) -> LLMRequest:
    return LLMRequest(model="scripted/m", messages=({"role": "user", "content": f"q{i}"},))


def test_many_loops_and_threads_get_their_own_replies() -> None:
    with scripted_gateway(lambda r: r.messages[0]["content"].upper(), delay_s=0.02,
                          default_concurrency=64) as gw:  # fmt: skip

        async def batch(base: int) -> list[str]:
            replies = await asyncio.gather(*(gw.acomplete(req(base + i)) for i in range(50)))
            return [r.text for r in replies]

        def on_own_loop(base: int) -> list[str]:
            return asyncio.run(batch(base))

        def sync(base: int) -> list[str]:
            return [gw.complete(req(base + i)).text for i in range(10)]

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            loops = [pool.submit(on_own_loop, 1000 * k) for k in range(3)]
            threads = [pool.submit(sync, 1000 * k + 500) for k in range(3)]
            for k, f in enumerate(loops):
                assert f.result() == [f"Q{1000 * k + i}" for i in range(50)]
            for k, f in enumerate(threads):
                assert f.result() == [f"Q{1000 * k + 500 + i}" for i in range(10)]
        assert gw.snapshot().total.calls == 180


def test_errors_cross_back_to_both_kinds_of_caller() -> None:
    models = {"scripted/m": ModelSettings(max_retries=0)}
    with scripted_gateway(["ok"], failures=["5xx"] * 8, models=models) as gw:
        with pytest.raises(ProviderError, match="server errors"):
            gw.complete(req())

        async def one() -> None:
            await gw.acomplete(req(1))

        with pytest.raises(ProviderError, match="server errors"):
            asyncio.run(one())


def test_cancelling_an_async_caller_cancels_its_call() -> None:
    with scripted_gateway(["ok"], delay_s=30.0) as gw:

        async def cancel_soon() -> None:
            task = asyncio.ensure_future(gw.acomplete(req()))
            await asyncio.sleep(0.2)
            assert gw.backend.in_flight == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(cancel_soon())
        deadline = time.monotonic() + 5
        while gw.backend.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gw.backend.in_flight == 0, "the gateway kept the cancelled call running"
        assert gw.budget.usage().calls == 0, "a cancelled call kept its budget reservation"


def test_close_ends_calls_in_flight_instead_of_leaving_them_hanging() -> None:
    gw = scripted_gateway(["ok"], delay_s=30.0)
    results: list[BaseException | str] = []

    def caller() -> None:
        try:
            results.append(gw.complete(req()).text)
        except BaseException as e:  # noqa: BLE001  # the test records what the caller got
            results.append(e)

    threads = [threading.Thread(target=caller) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    gw.close()
    for t in threads:
        t.join(5)
        assert not t.is_alive(), "a caller still waits after close()"
    assert len(results) == 3 and all(isinstance(r, BaseException) for r in results), results
    with pytest.raises(RuntimeError, match="closed"):
        gw.complete(req())


def test_finished_caller_loops_are_not_kept_alive() -> None:
    import gc
    import weakref

    with scripted_gateway(["ok"]) as gw:
        refs = []

        async def one() -> None:
            refs.append(weakref.ref(asyncio.get_running_loop()))
            await gw.acomplete(req())

        for _ in range(3):
            asyncio.run(one())
        gc.collect()
        assert all(r() is None for r in refs), "the gateway holds on to closed event loops"
