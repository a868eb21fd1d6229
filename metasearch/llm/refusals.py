"""What both clients tell the user when a provider refuses a call, worded once.

The fast path and the litellm path see the same refusals in different
shapes (an HTTP status, a litellm exception); both end in these builders, so
the user reads the same paragraph whichever client made the call. The key
rules live here too: which variable a provider's key comes from, and which
providers need none.
"""

from __future__ import annotations

import os

from metasearch.llm.backend import Route
from metasearch.llm.types import (
    ContextWindowError,
    MissingAPIKeyError,
    ProviderError,
    UnknownModelError,
)

# Providers whose key variable we name ourselves; others ask litellm.validate_environment.
KEY_ENV: dict[str, str] = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "together_ai": "TOGETHERAI_API_KEY",
    "xai": "XAI_API_KEY",
    "cohere": "COHERE_API_KEY",
    "fireworks_ai": "FIREWORKS_AI_API_KEY",
}
# Providers that run on the user's own machine or server and need no key.
KEYLESS = {"ollama", "ollama_chat", "hosted_vllm", "llamafile", "lm_studio"}


def missing_key(route: Route, var: str) -> MissingAPIKeyError | None:
    """The error for an unset key variable ``var``, or None when it is set."""
    if os.environ.get(var):
        return None
    return MissingAPIKeyError(
        f"Model '{route.model}' needs an API key in the environment variable {var}, "
        f"which is not set. Export it (export {var}=...) or pick another model."
    )


def is_context_overflow(text: str) -> bool:
    """llama.cpp and vLLM report an over-long prompt as a 400 in words, not a code."""
    low = text.lower()
    return "context" in low and any(w in low for w in ("exceed", "too long", "maximum"))


def context_window(route: Route, detail: str) -> ContextWindowError:
    return ContextWindowError(
        f"The prompt for '{route.model}' is longer than its context window ({detail}). "
        "Design shorter contexts: fewer or shorter examples, summarised history, "
        "or a smaller max_tokens."
    )


def key_refused(route: Route, detail: str) -> MissingAPIKeyError:
    where = route.api_key_env or KEY_ENV.get(route.provider, "the provider's key variable")
    return MissingAPIKeyError(
        f"The provider refused the API key for '{route.model}' ({detail}). Check {where}."
    )


def unknown_model(route: Route, detail: str) -> UnknownModelError:
    return UnknownModelError(
        f"The provider does not know model '{route.model}' ({detail}). Check the model name."
    )


def call_failed(route: Route, detail: str) -> ProviderError:
    return ProviderError(
        f"The provider refused the call to '{route.model}' ({detail}). Retrying will not help: "
        "check that the key may use this model and that the request fits the provider's limits."
    )


def no_choices(route: Route) -> ProviderError:
    where = route.api_base or route.provider
    return ProviderError(
        f"Model '{route.model}' at {where} answered with an empty 'choices' list, so there is "
        "no completion to use. The server accepted the request but produced nothing; check "
        "its log (a content filter or a crashed worker can do this)."
    )
