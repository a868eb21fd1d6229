"""The seam between the gateway and whatever answers a call.

A backend has two methods: :meth:`Backend.check` (cheap, no network: is the
model known, is its key set?) and :meth:`Backend.acomplete` (make one call).
It raises either a final :class:`~metasearch.llm.types.LLMError` subclass or
one of the :class:`TransientError` classes below, which the gateway retries
with backoff. :class:`BadRequest` lets the gateway fall back from a rejected
``json_schema`` response format to ``json_object``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal, Protocol

from metasearch.llm.types import LLMRequest

TransportName = Literal["http", "litellm"]


@dataclass(frozen=True)
class Route:
    """Where one model's calls go, resolved by the gateway.

    ``model`` is the user's model string; ``target`` is what litellm is given
    (``local/x`` becomes ``openai/x`` with the embedded server's ``api_base``).
    ``endpoint`` keys the concurrency limiter (``api_base`` or the provider).
    ``transport`` says which client makes the call (see :mod:`metasearch.llm.transport`):
    ``"http"``, the direct OpenAI-compatible fast path, or ``"litellm"``.
    ``concurrency`` is the endpoint's limit, which the fast path also sizes its
    connection pool to; ``price_map`` says the cost must come from litellm's
    price map (no user prices, not a local model).
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
    transport: TransportName = "litellm"
    concurrency: int = 16
    price_map: bool = True


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
    """HTTP 429 or the provider's equivalent; ``retry_after_s`` is the server's ``Retry-After``."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ServerError(TransientError):
    """HTTP 5xx."""


class CallTimeout(TransientError):
    """The call took longer than its timeout."""


class ConnectionFailed(TransientError):
    """Connection refused, DNS failure, TLS failure: the endpoint did not answer."""


class MalformedReply(TransientError):
    """HTTP 200 without a usable completion: a non-JSON body, no ``choices``, no message."""


#: The kind of each transient failure, as the ledger, the CLI and report.md count them.
FAULT_KINDS = {RateLimited: "rate_limited", ServerError: "server_error",
               CallTimeout: "timeout", ConnectionFailed: "connection",
               MalformedReply: "malformed"}


def fault_kind(err: BaseException | None) -> str:
    """``rate_limited``, ``server_error``, ``timeout``, ``connection``, ``malformed`` or ``other``."""
    for cls, kind in FAULT_KINDS.items():
        if isinstance(err, cls):
            return kind
    return "other"


class BadRequest(Exception):
    """The provider rejected the request as malformed (e.g. an unsupported response_format)."""


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a 429's headers ask us to wait: ``retry-after-ms``, else ``Retry-After``.

    ``Retry-After`` is delta-seconds or an HTTP date (RFC 9110); OpenAI also
    sends ``retry-after-ms``. Unparseable or negative values count as absent.
    Both backends read it, so both wait the same.
    """
    if not headers:
        return None
    low = {str(k).lower(): str(v) for k, v in headers.items()}
    ms = low.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000
            return value if value >= 0 else None
        except ValueError:
            pass
    raw = low.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            value = parsedate_to_datetime(raw).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, value)
    return value if value >= 0 else None
