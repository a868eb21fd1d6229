"""The fast path: OpenAI-compatible ``/chat/completions`` over aiohttp, without litellm.

For servers the user runs (vLLM, llama.cpp, the embedded ``local/`` models),
litellm's 9-15 ms of CPU per call is the bottleneck of a whole campaign,
while the protocol is one JSON POST. This client does that POST on one
aiohttp session per endpoint, whose connection pool is sized to the
endpoint's concurrency limit and kept alive between calls. Everything else
the gateway promises (cache, budget, limits, retries, timeout, ledger) stays
in the gateway, around this backend exactly as around litellm's.

What it sends and returns matches the litellm path field for field (the
contract suite in :mod:`metasearch.testing.backend_contract` holds both to
it): the same request body, the same ``RawCompletion``, the same error
classes and, for an ``openai/`` model litellm's price map knows, the same
list price, looked up once per model rather than computed per call.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from metasearch.llm.backend import (
    BadRequest,
    CallTimeout,
    ConnectionFailed,
    MalformedReply,
    RateLimited,
    RawCompletion,
    Route,
    ServerError,
    retry_after_s,
)
from metasearch.llm.litellm_backend import check_key
from metasearch.llm.refusals import (
    call_failed,
    context_window,
    is_context_overflow,
    key_refused,
    no_choices,
    unknown_model,
)
from metasearch.llm.types import LLMRequest, ProviderError

# Idle connections are dropped after this long. Servers close idle
# keep-alive connections too (uvicorn, which vLLM uses, and llama.cpp's after
# 5 s); reusing one they have just closed fails the call, so ours go first.
KEEPALIVE_S = 4.0
_UNSET: Any = object()
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
# The key each provider's own servers are sent when none is configured, as litellm does.
_DEFAULT_KEYS = {"openai": ("OPENAI_API_KEY", "x"), "hosted_vllm": ("HOSTED_VLLM_API_KEY",
                                                                    "fake-api-key")}  # fmt: skip


def price_per_token(target: str) -> tuple[float, float] | None:
    """(input, output) USD per token from litellm's price map, or None if it has no price.

    The same entry litellm's own pricing reads for this model string: the
    full name, or the bare name when the map files it under the same provider
    (``openai/gpt-4o-mini`` -> ``gpt-4o-mini``). Imports litellm (about 2 s,
    once), so it runs when a route is built, never on the event loop.
    """
    from metasearch.llm.litellm_backend import _litellm

    cost = _litellm().model_cost
    provider, _, bare = target.partition("/")
    info = cost.get(target)
    if info is None:
        info = cost.get(bare)
        if info is not None and info.get("litellm_provider") != provider:
            info = None
    if not info or "input_cost_per_token" not in info:
        return None
    return float(info["input_cost_per_token"]), float(info.get("output_cost_per_token") or 0.0)


def request_body(request: LLMRequest, route: Route) -> dict[str, Any]:
    """The JSON litellm sends for the same request to an OpenAI-compatible server."""
    body: dict[str, Any] = {
        "model": route.target.split("/", 1)[1],
        "messages": [dict(m) for m in request.messages],
        "temperature": request.temperature,
    }
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.response_format is not None:
        body["response_format"] = request.response_format
    return body


def api_key(route: Route) -> str | None:
    """The bearer token: the route's own, its ``api_key_env``, else the provider's default."""
    if route.api_key:
        return route.api_key
    if route.api_key_env:
        return os.environ.get(route.api_key_env)
    var, fallback = _DEFAULT_KEYS.get(route.provider, ("", None))
    return (os.environ.get(var) if var else None) or fallback


@dataclass
class _Pool:
    session: Any
    loop: asyncio.AbstractEventLoop
    proxy: str | None
    url: Any  # the parsed ``/chat/completions`` URL: parsing it per call cost a few us


class OpenAIHTTPBackend:
    """Direct calls to OpenAI-compatible servers; one keep-alive pool per endpoint.

    Sessions are made on the loop that first calls (the gateway's own loop)
    and closed by :meth:`aclose` on it.
    """

    def __init__(self) -> None:
        self._pools: dict[str, _Pool] = {}
        self._prices: dict[str, tuple[float, float] | None] = {}
        self._lock = threading.Lock()

    def check(self, route: Route) -> None:
        """The key must be set; the list price is looked up here, off the event loop."""
        if not route.api_base:
            raise ProviderError(
                f"Model '{route.model}' has no api_base, so the direct OpenAI-compatible client "
                'cannot reach it. Set api_base for it, or transport = "litellm".'
            )
        check_key(route)
        if route.price_map:
            self._price(route)

    def _price(self, route: Route) -> tuple[float, float] | None:
        with self._lock:
            if route.target in self._prices:
                return self._prices[route.target]
        prices = price_per_token(route.target)
        with self._lock:
            self._prices[route.target] = prices
        return prices

    def _pool(self, route: Route) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(route.endpoint)
        if pool is not None and pool.loop is loop:
            return pool
        import aiohttp

        connector = aiohttp.TCPConnector(
            limit=route.concurrency, limit_per_host=route.concurrency,
            keepalive_timeout=KEEPALIVE_S,
        )  # fmt: skip
        from yarl import URL

        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),  # the gateway times each call itself
            trust_env=False,  # proxies are resolved once below, not on every request
            cookie_jar=aiohttp.DummyCookieJar(),  # an API client keeps no cookies
            skip_auto_headers=("User-Agent",),
        )
        base = route.api_base or ""
        url = URL(f"{base.rstrip('/')}/chat/completions")
        pool = self._pools[route.endpoint] = _Pool(session, loop, _proxy_for(base), url)
        return pool

    async def acomplete(self, request: LLMRequest, route: Route) -> RawCompletion:
        import aiohttp

        pool = self._pool(route)
        headers = {"Content-Type": "application/json"}
        key = api_key(route)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(request_body(request, route)).encode()
        try:
            async with pool.session.post(pool.url, data=data, headers=headers,
                                         proxy=pool.proxy) as r:  # fmt: skip
                status, payload, resp_headers = r.status, await r.read(), r.headers
        except aiohttp.ServerTimeoutError as e:
            raise CallTimeout(f"the endpoint timed out ({e})") from e
        except aiohttp.ClientConnectorError as e:
            raise ConnectionFailed(str(e) or type(e).__name__) from e
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as e:
            raise ConnectionFailed(f"the server closed the connection before answering ({e})") from e
        except aiohttp.ClientError as e:
            raise ConnectionFailed(f"{type(e).__name__}: {e}") from e
        if status >= 300:
            raise _refusal(status, payload, resp_headers, route)
        raw = _parse(payload, route)
        prices = None
        if route.price_map and not route.local:
            prices = self._prices.get(route.target, _UNSET)
            if prices is _UNSET:  # a route this backend never checked: look it up off the loop
                prices = await asyncio.to_thread(self._price, route)
        if prices is None:
            return raw
        cost = raw.prompt_tokens * prices[0] + raw.completion_tokens * prices[1]
        return RawCompletion(raw.text, raw.prompt_tokens, raw.completion_tokens,
                             raw.finish_reason, cost)  # fmt: skip

    async def aclose(self) -> None:
        pools, self._pools = self._pools, {}
        loop = asyncio.get_running_loop()
        for pool in pools.values():
            if pool.loop is loop:
                await pool.session.close()


def _proxy_for(api_base: str) -> str | None:
    """The proxy the environment names for ``api_base`` (never for loopback), resolved once."""
    host = urlparse(api_base).hostname or ""
    if host in _LOOPBACK:
        return None
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        proxy, _auth = get_env_proxy_for_url(URL(api_base))
    except LookupError:
        return None
    return str(proxy)


def _detail(payload: bytes) -> str:
    """The server's own error message: OpenAI's ``error.message``, else the body's start."""
    try:
        obj = json.loads(payload)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        err = obj.get("error", obj)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"]).splitlines()[0][:300]
        if isinstance(err, str) and err:
            return err.splitlines()[0][:300]
    text = payload.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:300] if text else "(empty body)"


def _refusal(status: int, payload: bytes, headers: Any, route: Route) -> Exception:
    """An HTTP error status as the gateway's error class, as litellm's mapping would give it."""
    detail = f"HTTP {status}: {_detail(payload)}"
    if status == 429:
        return RateLimited(detail, retry_after_s=retry_after_s(headers))
    if status >= 500:
        return ServerError(detail)
    if status == 408:
        return CallTimeout(detail)
    if status in (400, 422):
        return context_window(route, detail) if is_context_overflow(detail) else BadRequest(detail)
    if status == 401:
        return key_refused(route, detail)
    if status == 404:
        return unknown_model(route, detail)
    return call_failed(route, detail)


def _parse(payload: bytes, route: Route) -> RawCompletion:
    try:
        obj = json.loads(payload)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        start = payload[:80].decode("utf-8", "replace")
        raise MalformedReply(f"the endpoint answered 200 with a body that is not JSON: {start!r}")
    choices = obj.get("choices")
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise MalformedReply(str(no_choices(route)))
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise MalformedReply(f"Model '{route.model}' answered a choice without a message.")
    content = message.get("content")
    usage = obj.get("usage") or {}
    return RawCompletion(
        text=content if isinstance(content, str) else "",
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        finish_reason=choice.get("finish_reason"),
    )
