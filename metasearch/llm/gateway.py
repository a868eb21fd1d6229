"""The gateway: one async core, a thread-safe sync facade, and everything around a call.

Around each call: response cache, budget check, per-endpoint concurrency
limit, per-call timeout, retries with exponential backoff and jitter, error
mapping, cost, ledger. All calls run on one event loop in a background thread
owned by the gateway, so the per-endpoint limits hold across every thread and
event loop that uses the same gateway.

>>> from metasearch.llm import LLMRequest, scripted_gateway
>>> with scripted_gateway(["4"]) as gw:
...     gw.complete(LLMRequest(model="scripted/x", messages=({"role": "user", "content": "2+2"},))).text
'4'
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from concurrent.futures import Future
from dataclasses import replace
from typing import Any, Literal
from urllib.parse import urlparse

from metasearch.llm.backend import (
    Backend,
    BadRequest,
    CallTimeout,
    ConnectionFailed,
    RateLimited,
    RawCompletion,
    Route,
    ServerError,
    TransientError,
)
from metasearch.llm.budget import Budget
from metasearch.llm.cache import ResponseCache, cache_key
from metasearch.llm.ledger import Ledger, LedgerSnapshot
from metasearch.llm.local import LocalServers, ensure_model_file, local_name
from metasearch.llm.settings import GatewaySettings, ModelSettings
from metasearch.llm.transport import TransportChoice, choose_transport
from metasearch.llm.types import (
    BudgetExceeded,
    EndpointUnreachableError,
    LLMError,
    LLMRequest,
    LLMResponse,
    LocalModelError,
    ProviderError,
    UnknownModelError,
)

_DEFAULT: Any = object()
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
DEFAULT_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "ollama": "http://localhost:11434",
    "ollama_chat": "http://localhost:11434",
}


class Gateway:
    """All model calls of a process go through one ``Gateway``.

    Parts are injected; any not given is built from ``settings``. Pass
    ``cache=None`` to run without a cache (``settings.cache_enabled=False``
    does the same for the default cache).
    """

    def __init__(
        self,
        *,
        settings: GatewaySettings | None = None,
        backend: Backend | None = None,
        cache: ResponseCache | None = _DEFAULT,
        ledger: Ledger | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.settings = settings or GatewaySettings()
        if backend is None:
            from metasearch.llm.transport import AutoBackend

            backend = AutoBackend()  # the fast path or litellm, per route
        self.backend = backend
        if cache is _DEFAULT:
            cache = (
                ResponseCache(directory=self.settings.cache_dir / "responses")
                if self.settings.cache_enabled
                else None
            )
        self.cache = cache
        self.ledger = ledger if ledger is not None else Ledger()
        self.budget = budget if budget is not None else Budget(self.settings.budget)
        self._lock = threading.Lock()
        self._inflight: dict[str, asyncio.Future[None]] = {}  # cache key -> its call
        self._routes: dict[str, Route] = {}
        self._local: LocalServers | None = None
        self._sems: dict[str, asyncio.Semaphore] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- public API -------------------------------------------------------

    def complete(self, request: LLMRequest) -> LLMResponse:
        """Make one call; blocks. Safe to call from many threads at once."""
        loop = self._ensure_loop()
        if threading.current_thread() is self._thread:
            raise RuntimeError("Gateway.complete() called on the gateway's loop; await acomplete()")
        return asyncio.run_coroutine_threadsafe(self._acomplete(request), loop).result()

    async def acomplete(self, request: LLMRequest) -> LLMResponse:
        """Make one call from any event loop (it runs on the gateway's own loop)."""
        loop = self._ensure_loop()
        if asyncio.get_running_loop() is loop:
            return await self._acomplete(request)
        fut: Future[LLMResponse] = asyncio.run_coroutine_threadsafe(self._acomplete(request), loop)
        return await asyncio.wrap_future(fut)

    def note(self, event: str, *, candidate: str | None = None, n: int = 1) -> None:
        """Count a reply-protocol event (the ``Transport.note`` of the runtime)."""
        self.ledger.note(event, candidate=candidate, n=n)

    def snapshot(self) -> LedgerSnapshot:
        return self.ledger.snapshot()

    def resolve_protocol(self, model: str) -> Literal["json", "sections"]:
        """The reply protocol for ``model``: its setting, or ``auto``'s choice.

        ``auto`` picks ``sections`` for ``local/`` models and for ``openai/``
        models served from localhost (small self-hosted models do better with
        markdown sections than with JSON), and ``json`` otherwise.
        """
        ms = self.settings.for_model(model)
        if ms.protocol != "auto":
            return ms.protocol
        if model.startswith("local/"):
            return "sections"
        if model.startswith("openai/") and ms.api_base:
            host = urlparse(ms.api_base).hostname or ""
            if host in _LOCAL_HOSTS:
                return "sections"
        return "json"

    def transport(self, model: str) -> TransportChoice:
        """Which client makes ``model``'s calls (the fast path or litellm), and why.

        A gateway given its own backend (a test double) still reports the
        choice its default backend would make.
        """
        return choose_transport(model, self.settings.for_model(model))

    def preflight(self, model: str) -> Route:
        """Check that ``model`` is usable before anything is spent; raise an ``LLMError`` if not.

        Checks the model is known, its key is set, its endpoint accepts a TCP
        connection (for ``api_base`` and ollama models), and for ``local/``
        models that the extra is installed and the weights assemble.
        """
        route = self._build_route(model, start_local=False)
        check_known = getattr(self.backend, "check_known", None)
        if callable(check_known):
            check_known(route, declared=model in self.settings.models)
        if route.local:
            if not getattr(self.backend, "handles_local", False):
                import importlib.util

                from metasearch.llm.local import _missing_extra

                if importlib.util.find_spec("xllamacpp") is None:
                    raise _missing_extra("xllamacpp (the embedded llama.cpp server)")
                ensure_model_file(model, self.settings)
            return route
        url = route.api_base or (
            DEFAULT_URLS.get(route.provider) if route.provider.startswith("ollama") else None
        )
        if url:
            _check_reachable(model, url)
        return route

    def close(self) -> None:
        """Stop local servers and the loop thread; close the cache. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread, local = self._loop, self._thread, self._local
        # Cancel in-flight calls first: a local server's destructor waits for
        # its busy slots, and a request nobody awaits any more keeps one busy.
        if loop is not None and thread is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
            except Exception:  # best effort: the loop stops below either way
                pass
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            if not loop.is_running():
                loop.close()
        if local is not None:
            local.close()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop thread --------------------------------------------------

    async def _shutdown(self) -> None:
        """Close the backend and cancel what is left on the loop (e.g. litellm's log workers)."""
        aclose = getattr(self.backend, "aclose", None)
        if callable(aclose):
            await aclose()
        me = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not me]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise RuntimeError("the gateway is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name="metasearch-gateway", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    # -- one call ---------------------------------------------------------

    async def _acomplete(self, req: LLMRequest) -> LLMResponse:
        """The cache, then the call; an identical request already in flight is waited for.

        Candidates evaluated concurrently can send the same request at once
        (two agents with the same first call); without waiting, both would
        miss the cache and both be billed.
        """
        t0 = time.perf_counter()
        key = cache_key(req) if self.cache is not None and self.cache.enabled else None
        if key is None:
            return await self._acall(req, None, t0)
        leader = self._inflight.get(key)
        if leader is not None:
            await asyncio.wait([leader])  # its outcome is read back from the cache below
        hit = self._cached(req, key, t0)
        if hit is not None:
            return hit
        future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            return await self._acall(req, key, t0)
        finally:
            self._inflight.pop(key, None)
            future.set_result(None)

    def _cached(self, req: LLMRequest, key: str, t0: float) -> LLMResponse | None:
        assert self.cache is not None
        hit = self.cache.get(key)
        if hit is None:
            return None
        latency = time.perf_counter() - t0
        self.ledger.record_call(
            role=req.role, candidate=req.candidate, prompt_tokens=0,
            completion_tokens=0, cost_usd=0.0, latency_s=latency, cached=True,
        )  # fmt: skip
        return LLMResponse(
            text=hit["text"], model=req.model, prompt_tokens=hit["prompt_tokens"],
            completion_tokens=hit["completion_tokens"], cost_usd=0.0,
            latency_s=latency, cached=True, finish_reason=hit["finish_reason"],
            meta=dict(hit.get("meta") or {}),
        )  # fmt: skip

    async def _acall(self, req: LLMRequest, key: str | None, t0: float) -> LLMResponse:
        route = None
        try:
            route = await self._aroute(req.model)
            self.budget.reserve()
        except BudgetExceeded:
            raise
        except Exception:
            self.ledger.record_error(role=req.role, candidate=req.candidate)
            raise
        try:
            raw, meta = await self._call_with_retries(req, route)
        except BaseException as exc:
            self.budget.release()
            if not isinstance(exc, BudgetExceeded | asyncio.CancelledError):
                self.ledger.record_error(role=req.role, candidate=req.candidate)
            raise
        ms = self.settings.for_model(req.model)
        cost = _cost(route, ms, raw)
        latency = time.perf_counter() - t0
        resp = LLMResponse(
            text=raw.text, model=req.model, prompt_tokens=raw.prompt_tokens,
            completion_tokens=raw.completion_tokens, cost_usd=cost, latency_s=latency,
            cached=False, finish_reason=raw.finish_reason, meta=meta,
        )  # fmt: skip
        if key is not None:
            assert self.cache is not None
            self.cache.set(
                key,
                {
                    "text": raw.text,
                    "prompt_tokens": raw.prompt_tokens,
                    "completion_tokens": raw.completion_tokens,
                    "finish_reason": raw.finish_reason,
                    "meta": meta,
                },
            )
        self.ledger.record_call(
            role=req.role, candidate=req.candidate, prompt_tokens=raw.prompt_tokens,
            completion_tokens=raw.completion_tokens, cost_usd=cost, latency_s=latency,
        )  # fmt: skip
        self.budget.charge(usd=cost, tokens=raw.prompt_tokens + raw.completion_tokens)
        return resp

    async def _call_with_retries(
        self, req: LLMRequest, route: Route
    ) -> tuple[RawCompletion, dict[str, Any]]:
        ms = self.settings.for_model(req.model)
        sem = self._semaphore(route, ms)
        meta: dict[str, Any] = {}
        attempt = 0
        fell_back = False
        while True:
            try:
                async with sem:
                    # asyncio.timeout, unlike wait_for, starts no extra task per call
                    async with asyncio.timeout(route.timeout_s):
                        raw = await self.backend.acomplete(req, route)
                if attempt:
                    meta["retries"] = attempt
                return raw, meta
            except TimeoutError:
                err: TransientError = CallTimeout(f"no reply within {route.timeout_s:g} s")
            except BadRequest as e:
                rf = req.response_format or {}
                if not fell_back and rf.get("type") == "json_schema":
                    fell_back = True
                    req = replace(req, response_format={"type": "json_object"})
                    meta["response_format_fallback"] = "json_object"
                    continue
                raise ProviderError(
                    f"The provider refused the request to '{req.model}' as malformed: {e}"
                ) from e
            except TransientError as e:
                err = e
            if attempt >= ms.max_retries:
                raise _give_up(err, route, attempt + 1) from err
            delay = self._delay(attempt, err)
            attempt += 1
            await asyncio.sleep(delay)

    def _delay(self, attempt: int, err: TransientError) -> float:
        """Exponential backoff with jitter; at least a 429's ``Retry-After`` (capped).

        The server's wait is capped at ``retry_max_delay_s`` too, so a
        misconfigured ``Retry-After: 3600`` cannot stall a campaign for an hour.
        """
        s = self.settings
        delay = min(s.retry_max_delay_s, s.retry_base_delay_s * (2**attempt))
        delay *= 0.5 + random.random()
        wait = getattr(err, "retry_after_s", None) if isinstance(err, RateLimited) else None
        if wait is not None:
            delay = max(delay, min(s.retry_max_delay_s, wait))
        return delay

    def _semaphore(self, route: Route, ms: ModelSettings) -> asyncio.Semaphore:
        sem = self._sems.get(route.endpoint)
        if sem is None:
            sem = self._sems[route.endpoint] = asyncio.Semaphore(route.concurrency)
        return sem

    def _limit(self, ms: ModelSettings, local: bool) -> int:
        """Calls in flight at once to one endpoint (the first model to use it sets it)."""
        return ms.max_concurrency or (ms.n_parallel if local else self.settings.default_concurrency)

    # -- routes -----------------------------------------------------------

    async def _aroute(self, model: str) -> Route:
        route = self._routes.get(model)
        if route is None:
            route = await asyncio.to_thread(self._build_route, model, True)
        return route

    def _build_route(self, model: str, start_local: bool = True) -> Route:
        with self._lock:
            route = self._routes.get(model)
        if route is not None:
            return route
        if "/" not in model:
            raise UnknownModelError(
                f"Model '{model}' names no provider. Write models as <provider>/<model>, e.g. "
                "openai/gpt-4o-mini, anthropic/claude-3-5-haiku-20241022, ollama/llama3, or "
                "local/qwen2.5-coder-1.5b."
            )
        provider = model.split("/", 1)[0]
        ms = self.settings.for_model(model)
        priced = ms.price_input_per_mtok is not None or ms.price_output_per_mtok is not None
        common: dict[str, Any] = {
            "timeout_s": ms.timeout_s, "transport": choose_transport(model, ms).name,
            "concurrency": self._limit(ms, provider == "local"), "price_map": not priced,
        }  # fmt: skip
        if provider == "local":
            name = local_name(model)
            route = Route(model, model, "local", f"local/{name}", local=True,
                          **{**common, "price_map": False})  # fmt: skip
            if not getattr(self.backend, "handles_local", False):
                from metasearch.llm.local import KNOWN_MODELS, unknown_local

                if name not in KNOWN_MODELS and not name.endswith(".gguf"):
                    raise unknown_local(model)
                if not start_local:
                    return route
                alias, api_base = self._local_servers().endpoint(model)
                route = replace(
                    route, target=f"openai/{alias}", api_base=api_base, api_key="x",
                    endpoint=api_base,
                )  # fmt: skip
        else:
            route = Route(
                model=model, target=model, provider=provider,
                endpoint=ms.api_base or provider, api_base=ms.api_base,
                api_key_env=ms.api_key_env, **common,
            )  # fmt: skip
        self.backend.check(route)
        if start_local or not route.local:
            with self._lock:
                self._routes.setdefault(model, route)
        return route

    def _local_servers(self) -> LocalServers:
        with self._lock:
            if self._closed:
                raise LocalModelError("The gateway is closed; it starts no local model servers.")
            if self._local is None:
                self._local = LocalServers(self.settings)
            return self._local


def _cost(route: Route, ms: ModelSettings, raw: RawCompletion) -> float:
    """User prices win; local models are free; else the backend's figure, or 0 if unknown."""
    if ms.price_input_per_mtok is not None or ms.price_output_per_mtok is not None:
        pin = ms.price_input_per_mtok or 0.0
        pout = ms.price_output_per_mtok or 0.0
        return (raw.prompt_tokens * pin + raw.completion_tokens * pout) / 1e6
    if route.local:
        return 0.0
    return float(raw.cost_usd or 0.0)


def _url(route: Route) -> str:
    return route.api_base or DEFAULT_URLS.get(route.provider, f"the {route.provider} API")


def _give_up(err: TransientError, route: Route, attempts: int) -> LLMError:
    tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
    if isinstance(err, ConnectionFailed):
        return EndpointUnreachableError(
            f"Model '{route.model}': the endpoint {_url(route)} could not be reached after "
            f"{tries} ({err}). Check that the server is running and the api_base is right."
        )
    if isinstance(err, RateLimited):
        why = "kept rate-limiting the calls"
        fix = "Lower max_concurrency for this model or raise max_retries."
    elif isinstance(err, ServerError):
        why = "kept answering with server errors"
        fix = "The provider may be down; try again later or raise max_retries."
    else:
        why = f"did not answer within timeout_s = {route.timeout_s:g} s"
        fix = "Raise timeout_s for this model, or lower max_tokens."
    return ProviderError(
        f"Model '{route.model}' at {_url(route)} {why} ({tries}; last: {err}). {fix}"
    )


def _check_reachable(model: str, url: str, timeout_s: float = 3.0) -> None:
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as e:
        raise EndpointUnreachableError(
            f"Model '{model}': the endpoint {url} could not be reached ({e.strerror or e}). "
            "Check that the server is running and the api_base is right."
        ) from e
