"""Which client makes a model's calls: the direct OpenAI-compatible fast path, or litellm.

litellm spends 9-15 ms of CPU on every call on these machines (request
building, the OpenAI SDK, logging, pricing), all on the gateway's one event
loop thread, which caps a process near 100 calls/s. A server the user runs
(vLLM, llama.cpp, the embedded ``local/`` models) speaks one protocol,
OpenAI's ``/chat/completions``, so the gateway talks to it directly
(:mod:`metasearch.llm.openai_http`). Every other provider stays on litellm,
and ``transport = "litellm"`` in a model's settings forces litellm for any model.

:func:`choose_transport` is the whole rule; :class:`AutoBackend` is the
gateway's default backend and sends each route to the client it names.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from metasearch.llm.backend import RawCompletion, Route, TransportName
from metasearch.llm.settings import ModelSettings
from metasearch.llm.types import LLMRequest

# Providers whose ``<provider>/<name>`` with an ``api_base`` is a plain
# OpenAI-compatible server: litellm adds nothing there but its CPU.
FAST_PROVIDERS = ("openai", "hosted_vllm")


@dataclass(frozen=True)
class TransportChoice:
    """The client for one model and why, as ``metasearch models`` shows it."""

    name: TransportName
    reason: str

    @property
    def label(self) -> str:
        return "fast path (direct HTTP)" if self.name == "http" else "litellm"


def choose_transport(model: str, ms: ModelSettings) -> TransportChoice:
    """The fast path for ``local/*`` and for ``openai/*`` or ``hosted_vllm/*`` with an api_base."""
    provider = model.split("/", 1)[0] if "/" in model else ""
    if ms.transport == "litellm":
        return TransportChoice("litellm", 'forced by transport = "litellm"')
    if provider == "local":
        return TransportChoice("http", "embedded OpenAI-compatible server on 127.0.0.1")
    if provider in FAST_PROVIDERS and ms.api_base:
        return TransportChoice("http", f"OpenAI-compatible server at {ms.api_base}")
    if provider in FAST_PROVIDERS:
        return TransportChoice("litellm", "no api_base: a hosted provider, served by litellm")
    return TransportChoice("litellm", f"provider '{provider or model}' is served by litellm")


class AutoBackend:
    """The default backend: each route to the client its ``transport`` names.

    Both clients are built lazily; the litellm one imports litellm only on
    its first call, so a campaign that only uses the fast path never pays
    litellm's 2 s import (unless a cost lookup needs its price map).
    """

    def __init__(self) -> None:
        self._http: Any = None
        self._litellm: Any = None
        # Routes are built on several threads at once (the first calls of a campaign): each
        # client is made once, or a call could open its connection pool on a client that a
        # slower thread then replaces, and the pool would never be closed. One lock each: the
        # loop thread must not wait out litellm's 2 s import to reach the fast path.
        self._http_lock, self._litellm_lock = threading.Lock(), threading.Lock()

    @property
    def http(self) -> Any:
        with self._http_lock:
            if self._http is None:
                from metasearch.llm.openai_http import OpenAIHTTPBackend

                self._http = OpenAIHTTPBackend()
            return self._http

    @property
    def litellm(self) -> Any:
        with self._litellm_lock:
            if self._litellm is None:
                from metasearch.llm.litellm_backend import LiteLLMBackend

                self._litellm = LiteLLMBackend()
            return self._litellm

    def _for(self, route: Route) -> Any:
        return self.http if route.transport == "http" else self.litellm

    def check(self, route: Route) -> None:
        self._for(route).check(route)

    def check_known(self, route: Route, declared: bool) -> None:
        if route.transport == "litellm":
            self.litellm.check_known(route, declared)

    async def acomplete(self, request: LLMRequest, route: Route) -> RawCompletion:
        return await self._for(route).acomplete(request, route)

    async def aclose(self) -> None:
        for client in (self._http, self._litellm):
            aclose = getattr(client, "aclose", None)
            if callable(aclose):
                await aclose()
