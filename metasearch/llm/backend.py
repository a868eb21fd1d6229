"""The seam between the gateway and whatever answers a call.

A backend has two methods: :meth:`Backend.check` (cheap, no network: is the
model known, is its key set?) and :meth:`Backend.acomplete` (make one call).
It raises either a final :class:`~metasearch.llm.types.LLMError` subclass or
one of the :class:`TransientError` classes below, which the gateway retries
with backoff. :class:`BadRequest` lets the gateway fall back from a rejected
``json_schema`` response format to ``json_object``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from metasearch.llm.types import LLMRequest


@dataclass(frozen=True)
class Route:
    """Where one model's calls go, resolved by the gateway.

    ``model`` is the user's model string; ``target`` is what litellm is given
    (``local/x`` becomes ``openai/x`` with the embedded server's ``api_base``).
    ``endpoint`` keys the concurrency limiter (``api_base`` or the provider).
    """

    model: str
    target: str
    provider: str
    endpoint: str
    api_base: str | None = None
    api_key: str | None = None
    api_key_env: str | None = None
    timeout_s: float = 300.0
    local: bool = False


@dataclass(frozen=True)
class RawCompletion:
    """What a backend returns; ``cost_usd`` None means "unknown to the backend"."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = "stop"
    cost_usd: float | None = None


class Backend(Protocol):
    def check(self, route: Route) -> None:
        """Raise an ``LLMError`` subclass if ``route`` cannot work (unknown model, missing key)."""
        ...

    async def acomplete(self, request: LLMRequest, route: Route) -> RawCompletion:
        """Make one call; raise ``TransientError`` for what is worth retrying."""
        ...


class TransientError(Exception):
    """A failure worth retrying with backoff."""


class RateLimited(TransientError):
    """HTTP 429 or the provider's equivalent."""


class ServerError(TransientError):
    """HTTP 5xx."""


class CallTimeout(TransientError):
    """The call took longer than its timeout."""


class ConnectionFailed(TransientError):
    """Connection refused, DNS failure, TLS failure: the endpoint did not answer."""


class BadRequest(Exception):
    """The provider rejected the request as malformed (e.g. an unsupported response_format)."""
