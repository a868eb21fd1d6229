"""The gateway: one async core, a thread-safe sync facade, and everything around a call.

Around each call: response cache, budget check, per-endpoint concurrency
limit, per-call timeout, retries with exponential backoff and jitter, error
mapping, cost, ledger. All calls run on one event loop in a background thread
owned by the gateway, so the per-endpoint limits hold across every thread and
event loop that uses the same gateway (calls cross to it in batches, see
:mod:`metasearch.llm.hop`). The default backend sends OpenAI-compatible
endpoints over a direct HTTP fast path and the rest through litellm
(:mod:`metasearch.llm.transport`); everything above stays here, the same for both.

>>> from metasearch.llm import LLMRequest, scripted_gateway
>>> with scripted_gateway(["4"]) as gw:
...     gw.complete(LLMRequest(model="scripted/x", messages=({"role": "user", "content": "2+2"},))).text
'4'
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from metasearch.diskfull import DiskFullError, disk_full, is_disk_full
from metasearch.llm.backend import (
    Backend,
    BadRequest,
    CallTimeout,
    RateLimited,
    RawCompletion,
    Route,
    TransientError,
    fault_kind,
)
from metasearch.llm.budget import Budget
from metasearch.llm.cache import ResponseCache, cache_key
from metasearch.llm.hop import Hop
from metasearch.llm.ledger import Ledger, LedgerSnapshot
from metasearch.llm.local import LocalServers, ensure_model_file
from metasearch.llm.routing import DEFAULT_URLS, Router, check_reachable, cost_of, give_up
from metasearch.llm.settings import GatewaySettings, ModelSettings
from metasearch.llm.transport import TransportChoice, choose_transport
from metasearch.llm.types import (
    BudgetExceeded,
    LLMRequest,
    LLMResponse,
    ProviderError,
)

if TYPE_CHECKING:
    from metasearch.llm.billed_log import BilledLog
    from metasearch.llm.replies import OwedReplies

_DEFAULT: Any = object()
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


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
        self._router = Router(self.settings, lambda: self.backend)
        self._sems: dict[str, asyncio.Semaphore] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hop: Hop  # set with the loop
        self._thread: threading.Thread | None = None
        self._closed = False
        self.storage_error: DiskFullError | None = None  # the first reply the cache could not keep
        #: Replies a replay bills once more (``cache import --continue-spend``); set by the
        #: campaign builder for a directory that has them.
        self.owed: OwedReplies | None = None
        #: A campaign directory's log of billed calls (``llm.billed_log``); set by the builder.
        self.billed_log: BilledLog | None = None

    # -- public API -------------------------------------------------------

    def complete(self, request: LLMRequest) -> LLMResponse:
        """Make one call; blocks. Safe to call from many threads at once."""
        self._ensure_loop()
        if threading.current_thread() is self._thread:
            raise RuntimeError("Gateway.complete() called on the gateway's loop; await acomplete()")
        return self._hop.run(self._acomplete(request)).result()

    async def acomplete(self, request: LLMRequest) -> LLMResponse:
        """Make one call from any event loop (it runs on the gateway's own loop)."""
        loop = self._ensure_loop()
        if asyncio.get_running_loop() is loop:
            return await self._acomplete(request)
        return await self._hop.call(self._acomplete(request))  # type: ignore[no-any-return]

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
        route = self._router.build(model, start_local=False)
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
            check_reachable(model, url)
        return route

    def close(self) -> None:
        """Stop local servers and the loop thread; close the cache. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        local = self._router.close()
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
        if self.owed is not None:
            self.owed.close()
        if self.billed_log is not None:
            self.billed_log.close()

    @property
    def _routes(self) -> dict[str, Route]:
        return self._router.routes

    @property
    def _local(self) -> LocalServers | None:
        """The embedded servers started so far (None before the first ``local/`` call)."""
        return self._router.local

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop thread --------------------------------------------------

    async def _shutdown(self) -> None:
        """Close the backend and cancel what is left on the loop (e.g. litellm's log workers)."""
        self._hop.close()
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
                self._hop = Hop(loop)
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
        if self.owed is not None and self.owed.settle(key):
            return self._rebilled(req, hit, latency)
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

    def _rebilled(self, req: LLMRequest, hit: dict[str, Any], latency: float) -> LLMResponse:
        """A replayed reply its campaign paid for: counted as the original call was.

        Never refused by a cap: the original was made within the budget, and refusing
        would send the replay down another path. The price is the one recorded with
        the reply, else the config's per-model price (replies cached before
        2026-12-02 carry none; a hosted model's then counts $0).
        """
        pt, ct = int(hit["prompt_tokens"]), int(hit["completion_tokens"])
        cost = hit.get("cost_usd")
        if not isinstance(cost, int | float) or isinstance(cost, bool):
            ms = self.settings.for_model(req.model)
            cost = (pt * (ms.price_input_per_mtok or 0.0)
                    + ct * (ms.price_output_per_mtok or 0.0)) / 1e6
        self.ledger.record_call(
            role=req.role, candidate=req.candidate, prompt_tokens=pt, completion_tokens=ct,
            cost_usd=float(cost), latency_s=latency,
        )  # fmt: skip
        self.budget.charge(usd=float(cost), tokens=pt + ct, reserved=False)
        if self.billed_log is not None:
            self.billed_log.append(usd=float(cost), tokens=pt + ct)
        return LLMResponse(
            text=hit["text"], model=req.model, prompt_tokens=pt, completion_tokens=ct,
            cost_usd=float(cost), latency_s=latency, cached=True,
            finish_reason=hit["finish_reason"], meta=dict(hit.get("meta") or {}),
        )  # fmt: skip

    async def _acall(self, req: LLMRequest, key: str | None, t0: float) -> LLMResponse:
        self.check_storage()  # no new bill for a reply that could not be kept
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
                self.ledger.record_error(role=req.role, candidate=req.candidate,
                                         kind=fault_kind(exc.__cause__ or exc))
            raise
        ms = self.settings.for_model(req.model)
        cost = cost_of(route, ms, raw)
        latency = time.perf_counter() - t0
        resp = LLMResponse(
            text=raw.text, model=req.model, prompt_tokens=raw.prompt_tokens,
            completion_tokens=raw.completion_tokens, cost_usd=cost, latency_s=latency,
            cached=False, finish_reason=raw.finish_reason, meta=meta,
        )  # fmt: skip
        full = self._store(key, raw, meta, cost) if key is not None else None
        self.ledger.record_call(
            role=req.role, candidate=req.candidate, prompt_tokens=raw.prompt_tokens,
            completion_tokens=raw.completion_tokens, cost_usd=cost, latency_s=latency,
        )  # fmt: skip
        self.budget.charge(usd=cost, tokens=raw.prompt_tokens + raw.completion_tokens)
        if self.billed_log is not None:
            self.billed_log.append(usd=cost, tokens=raw.prompt_tokens + raw.completion_tokens)
        if full is not None:  # billed (counted above), but it could not be kept
            raise full
        return resp

    def _store(self, key: str, raw: RawCompletion, meta: dict[str, Any],
               cost: float) -> DiskFullError | None:
        """Cache a reply (with its price, for a replay that bills it again); a full disk is
        returned (and kept for :meth:`check_storage`)."""
        assert self.cache is not None
        try:
            self.cache.set(key, {
                "text": raw.text, "prompt_tokens": raw.prompt_tokens,
                "completion_tokens": raw.completion_tokens,
                "finish_reason": raw.finish_reason, "meta": meta, "cost_usd": cost,
            })
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            self.storage_error = disk_full(self.cache.directory, exc)
            return disk_full(self.cache.directory, exc)
        return None

    def check_storage(self) -> None:
        """Raise :class:`DiskFullError` if a reply could not be cached (the disk is full).

        Calls made from the sandbox's threads reach the agent only as a failed
        call; the caller of an evaluation asks here, so that such a failure stops
        the campaign instead of being scored as the agent's.
        """
        if self.storage_error is not None:
            err = self.storage_error
            raise DiskFullError(str(err), path=err.path, reason=err.reason)

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
                raise give_up(err, route, attempt + 1) from err
            self.ledger.record_retry(fault_kind(err), role=req.role, candidate=req.candidate)
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

    async def _aroute(self, model: str) -> Route:
        route = self._router.routes.get(model)
        if route is None:  # built off the loop: it may import litellm or start a local server
            route = await asyncio.to_thread(self._router.build, model, True)
        return route
