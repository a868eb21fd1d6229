"""Gateway throughput against a fake OpenAI-compatible server, and cache-hit latency.

The fake server (aiohttp, in a child process) answers every chat completion
after a fixed latency with unlimited concurrency. The gateway sends ``--calls``
calls at concurrency ``--concurrency`` with the cache off; the ideal rate is
concurrency / latency. Then it measures the p50 latency of cache hits.

    python benchmarks/gateway_throughput.py [--calls 2000] [--concurrency 64]

Targets: achieved/ideal >= 0.85; p50 cache-hit latency <= 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metasearch.llm import (  # noqa: E402
    Gateway,
    GatewaySettings,
    LLMRequest,
    ModelSettings,
    ResponseCache,
)

MODEL = "openai/fake"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int, latency_s: float) -> None:
    from aiohttp import web

    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "## answer\n4"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }
    payload = json.dumps(body).encode()

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(latency_s)
        return web.Response(body=payload, content_type="application/json")

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "fake"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=4096)


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("fake server did not start")


def request(i: int) -> LLMRequest:
    return LLMRequest(
        model=MODEL, messages=({"role": "user", "content": f"question {i}"},), max_tokens=16
    )


async def raw_litellm(api_base: str, calls: int, concurrency: int) -> float:
    """The same calls straight through litellm.acompletion: the ceiling litellm sets here."""
    import litellm

    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await litellm.acompletion(
                model=MODEL, messages=[{"role": "user", "content": f"raw {i}"}], max_tokens=16,
                api_base=api_base, api_key="x", max_retries=0, timeout=60,
            )  # fmt: skip

    await one(-1)
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    return calls / (time.perf_counter() - t0)


async def throughput(gw: Gateway, calls: int) -> float:
    await gw.acomplete(request(-1))  # warm up: imports litellm, opens the client
    t0 = time.perf_counter()
    await asyncio.gather(*(gw.acomplete(request(i)) for i in range(calls)))
    return calls / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--hits", type=int, default=500)
    args = ap.parse_args()

    port = free_port()
    server = mp.get_context("spawn").Process(
        target=serve, args=(port, args.latency_ms / 1000), daemon=True
    )
    server.start()
    wait_for(port)
    ms = ModelSettings(
        api_base=f"http://127.0.0.1:{port}/v1", max_concurrency=args.concurrency, max_retries=0
    )
    try:
        raw = asyncio.run(raw_litellm(ms.api_base or "", args.calls, args.concurrency))
        settings = GatewaySettings(models={MODEL: ms}, cache_enabled=False)
        with Gateway(settings=settings) as gw:
            rate = asyncio.run(throughput(gw, args.calls))
            assert gw.snapshot().total.errors == 0
        ideal = args.concurrency / (args.latency_ms / 1000)
        print(f"calls={args.calls} concurrency={args.concurrency} latency={args.latency_ms:g}ms")
        print(f"achieved={rate:.1f} calls/s ideal={ideal:.1f} calls/s")
        print(f"achieved/ideal = {rate / ideal:.3f} (target >= 0.85)")
        print(
            f"raw litellm.acompletion, same calls: {raw:.1f} calls/s = {raw / ideal:.3f} of ideal"
        )
        print(f"gateway/raw litellm = {rate / raw:.3f} (the gateway's own overhead)")

        with tempfile.TemporaryDirectory() as tmp:
            settings = GatewaySettings(models={MODEL: ms}, cache_dir=Path(tmp))
            cache = ResponseCache(directory=Path(tmp) / "responses")
            with Gateway(settings=settings, cache=cache) as gw:
                n = min(args.hits, 100)
                for i in range(n):
                    gw.complete(request(i))
                lat = []
                for j in range(args.hits):
                    t0 = time.perf_counter()
                    r = gw.complete(request(j % n))
                    lat.append(time.perf_counter() - t0)
                    assert r.cached
            p50 = statistics.median(lat) * 1000
            p95 = statistics.quantiles(lat, n=20)[-1] * 1000
            print(f"cache hit latency p50 = {p50:.3f} ms, p95 = {p95:.3f} ms (target p50 <= 2 ms)")
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
