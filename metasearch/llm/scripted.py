"""A scripted backend: a test double that answers without any model.

Never the default backend; use it in unit tests::

    from metasearch.llm import LLMRequest, scripted_gateway

    with scripted_gateway(["## answer\\n4"]) as gw:
        reply = gw.complete(LLMRequest(model="scripted/test", messages=({"role": "user", "content": "2+2?"},)))
        assert reply.text == "## answer\\n4"

    # a function of the request, with two rate-limit failures first
    gw = scripted_gateway(lambda req: req.messages[-1]["content"].upper(),
                          failures=["rate_limit", "rate_limit"])

Replies given as a list are used in order and then cycled. Token counts are
faked (about four characters a token). ``calls`` keeps every request seen and
``max_in_flight`` the highest number of concurrent calls.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from metasearch.llm.backend import (
    BadRequest,
    CallTimeout,
    ConnectionFailed,
    RateLimited,
    RawCompletion,
    Route,
    ServerError,
)
from metasearch.llm.cache import ResponseCache
from metasearch.llm.settings import GatewaySettings
from metasearch.llm.types import LLMRequest, UnknownModelError

Reply = str | RawCompletion
Script = Sequence[Reply] | Callable[[LLMRequest], Reply]

FAILURES: dict[str, Callable[[], Exception]] = {
    "rate_limit": lambda: RateLimited("scripted: 429 rate limited"),
    "5xx": lambda: ServerError("scripted: 503 service unavailable"),
    "timeout": lambda: CallTimeout("scripted: timed out"),
    "connection_refused": lambda: ConnectionFailed("scripted: connection refused"),
    "bad_request": lambda: BadRequest("scripted: response_format not supported"),
}


def fake_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


class ScriptedBackend:
    """Answers from ``replies`` (cycled) or ``fn(request)``; can inject failures.

    ``failures`` is consumed one per call before any reply: each item is one of
    ``"rate_limit"``, ``"5xx"``, ``"timeout"``, ``"connection_refused"``,
    ``"bad_request"``. ``fn`` may also raise those classes itself (see
    :mod:`metasearch.llm.backend`). ``delay_s`` simulates latency without
    blocking the gateway's event loop. ``known_models`` (optional) makes
    :meth:`check` reject other model names with ``UnknownModelError``.
    """

    handles_local = True  # answers ``local/`` models itself: the gateway starts no server

    def __init__(
        self,
        replies: Sequence[Reply] | None = None,
        *,
        fn: Callable[[LLMRequest], Reply] | None = None,
        failures: Iterable[str] = (),
        delay_s: float = 0.0,
        finish_reason: str = "stop",
        known_models: Iterable[str] | None = None,
    ) -> None:
        if (replies is None) == (fn is None):
            raise ValueError("ScriptedBackend needs exactly one of replies=[...] or fn=...")
        if replies is not None and not replies:
            raise ValueError("ScriptedBackend(replies=[]) has nothing to answer with")
        bad = [f for f in failures if f not in FAILURES]
        if bad:
            raise ValueError(f"unknown failure kinds {bad}; known: {sorted(FAILURES)}")
        self._replies = list(replies) if replies is not None else None
        self._fn = fn
        self._failures = list(failures)
        self.delay_s = delay_s
        self.finish_reason = finish_reason
        self.known_models = set(known_models) if known_models is not None else None
        self.calls: list[LLMRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._n = 0

    def check(self, route: Route) -> None:
        if self.known_models is not None and route.model not in self.known_models:
            raise UnknownModelError(
                f"Unknown model '{route.model}'. The scripted backend knows: "
                f"{', '.join(sorted(self.known_models))}."
            )

    async def acomplete(self, request: LLMRequest, route: Route) -> RawCompletion:
        with self._lock:
            self.calls.append(request)
            failure = self._failures.pop(0) if self._failures else None
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if failure is not None:
                raise FAILURES[failure]()
            reply = self._next_reply(request)
            if inspect.isawaitable(reply):
                reply = await reply
        finally:
            with self._lock:
                self.in_flight -= 1
        if isinstance(reply, RawCompletion):
            return reply
        prompt = " ".join(m.get("content", "") for m in request.messages)
        return RawCompletion(
            text=str(reply),
            prompt_tokens=fake_tokens(prompt),
            completion_tokens=fake_tokens(str(reply)),
            finish_reason=self.finish_reason,
        )

    def _next_reply(self, request: LLMRequest) -> Any:
        if self._fn is not None:
            return self._fn(request)
        assert self._replies is not None
        with self._lock:
            reply = self._replies[self._n % len(self._replies)]
            self._n += 1
        return reply


_BACKEND_KW = {"failures", "delay_s", "finish_reason", "known_models"}


def scripted_gateway(
    script: Script,
    *,
    cache: ResponseCache | None = None,
    **kw: Any,
) -> Any:
    """A :class:`~metasearch.llm.gateway.Gateway` over a :class:`ScriptedBackend`.

    ``script`` is a list of replies or a function of the request. Keywords
    named like ``ScriptedBackend`` options (``failures``, ``delay_s``,
    ``finish_reason``, ``known_models``) go to the backend; ``settings``,
    ``ledger`` and ``budget`` to the gateway; any other keyword is a
    ``GatewaySettings`` field (e.g. ``default_concurrency=2``). The cache is
    off unless one is passed, and retries do not sleep unless
    ``retry_base_delay_s`` is given.
    """
    from metasearch.llm.gateway import Gateway

    backend_kw = {k: kw.pop(k) for k in list(kw) if k in _BACKEND_KW}
    gw_kw = {k: kw.pop(k) for k in list(kw) if k in ("ledger", "budget")}
    settings = kw.pop("settings", None)
    if settings is None:
        kw.setdefault("retry_base_delay_s", 0.0)
        kw.setdefault("cache_enabled", cache is not None)
        settings = GatewaySettings(**kw)
    elif kw:
        raise TypeError(f"pass either settings= or settings fields, not both: {sorted(kw)}")
    if callable(script):
        backend = ScriptedBackend(fn=script, **backend_kw)
    else:
        backend = ScriptedBackend(list(script), **backend_kw)
    return Gateway(settings=settings, backend=backend, cache=cache, **gw_kw)
