"""The litellm backend: every provider the fast path does not serve, imported on first use.

litellm's own cache and retries are not used: the gateway owns both (its cache
is broken in 1.106.2, see PITFALLS.md). Provider exceptions become ours here.

Where litellm's CPU goes (1.106.2, cProfile over 1,032 calls to a local fake
server, about 7-10 ms a call unprofiled): the OpenAI SDK about 35% (request
transform, httpx, response parsing), pricing every response about 24%, the
logging payload it builds for callbacks about 8%, the rest its wrapper and
request setup. Neither the pricing nor the payload has a switch in this
release (``no-log`` skips callbacks only), so what can be turned off is set
per call below, and the price litellm computed anyway is used rather than
priced a second time.
"""

from __future__ import annotations

import os
from typing import Any

from metasearch.llm.backend import (
    BadRequest,
    CallTimeout,
    ConnectionFailed,
    MalformedReply,
    RateLimited,
    RawCompletion,
    Route,
    ServerError,
    retry_after_s,
)
from metasearch.llm.refusals import (
    KEY_ENV,
    KEYLESS,
    call_failed,
    context_window,
    is_context_overflow,
    key_refused,
    missing_key,
    no_choices,
    unknown_model,
)
from metasearch.llm.types import LLMRequest, UnknownModelError

COMMON_PROVIDERS = ("openai", "anthropic", "gemini", "ollama", "hosted_vllm", "openrouter", "groq")


def _litellm() -> Any:
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


def known_models(provider: str, limit: int = 8) -> list[str]:
    """A few model names litellm's price map knows for ``provider``."""
    cost = _litellm().model_cost
    names = [
        k
        for k, v in cost.items()
        if v.get("litellm_provider") == provider
        and v.get("mode") == "chat"
        and "/" not in k
        and ":" not in k
    ]
    return sorted(names, key=lambda n: (len(n), n))[:limit]


def required_key_env(route: Route) -> str | None:
    """The environment variable ``route`` needs, or None when it needs none."""
    if route.api_key_env:
        return route.api_key_env
    if route.local or route.provider in KEYLESS:
        return None
    if route.api_base and route.provider == "openai":
        return None  # an OpenAI-compatible server of the user's own (vLLM, llama.cpp)
    if route.provider in KEY_ENV:
        return KEY_ENV[route.provider]
    missing = _litellm().validate_environment(model=route.target).get("missing_keys") or []
    keys = [k for k in missing if k.endswith("_KEY") or k.endswith("_TOKEN")]
    return keys[0] if keys else None


def check_key(route: Route) -> None:
    """Raise ``MissingAPIKeyError`` when the key variable ``route`` needs is unset."""
    var = required_key_env(route)
    err = missing_key(route, var) if var else None
    if err is not None:
        raise err


class LiteLLMBackend:
    """Calls ``litellm.acompletion``; maps its exceptions to the gateway's."""

    def check(self, route: Route) -> None:
        if route.local:
            return  # the gateway assembles and serves local models itself
        litellm = _litellm()
        providers = {str(getattr(p, "value", p)) for p in litellm.provider_list}
        if route.provider not in providers:
            raise UnknownModelError(
                f"Unknown model '{route.model}': '{route.provider}' is not a provider litellm "
                f"knows. Name models as <provider>/<model>, e.g. openai/gpt-4o-mini, "
                f"anthropic/claude-3-5-haiku-20241022, ollama/llama3, openai/<name> with an "
                f"api_base for vLLM or llama.cpp servers, or local/qwen2.5-coder-1.5b. "
                f"Common providers: {', '.join(COMMON_PROVIDERS)}."
            )
        check_key(route)

    def check_known(self, route: Route, declared: bool) -> None:
        """Preflight only: reject a hosted model litellm has never heard of, unless declared."""
        if route.api_base or route.local or declared or route.provider in KEYLESS:
            return
        cost = _litellm().model_cost
        bare = route.target.split("/", 1)[1] if "/" in route.target else route.target
        if route.target in cost or bare in cost:
            return
        raise UnknownModelError(
            f"Unknown model '{route.model}': litellm's model list has no '{bare}' for "
            f"provider {route.provider}. Known ones include: "
            f"{', '.join(known_models(route.provider)) or '(none listed)'}. If the model is "
            f"new, declare it under the llm models settings (with its prices) to use it anyway."
        )

    async def acomplete(self, request: LLMRequest, route: Route) -> RawCompletion:
        litellm = _litellm()
        kwargs: dict[str, Any] = {
            "model": route.target,
            "messages": [dict(m) for m in request.messages],
            "temperature": request.temperature,
            "timeout": route.timeout_s,
            # The gateway retries (and waits out Retry-After); the OpenAI SDK's own default of 2
            # retries turned one failing call into 3 requests and 2.3 s of its sleeps (measured).
            "max_retries": 0,
            # The ledger records every call. litellm registers no callbacks by default, so this
            # saved nothing measurable here (within +-1 ms of 7.6 ms a call); it stops a callback
            # another library registers (MLflow autolog, Langfuse) from running on every call.
            "no-log": True,
        }
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        if request.response_format is not None:
            kwargs["response_format"] = request.response_format
        if route.api_base:
            kwargs["api_base"] = route.api_base
        if route.api_key:
            kwargs["api_key"] = route.api_key
        elif route.api_key_env:
            kwargs["api_key"] = os.environ.get(route.api_key_env)
        elif route.api_base and route.provider == "openai" and not os.environ.get("OPENAI_API_KEY"):
            kwargs["api_key"] = "x"  # own OpenAI-compatible servers ignore the key
        try:
            resp = await litellm.acompletion(**kwargs)
        except Exception as e:
            raise _map_exception(e, route) from e
        choices = getattr(resp, "choices", None)
        if not choices:
            raise MalformedReply(str(no_choices(route)))
        choice = choices[0]
        if getattr(choice, "message", None) is None:
            raise MalformedReply(f"Model '{route.model}' answered a choice without a message.")
        usage = getattr(resp, "usage", None)
        cost = None
        if not route.local:
            # litellm prices every response already; pricing it again costs ~2 ms a call
            hidden = getattr(resp, "_hidden_params", None) or {}
            cost = hidden.get("response_cost")
            if cost is None and "response_cost" not in hidden:
                try:
                    cost = float(litellm.completion_cost(completion_response=resp))
                except Exception:
                    cost = None
        return RawCompletion(
            text=choice.message.content or "",
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            finish_reason=getattr(choice, "finish_reason", None),
            cost_usd=cost,
        )


def _map_exception(e: Exception, route: Route) -> Exception:
    import litellm.exceptions as ex

    msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
    if isinstance(e, ex.ContextWindowExceededError) or (
        isinstance(e, ex.BadRequestError) and is_context_overflow(str(e))
    ):
        return context_window(route, msg)
    if isinstance(e, ex.AuthenticationError):
        return key_refused(route, msg)
    if isinstance(e, ex.NotFoundError):
        return unknown_model(route, msg)
    if isinstance(e, ex.RateLimitError):
        return RateLimited(msg, retry_after_s=retry_after_s(_headers(e)))
    chain = _chain_names(e)
    if (any(n in ("JSONDecodeError", "APIResponseValidationError") for n in chain)
            or "invalid response from LLM endpoint" in msg  # litellm: a non-JSON 200
            or "Invalid response object" in msg):  # litellm: a choice it cannot convert
        return MalformedReply(f"the endpoint answered with a body that is not a completion: {msg}")
    if isinstance(e, ex.Timeout) or any("Timeout" in n for n in chain):
        return CallTimeout(msg)
    if isinstance(e, ex.APIConnectionError) or any("Connect" in n for n in chain):
        return ConnectionFailed(msg)  # litellm reports refused connections as 500s
    if isinstance(e, ex.ServiceUnavailableError | ex.InternalServerError | ex.BadGatewayError):
        return ServerError(msg)
    if isinstance(e, ex.UnsupportedParamsError | ex.BadRequestError):
        return BadRequest(msg)
    status = getattr(e, "status_code", None)
    if isinstance(status, int) and status >= 500:
        return ServerError(msg)
    if isinstance(e, ex.APIError):
        return call_failed(route, msg)
    return e


def _headers(e: Exception) -> Any:
    """The HTTP headers of a litellm error: its own copy, else the raw response's."""
    headers = getattr(e, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(e, "response", None), "headers", None)
    return headers


def _chain_names(e: BaseException) -> list[str]:
    names: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        names.append(type(cur).__name__)
        cur = cur.__cause__ or cur.__context__
    return names
