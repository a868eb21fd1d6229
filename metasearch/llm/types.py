"""Typed requests, responses and errors of the LLM gateway.

These records are the whole contract between callers (the agent runtime, the
meta agent, the sandbox RPC) and the gateway. They are plain frozen
dataclasses so they can cross a process boundary as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from metasearch.errors import MetasearchError

Role = Literal["meta", "task"]


@dataclass(frozen=True)
class LLMRequest:
    """One chat completion to make.

    ``sample_index`` distinguishes repeated samples of the same prompt at
    temperature > 0, so the cache keeps them apart. ``role`` and ``candidate``
    only label the ledger entry; they are not part of the cache key.
    """

    model: str
    messages: tuple[dict[str, str], ...]
    temperature: float = 0.5
    max_tokens: int | None = None
    response_format: dict[str, Any] | None = None
    sample_index: int = 0
    role: Role = "task"
    candidate: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["messages"] = [dict(m) for m in self.messages]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LLMRequest:
        d = dict(d)
        d["messages"] = tuple(
            {"role": str(m["role"]), "content": str(m["content"])} for m in d["messages"]
        )
        return cls(**d)


@dataclass(frozen=True)
class LLMResponse:
    """What one call produced, and what it cost."""

    text: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    cached: bool = False
    finish_reason: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LLMResponse:
        return cls(**d)


class LLMError(MetasearchError):
    """A call failed for a reason the user can act on (key, endpoint, model)."""


class UnknownModelError(LLMError):
    """The model string names no provider or local model we know."""


class MissingAPIKeyError(LLMError):
    """The provider's API key environment variable is not set."""


class EndpointUnreachableError(LLMError):
    """The endpoint did not answer (connection refused, DNS, TLS)."""


class ContextWindowError(LLMError):
    """The prompt is longer than the model's context window."""


class BudgetExceeded(MetasearchError):
    """A budget cap (USD, calls or tokens) was reached.

    Callers stop cleanly on it: whatever was computed before is kept.
    """

    exit_code = 3

    def __init__(self, message: str, *, cap: str = "", limit: float = 0.0, used: float = 0.0):
        super().__init__(message)
        self.cap = cap
        self.limit = limit
        self.used = used


class ProviderError(LLMError):
    """The provider kept failing (rate limit, server error, timeout) or refused the request."""


class LocalModelError(LLMError):
    """An embedded ``local/`` model cannot be assembled or started."""
