"""Tokens/s of the embedded 0.5B model through the gateway vs raw HTTP to the same server.

The gateway starts one xllamacpp server with ``--slots`` parallel slots. Each
round sends ``--slots`` requests at once (one per slot, each its own prompt,
temperature 0, cache off), first as raw HTTP POSTs from threads, then through
the gateway from threads (``Gateway.complete``, the path sandboxed agents
use), after one warm-up of each. Aggregate tokens/s is the completion tokens
of a round over its wall time; the ratio is gateway / raw (target >= 0.95).
Also prints which client the gateway used (the fast path unless ``--litellm``).

    python benchmarks/local_overhead.py [--slots 4] [--rounds 3] [--max-tokens 64] [--litellm]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metasearch.llm import Gateway, GatewaySettings, LLMRequest, ModelSettings  # noqa: E402

MODEL = "local/qwen2.5-coder-0.5b"
TOPICS = ("the n-th Fibonacci number", "whether a string is a palindrome",
          "the greatest common divisor of two integers", "the primes below n",
          "a list flattened one level", "the word count of a text")  # fmt: skip


def prompt(k: int) -> str:
    return f"Write a Python function that returns {TOPICS[k % len(TOPICS)]}, with a docstring."


def raw_call(api_base: str, alias: str, k: int, max_tokens: int) -> int:
    body = {
        "model": alias,
        "messages": [{"role": "user", "content": prompt(k)}],
        "temperature": 0.0,
        "max_tokens": max_tokens,
    }
    req = urllib.request.Request(
        f"{api_base}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer x"},
    )
    with urllib.request.urlopen(req, timeout=600) as r:
        return int(json.load(r)["usage"]["completion_tokens"])


def gateway_call(gw: Gateway, k: int, max_tokens: int) -> int:
    req = LLMRequest(
        model=MODEL,
        messages=({"role": "user", "content": prompt(k)},),
        temperature=0.0,
        max_tokens=max_tokens,
    )
    return gw.complete(req).completion_tokens


def one_round(pool: ThreadPoolExecutor, call, slots: int) -> tuple[int, float]:  # noqa: ANN001
    t0 = time.perf_counter()
    tokens = sum(pool.map(call, range(slots)))
    return tokens, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--litellm", action="store_true", help='transport = "litellm" for the model')
    args = ap.parse_args()

    ms = ModelSettings(n_parallel=args.slots, n_threads=args.threads, n_ctx_per_slot=1024,
                       transport="litellm" if args.litellm else "auto")  # fmt: skip
    settings = GatewaySettings(models={MODEL: ms}, cache_enabled=False)
    tok = {"raw": 0, "gateway": 0}
    ratios: list[float] = []
    sec = {"raw": 0.0, "gateway": 0.0}
    with Gateway(settings=settings) as gw, ThreadPoolExecutor(args.slots) as pool:
        t0 = time.perf_counter()
        gateway_call(gw, 0, 8)  # starts the server
        print(f"server start + first call: {time.perf_counter() - t0:.1f} s; "
              f"client: {gw.transport(MODEL).label} ({gw._routes[MODEL].transport})")
        (api_base,) = gw._local.running().values() if gw._local else ()
        alias = MODEL.split("/", 1)[1]
        sides = {
            "raw": lambda k: raw_call(api_base, alias, k, args.max_tokens),
            "gateway": lambda k: gateway_call(gw, k, args.max_tokens),
        }
        for call in sides.values():
            one_round(pool, call, args.slots)  # warm-up
        for r in range(args.rounds):
            tps = {}
            for side in (("raw", "gateway") if r % 2 == 0 else ("gateway", "raw")):
                n, dt = one_round(pool, sides[side], args.slots)
                tok[side] += n
                sec[side] += dt
                tps[side] = n / dt
                print(f"round {r + 1} {side:<7}: {n} tokens in {dt:.2f} s = {n / dt:.1f} tok/s")
            ratios.append(tps["gateway"] / tps["raw"])
    raw_tps = tok["raw"] / sec["raw"]
    gw_tps = tok["gateway"] / sec["gateway"]
    print(f"raw HTTP: {tok['raw']} tokens in {sec['raw']:.2f} s = {raw_tps:.1f} tok/s")
    print(f"gateway:  {tok['gateway']} tokens in {sec['gateway']:.2f} s = {gw_tps:.1f} tok/s")
    ok = gw_tps / raw_tps >= 0.95
    print(f"gateway/raw = {gw_tps / raw_tps:.3f} (target >= 0.95: {'met' if ok else 'MISSED'})")
    if len(ratios) > 1:
        mean = statistics.fmean(ratios)
        half = t95(len(ratios) - 1) * statistics.stdev(ratios) / math.sqrt(len(ratios))
        print(f"per-round gateway/raw: mean {mean:.3f}, 95% CI [{mean - half:.3f}, {mean + half:.3f}] "
              f"over {len(ratios)} rounds")


def t95(df: int) -> float:
    """Two-sided 95% Student-t quantile (numpy has none; scipy is not a dependency)."""
    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
             9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}  # fmt: skip
    return table.get(df) or next((v for k, v in sorted(table.items()) if k >= df), 1.96)


if __name__ == "__main__":
    main()
