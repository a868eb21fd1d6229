"""Routes: what the gateway resolves a model string to, once, and what it says on failure.

A :class:`Router` turns ``openai/x`` or ``local/qwen2.5-coder-0.5b`` into a
:class:`~metasearch.llm.backend.Route` (endpoint, key variable, timeout,
client, concurrency limit), starting an embedded server for ``local/``
models, and keeps it: routes are built off the event loop and read on it.
The paragraphs a user sees when a call finally fails are worded here too.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlparse

from metasearch.llm.backend import (
    ConnectionFailed,
    MalformedReply,
    RateLimited,
    RawCompletion,
    Route,
    ServerError,
    TransientError,
)
from metasearch.llm.local import LocalServers, local_name
from metasearch.llm.settings import GatewaySettings, ModelSettings
from metasearch.llm.transport import choose_transport
from metasearch.llm.types import (
    EndpointUnreachableError,
    LLMError,
    LocalModelError,
    ProviderError,
    UnknownModelError,
)

DEFAULT_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "ollama": "http://localhost:11434",
    "ollama_chat": "http://localhost:11434",
}


class Router:
    """Builds and keeps one :class:`Route` per model; owns the embedded local servers.

    ``backend`` is read on every build (the gateway's backend may be swapped
    before the first call). Thread-safe.
    """

    def __init__(self, settings: GatewaySettings, backend: Callable[[], Any]) -> None:
        self.settings = settings
        self._backend = backend
        self._lock = threading.Lock()
        self.routes: dict[str, Route] = {}
        self.local: LocalServers | None = None
        self._closed = False

    def limit(self, ms: ModelSettings, local: bool) -> int:
        """Calls in flight at once to one endpoint (the first model to use it sets it)."""
        return ms.max_concurrency or (ms.n_parallel if local else self.settings.default_concurrency)

    def build(self, model: str, start_local: bool = True) -> Route:
        """The route of ``model``; raises an ``LLMError`` if it cannot work.

        With ``start_local`` False (preflight) a ``local/`` model's server is
        not started and its route is not kept.
        """
        with self._lock:
            route = self.routes.get(model)
        if route is not None:
            return route
        if "/" not in model:
            raise UnknownModelError(
                f"Model '{model}' names no provider. Write models as <provider>/<model>, e.g. "
                "openai/gpt-4o-mini, anthropic/claude-3-5-haiku-20241022, ollama/llama3, or "
                "local/qwen2.5-coder-1.5b."
            )
        backend = self._backend()
        provider = model.split("/", 1)[0]
        ms = self.settings.for_model(model)
        priced = ms.price_input_per_mtok is not None or ms.price_output_per_mtok is not None
        common: dict[str, Any] = {
            "timeout_s": ms.timeout_s, "transport": choose_transport(model, ms).name,
            "concurrency": self.limit(ms, provider == "local"), "price_map": not priced,
        }  # fmt: skip
        if provider == "local":
            name = local_name(model)
            route = Route(model, model, "local", f"local/{name}", local=True,
                          **{**common, "price_map": False})  # fmt: skip
            if not getattr(backend, "handles_local", False):
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
        backend.check(route)
        if start_local or not route.local:
            with self._lock:
                self.routes.setdefault(model, route)
        return route

    def _local_servers(self) -> LocalServers:
        with self._lock:
            if self._closed:
                raise LocalModelError("The gateway is closed; it starts no local model servers.")
            if self.local is None:
                self.local = LocalServers(self.settings)
            return self.local

    def close(self) -> LocalServers | None:
        """Start no more servers; return the running ones for the caller to stop."""
        with self._lock:
            self._closed = True
            return self.local


def cost_of(route: Route, ms: ModelSettings, raw: RawCompletion) -> float:
    """User prices win; local models are free; else the backend's figure, or 0 if unknown."""
    if ms.price_input_per_mtok is not None or ms.price_output_per_mtok is not None:
        pin = ms.price_input_per_mtok or 0.0
        pout = ms.price_output_per_mtok or 0.0
        return (raw.prompt_tokens * pin + raw.completion_tokens * pout) / 1e6
    if route.local:
        return 0.0
    return float(raw.cost_usd or 0.0)


def url_of(route: Route) -> str:
    return route.api_base or DEFAULT_URLS.get(route.provider, f"the {route.provider} API")


def give_up(err: TransientError, route: Route, attempts: int) -> LLMError:
    tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
    if isinstance(err, ConnectionFailed):
        return EndpointUnreachableError(
            f"Model '{route.model}': the endpoint {url_of(route)} could not be reached after "
            f"{tries} ({err}). Check that the server is running and the api_base is right."
        )
    if isinstance(err, RateLimited):
        why = "kept rate-limiting the calls"
        fix = "Lower max_concurrency for this model or raise max_retries."
    elif isinstance(err, ServerError):
        why = "kept answering with server errors"
        fix = "The provider may be down; try again later or raise max_retries."
    elif isinstance(err, MalformedReply):
        why = "kept answering without a usable completion"
        fix = ("Check the server's log (a content filter or a crashed worker can do this), or "
               "raise max_retries.")
    else:
        why = f"did not answer within timeout_s = {route.timeout_s:g} s"
        fix = "Raise timeout_s for this model, or lower max_tokens."
    return ProviderError(
        f"Model '{route.model}' at {url_of(route)} {why} ({tries}; last: {err}). {fix}"
    )


def check_reachable(model: str, url: str, timeout_s: float = 3.0) -> None:
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
