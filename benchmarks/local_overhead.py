"""Tokens/s of the embedded 0.5B model through the gateway vs raw HTTP to the same server.

Both sides send the same prompt at temperature 0 to the same xllamacpp server
(started by the gateway), alternating, after one warm-up call; the cache is
off. Prints the ratio gateway/raw (target >= 0.9).

    python benchmarks/local_overhead.py [--rounds 3] [--max-tokens 48]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metasearch.llm import Gateway, GatewaySettings, LLMRequest, ModelSettings  # noqa: E402

MODEL = "local/qwen2.5-coder-0.5b"
PROMPT = "Write a Python function that returns the n-th Fibonacci number, with a docstring."


def raw_call(api_base: str, alias: str, max_tokens: int) -> tuple[int, float]:
    body = {
        "model": alias,
        "messages": [{"role": "user", "content": PROMPT}],
        "temperature": 0.0,
        "max_tokens": max_tokens,
    }
    req = urllib.request.Request(
        f"{api_base}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer x"},
    )
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        out = json.load(r)
    return int(out["usage"]["completion_tokens"]), time.perf_counter() - t0


def gateway_call(gw: Gateway, max_tokens: int) -> tuple[int, float]:
    req = LLMRequest(
        model=MODEL,
        messages=({"role": "user", "content": PROMPT},),
        temperature=0.0,
        max_tokens=max_tokens,
    )
    t0 = time.perf_counter()
    reply = gw.complete(req)
    return reply.completion_tokens, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    ms = ModelSettings(n_parallel=1, n_threads=args.threads, n_ctx_per_slot=1024)
    settings = GatewaySettings(models={MODEL: ms}, cache_enabled=False)
    with Gateway(settings=settings) as gw:
        t0 = time.perf_counter()
        gateway_call(gw, args.max_tokens)  # starts the server, imports litellm, warms the cache
        print(f"server start + first call: {time.perf_counter() - t0:.1f} s")
        (api_base,) = gw._local.running().values() if gw._local else ()
        alias = MODEL.split("/", 1)[1]
        raw_call(api_base, alias, args.max_tokens)
        tok = {"raw": 0, "gateway": 0}
        sec = {"raw": 0.0, "gateway": 0.0}
        for _ in range(args.rounds):
            for side in ("raw", "gateway"):
                if side == "raw":
                    n, dt = raw_call(api_base, alias, args.max_tokens)
                else:
                    n, dt = gateway_call(gw, args.max_tokens)
                tok[side] += n
                sec[side] += dt
    raw_tps = tok["raw"] / sec["raw"]
    gw_tps = tok["gateway"] / sec["gateway"]
    print(f"raw HTTP: {tok['raw']} tokens in {sec['raw']:.2f} s = {raw_tps:.1f} tok/s")
    print(f"gateway:  {tok['gateway']} tokens in {sec['gateway']:.2f} s = {gw_tps:.1f} tok/s")
    print(f"gateway/raw = {gw_tps / raw_tps:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
