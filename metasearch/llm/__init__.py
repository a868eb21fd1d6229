"""The LLM gateway: every model call of a campaign goes through a :class:`Gateway`.

Importing this package does not import litellm (it is imported on the first
call that needs it: a model litellm serves, or a price-map lookup), so the CLI
stays fast, and a campaign on ``local/`` models never imports it.
"""

from metasearch.llm.backend import Backend, RawCompletion, Route
from metasearch.llm.budget import Budget
from metasearch.llm.cache import ResponseCache, cache_key
from metasearch.llm.gateway import Gateway
from metasearch.llm.ledger import Counts, Ledger, LedgerSnapshot, delta
from metasearch.llm.local import LocalModelInfo, list_local_models
from metasearch.llm.scripted import ScriptedBackend, scripted_gateway
from metasearch.llm.settings import BudgetSettings, GatewaySettings, ModelSettings
from metasearch.llm.types import (
    BudgetExceeded,
    ContextWindowError,
    EndpointUnreachableError,
    LLMError,
    LLMRequest,
    LLMResponse,
    LocalModelError,
    MissingAPIKeyError,
    ProviderError,
    UnknownModelError,
)

__all__ = [
    "Backend",
    "Budget",
    "BudgetExceeded",
    "BudgetSettings",
    "ContextWindowError",
    "Counts",
    "EndpointUnreachableError",
    "Gateway",
    "GatewaySettings",
    "LLMError",
    "LLMRequest",
    "LLMResponse",
    "Ledger",
    "LedgerSnapshot",
    "LocalModelError",
    "LocalModelInfo",
    "MissingAPIKeyError",
    "ModelSettings",
    "ProviderError",
    "RawCompletion",
    "ResponseCache",
    "Route",
    "ScriptedBackend",
    "UnknownModelError",
    "cache_key",
    "delta",
    "list_local_models",
    "scripted_gateway",
]
