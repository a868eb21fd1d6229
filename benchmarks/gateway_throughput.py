"""Gateway throughput on both clients against a fake OpenAI-compatible server, and cache hits.

The fake server (aiohttp, in a child process) answers every chat completion
after a fixed latency with unlimited concurrency. For each latency and
concurrency, four clients send the same calls, each from ``concurrency``
workers making calls one after another, with the cache off:

* raw aiohttp: one keep-alive session, JSON in and out: the floor of one
  Python process here;
* the gateway's fast path (``openai/fake`` with an ``api_base``, ``transport = "auto"``);
* raw ``litellm.acompletion``, with litellm's defaults;
* the gateway on litellm (``transport = "litellm"``).

The ideal rate is concurrency / latency. CPU per call is the measuring
process's CPU time (all threads) over the calls; both litellm clients run in a
child process of their own, so litellm's queued logging work cannot land in
the other measurements; the gateway's own CPU per call is its CPU
per call minus that of the raw client below it (aiohttp or litellm). Then
the p50 latency of cache hits.

    python benchmarks/gateway_throughput.py [--latencies 0.1,1] [--concurrency 64,256]
        [--seconds 3] [--litellm-calls 1024] [--rounds 3] [--hits 500]

Targets: fast path >= 0.9 of raw aiohttp; at 1 s and concurrency 64 the fast
path >= 0.95 of ideal; the litellm path's CPU over raw litellm <= 1 ms a call;
p50 cache-hit latency <= 1 ms. Exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing as mp
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
REPLY = {
    "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": "fake",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "## answer\n4"}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(port: int) -> None:
    """The fake server; the latency of each call is in its path: /<ms>/v1/chat/completions."""
    from aiohttp import web

    payload = json.dumps(REPLY).encode()

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(int(request.match_info["ms"]) / 1000)
        return web.Response(body=payload, content_type="application/json")

    app = web.Application()
    app.router.add_post("/{ms}/v1/chat/completions", chat)
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


@dataclass
class Result:
    calls: int
    wall_s: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return self.calls / self.wall_s

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_s / self.calls


async def drive(call: Callable[[int], Awaitable[object]], calls: int, concurrency: int) -> Result:
    """``concurrency`` workers, each making its share of ``calls`` one after another."""
    await asyncio.gather(*(call(-1 - i) for i in range(min(concurrency, 8))))  # warm up
    per = calls // concurrency

    async def worker(w: int) -> None:
        for k in range(per):
            await call(w * per + k)

    c0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return Result(per * concurrency, time.perf_counter() - t0, time.process_time() - c0)


async def raw_aiohttp(api_base: str, calls: int, concurrency: int) -> Result:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:

        async def one(i: int) -> object:
            body = {"model": "fake", "messages": [{"role": "user", "content": f"raw {i}"}],
                    "temperature": 0.5, "max_tokens": 16}  # fmt: skip
            async with session.post(f"{api_base}/chat/completions", data=json.dumps(body),
                                    headers={"Content-Type": "application/json",
                                             "Authorization": "Bearer x"}) as r:  # fmt: skip
                return json.loads(await r.read())["choices"][0]["message"]["content"]

        return await drive(one, calls, concurrency)


async def raw_litellm(api_base: str, calls: int, concurrency: int) -> Result:
    import litellm

    async def one(i: int) -> object:
        return await litellm.acompletion(
            model=MODEL, messages=[{"role": "user", "content": f"raw {i}"}], max_tokens=16,
            temperature=0.5, api_base=api_base, api_key="x", max_retries=0, timeout=60,
        )  # fmt: skip

    return await drive(one, calls, concurrency)


def gateway(api_base: str, concurrency: int, transport: str) -> Gateway:
    ms = ModelSettings(api_base=api_base, max_concurrency=concurrency, max_retries=0,
                       transport=transport)  # type: ignore[arg-type]  # fmt: skip
    return Gateway(settings=GatewaySettings(models={MODEL: ms}, cache_enabled=False))


async def through(gw: Gateway, calls: int, concurrency: int) -> Result:
    async def one(i: int) -> object:
        return await gw.acomplete(request(i))

    result = await drive(one, calls, concurrency)
    assert gw.snapshot().total.errors == 0
    return result


@dataclass
class Row:
    latency_s: float
    concurrency: int
    results: dict[str, Result]

    @property
    def ideal(self) -> float:
        return self.concurrency / self.latency_s


def litellm_side(conn: Any, base: str) -> None:
    """The child process that runs both litellm clients, on request from the parent.

    litellm queues logging work on whatever event loop is current and carries
    it over to the next one; in the parent's process it would run inside the
    aiohttp and fast-path measurements. Here it stays with the litellm ones.
    """
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    import litellm  # noqa: F401  # its 2 s import is paid here, not in a timed run

    gateways: dict[tuple[str, int], Gateway] = {}
    try:
        while (job := conn.recv()) is not None:
            which, api_base, calls, concurrency = job
            if which == "raw litellm":
                r = asyncio.run(raw_litellm(api_base, calls, concurrency))
            else:
                gw = gateways.get((api_base, concurrency))
                if gw is None:
                    gw = gateways[(api_base, concurrency)] = gateway(api_base, concurrency,
                                                                     "litellm")  # fmt: skip
                r = asyncio.run(through(gw, calls, concurrency))
                assert gw._routes[MODEL].transport == "litellm"
            conn.send((r.calls, r.wall_s, r.cpu_s))
    finally:
        for gw in gateways.values():
            gw.close()


def measure(base: str, latency_s: float, concurrency: int, args: argparse.Namespace,
            litellm_conn: Any) -> Row:  # fmt: skip
    """The four clients; each pair (raw, gateway) alternates in ``--rounds`` parts, so a
    change in the machine's load between them falls on both sides alike."""
    api_base = f"{base}/{round(latency_s * 1000)}/v1"
    waves = max(5 * args.rounds, round(args.seconds / latency_s))
    fast_calls = concurrency * max(1, waves // args.rounds)  # whole waves per part
    slow_calls = concurrency * max(1, round(args.litellm_calls / args.rounds / concurrency))
    out: dict[str, Result] = {}

    def add(name: str, r: Result) -> None:
        old = out.get(name)
        out[name] = r if old is None else Result(old.calls + r.calls, old.wall_s + r.wall_s,
                                                 old.cpu_s + r.cpu_s)  # fmt: skip

    def on_litellm_side(name: str) -> Result:
        litellm_conn.send((name, api_base, slow_calls, concurrency))
        return Result(*litellm_conn.recv())

    with gateway(api_base, concurrency, "auto") as fast:
        for _ in range(args.rounds):
            add("raw aiohttp", asyncio.run(raw_aiohttp(api_base, fast_calls, concurrency)))
            add("gateway fast path", asyncio.run(through(fast, fast_calls, concurrency)))
            add("raw litellm", on_litellm_side("raw litellm"))
            add("gateway on litellm", on_litellm_side("gateway on litellm"))
        assert fast._routes[MODEL].transport == "http"
    order = ("raw aiohttp", "gateway fast path", "raw litellm", "gateway on litellm")
    return Row(latency_s, concurrency, {k: out[k] for k in order})


def cache_hits(api_base: str, hits: int) -> tuple[float, float]:
    """p50 and p95 latency (ms) of a cache hit through the sync API."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = GatewaySettings(models={MODEL: ModelSettings(api_base=api_base)},
                                   cache_dir=Path(tmp))  # fmt: skip
        with Gateway(settings=settings, cache=ResponseCache(directory=Path(tmp) / "r")) as gw:
            n = min(hits, 100)
            for i in range(n):
                gw.complete(request(i))
            lat = []
            for j in range(hits):
                t0 = time.perf_counter()
                r = gw.complete(request(j % n))
                lat.append(time.perf_counter() - t0)
                assert r.cached
    return statistics.median(lat) * 1000, statistics.quantiles(lat, n=20)[-1] * 1000


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(rows: list[Row]) -> bool:
    ok = True
    print(f"{'latency':>8} {'conc':>5} {'client':<19} {'calls':>6} {'calls/s':>8} "
          f"{'/ideal':>7} {'CPU ms/call':>11}")  # fmt: skip
    for row in rows:
        for name, r in row.results.items():
            print(f"{row.latency_s * 1000:>6g}ms {row.concurrency:>5} {name:<19} {r.calls:>6} "
                  f"{r.rate:>8.1f} {r.rate / row.ideal:>7.3f} {r.cpu_ms:>11.2f}")  # fmt: skip
    print()
    for row in rows:
        res = row.results
        fast, raw = res["gateway fast path"], res["raw aiohttp"]
        lgw, lraw = res["gateway on litellm"], res["raw litellm"]
        tag = f"{row.latency_s * 1000:g} ms, concurrency {row.concurrency}"
        ratio = fast.rate / raw.rate
        ok &= ratio >= 0.9
        print(f"{tag}: fast path / raw aiohttp = {ratio:.3f} (target >= 0.9: {verdict(ratio >= 0.9)})")
        own = fast.cpu_ms - raw.cpu_ms
        print(f"    gateway's own CPU on the fast path: {own:+.2f} ms/call "
              f"({fast.cpu_ms:.2f} - aiohttp's {raw.cpu_ms:.2f})")
        over = lgw.cpu_ms - lraw.cpu_ms
        ok &= over <= 1.0
        print(f"    litellm path CPU over raw litellm: {over:+.2f} ms/call ({lgw.cpu_ms:.2f} - "
              f"{lraw.cpu_ms:.2f}; target <= 1 ms: {verdict(over <= 1.0)}); "
              f"calls/s {lgw.rate / lraw.rate:.3f} of raw litellm; "
              f"fast path {fast.rate / lgw.rate:.1f}x the litellm path")
        if row.latency_s == 1.0 and row.concurrency == 64:
            ideal = fast.rate / row.ideal
            ok &= ideal >= 0.95
            print(f"    fast path / ideal = {ideal:.3f} (target >= 0.95: {verdict(ideal >= 0.95)})")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latencies", default="0.1,1", help="seconds per call, comma-separated")
    ap.add_argument("--concurrency", default="64,256", help="comma-separated")
    ap.add_argument("--seconds", type=float, default=3.0,
                    help="ideal duration of each aiohttp / fast-path run (default 3; at least "
                         "5 waves of calls per round)")
    ap.add_argument("--litellm-calls", type=int, default=1024,
                    help="calls for each litellm run, rounded to the concurrency (default 1024)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="parts each raw/gateway pair alternates in (default 3)")
    ap.add_argument("--hits", type=int, default=500)
    args = ap.parse_args()
    latencies = [float(x) for x in args.latencies.split(",")]
    concurrencies = [int(x) for x in args.concurrency.split(",")]

    # litellm leaves an aiohttp session per event loop unclosed; asyncio would log each one
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    port = free_port()
    server = mp.get_context("spawn").Process(target=serve, args=(port,), daemon=True)
    server.start()
    wait_for(port)
    base = f"http://127.0.0.1:{port}"
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    side = ctx.Process(target=litellm_side, args=(there, base), daemon=True)
    side.start()
    try:
        rows = [measure(base, lat, c, args, here) for lat in latencies for c in concurrencies]
        here.send(None)
        side.join(30)
        ok = report(rows)
        p50, p95 = cache_hits(f"{base}/0/v1", args.hits)
        ok &= p50 <= 1.0
        print(f"cache hit latency p50 = {p50:.3f} ms, p95 = {p95:.3f} ms "
              f"(target p50 <= 1 ms: {verdict(p50 <= 1.0)})")
    finally:
        if side.is_alive():
            side.terminate()
        server.terminate()
        server.join(5)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
