"""What every client behind the gateway owes its callers, as a pytest suite to inherit.

The gateway reaches models through two clients (the direct fast path for
OpenAI-compatible servers, and litellm), and a user must not be able to tell
which one made a call. Each :class:`Scenario` here drives a real
:class:`~metasearch.llm.gateway.Gateway` against a :class:`FakeOpenAIServer`
on 127.0.0.1 and states what must come out: the reply, tokens, cost, retries
(``Retry-After`` included), the error class and its paragraph, and the request
the server saw. Subclass :class:`BackendContract` and set ``transport`` (or
override :meth:`BackendContract.make_gateway` to put your own backend in)::

    from metasearch.testing import BackendContract

    class TestFastPath(BackendContract):
        transport = "auto"
        expect = "http"

:func:`run_scenario` also serves a cross-check: run one scenario on both
paths and compare :meth:`Outcome.comparable`, which must be equal.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from metasearch.llm.cache import ResponseCache
from metasearch.llm.gateway import Gateway
from metasearch.llm.ledger import Counts, LedgerSnapshot
from metasearch.llm.settings import BudgetSettings, GatewaySettings, ModelSettings
from metasearch.llm.types import LLMRequest, LLMResponse
from metasearch.testing.fake_openai import FakeOpenAIServer, Reply, Seen

MODEL = "openai/fake"
JSON_FIELDS = ["thinking", "answer"]


@dataclass
class Outcome:
    """What one scenario produced: each call's reply or error, and what the server saw."""

    replies: list[LLMResponse | BaseException]
    seen: list[Seen]
    snapshot: LedgerSnapshot
    max_in_flight: int
    transport: str

    @property
    def reply(self) -> LLMResponse:
        first = self.replies[0]
        if isinstance(first, BaseException):
            raise AssertionError(f"the call failed: {type(first).__name__}: {first}") from first
        return first

    @property
    def error(self) -> BaseException:
        first = self.replies[0]
        assert isinstance(first, BaseException), f"the call succeeded: {first!r}"
        return first

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [s.body for s in self.seen]

    def comparable(self) -> tuple[Any, ...]:
        """Everything that must not depend on the client: latencies and error details removed."""
        replies = [
            (type(r).__name__, _shape(str(r)))
            if isinstance(r, BaseException)
            else replace(r, latency_s=0.0)
            for r in self.replies
        ]
        auth = sorted(str(s.headers.get("Authorization")) for s in self.seen)
        bodies = sorted(json.dumps(b, sort_keys=True) for b in self.bodies)  # arrival order varies
        return replies, bodies, auth, _no_latency(self.snapshot.total), self.max_in_flight


def _shape(message: str) -> str:
    """An error paragraph without its parenthesised details (the client's own wording)."""
    while True:
        out = re.sub(r"\([^()]*\)", "\x00", message)  # innermost first, then outwards
        if out == message:
            return out.replace("\x00", "(...)")
        message = out


def _no_latency(c: Counts) -> Counts:
    return replace(c, latency_s=0.0)


@dataclass(frozen=True)
class Scenario:
    """One situation and what must come of it.

    ``plan`` answers the first requests (then ``default``); ``settings`` and
    ``gateway`` are ``ModelSettings`` and ``GatewaySettings`` fields;
    ``calls`` the ``LLMRequest`` fields of each call, made one after another,
    or all at once with ``concurrent``. ``check`` asserts on the outcome.
    """

    name: str
    check: Callable[[Outcome], None]
    plan: tuple[Reply, ...] = ()
    default: Reply = field(default_factory=Reply)
    settings: Mapping[str, Any] = field(default_factory=dict)
    gateway: Mapping[str, Any] = field(default_factory=dict)
    calls: tuple[Mapping[str, Any], ...] = ({},)
    concurrent: bool = False
    model: str = MODEL
    cache: bool = False
    api_base: str | None = None  # None: the fake server


def request(model: str, **kw: Any) -> LLMRequest:
    kw.setdefault("messages", ({"role": "user", "content": "What is 2+2?"},))
    kw.setdefault("max_tokens", 16)
    kw.setdefault("temperature", 0.5)
    return LLMRequest(model=model, **kw)


def run_scenario(
    scenario: Scenario,
    server: FakeOpenAIServer,
    *,
    transport: str = "auto",
    make_gateway: Callable[[GatewaySettings], Gateway] | None = None,
    cache_dir: Path | None = None,
) -> Outcome:
    """Run ``scenario`` through a fresh gateway whose model uses ``transport``."""
    server.reset(default=scenario.default)
    server.plan[:] = list(scenario.plan)
    # 60 s: a call answered at once must not time out on a loaded machine (the litellm path's
    # first call imports litellm and its price map); scenarios about timeouts set their own
    ms_kw: dict[str, Any] = {"max_retries": 2, "timeout_s": 60.0, **scenario.settings}
    ms = ModelSettings(api_base=scenario.api_base or server.url, transport=transport, **ms_kw)
    gw_kw: dict[str, Any] = {"retry_base_delay_s": 0.0, **scenario.gateway}
    if isinstance(gw_kw.get("budget"), Mapping):
        gw_kw["budget"] = BudgetSettings(**gw_kw["budget"])
    settings = GatewaySettings(models={scenario.model: ms}, cache_enabled=False, **gw_kw)
    gateway = (make_gateway or (lambda s: Gateway(settings=s)))(settings)
    if scenario.cache:
        if cache_dir is None:
            raise ValueError(f"scenario {scenario.name} needs a cache_dir")
        gateway.cache = ResponseCache(directory=cache_dir / scenario.name)
    reqs = [request(scenario.model, **kw) for kw in scenario.calls]
    try:
        if scenario.concurrent:
            replies = asyncio.run(_gather(gateway, reqs))
        else:
            replies = [_call(gateway, r) for r in reqs]
        snapshot = gateway.snapshot()
    finally:
        gateway.close()
    return Outcome(replies, list(server.requests), snapshot, server.max_in_flight,
                   gateway.transport(scenario.model).name)  # fmt: skip


def _call(gateway: Gateway, req: LLMRequest) -> LLMResponse | BaseException:
    try:
        return gateway.complete(req)
    except Exception as e:  # the outcome records it
        return e


async def _gather(gateway: Gateway, reqs: list[LLMRequest]) -> list[LLMResponse | BaseException]:
    return list(await asyncio.gather(*(gateway.acomplete(r) for r in reqs), return_exceptions=True))


# ------------------------------------------------------------------ the scenarios


def _ok(o: Outcome, text: str = "## answer\n4", pt: int = 11, ct: int = 7) -> LLMResponse:
    r = o.reply
    assert (r.text, r.prompt_tokens, r.completion_tokens) == (text, pt, ct), r
    assert not r.cached
    return r


def _check_reply(o: Outcome) -> None:
    r = _ok(o)
    assert r.finish_reason == "stop" and not r.truncated and r.cost_usd == 0.0 and r.meta == {}
    body = o.bodies[0]
    assert body["model"] == "fake" and body["messages"] == [
        {"role": "user", "content": "What is 2+2?"}
    ]
    assert body["temperature"] == 0.5 and body["max_tokens"] == 16
    assert "response_format" not in body
    assert o.seen[0].headers.get("Authorization") == "Bearer x"
    t = o.snapshot.total
    assert (t.calls, t.cached_calls, t.errors, t.prompt_tokens, t.completion_tokens) == (
        1, 0, 0, 11, 7,
    )  # fmt: skip


def _check_truncated(o: Outcome) -> None:
    assert o.reply.finish_reason == "length" and o.reply.truncated


def _check_no_usage(o: Outcome) -> None:
    _ok(o, pt=0, ct=0)
    assert o.snapshot.total.prompt_tokens == 0


def _check_null_content(o: Outcome) -> None:
    assert o.reply.text == "" and o.reply.completion_tokens == 7


def _check_user_prices(o: Outcome) -> None:
    assert abs(o.reply.cost_usd - (11 * 1.0 + 7 * 2.0) / 1e6) < 1e-12
    assert abs(o.snapshot.total.cost_usd - o.reply.cost_usd) < 1e-12


def _check_price_map(o: Outcome) -> None:
    from metasearch.llm.litellm_backend import _litellm

    pin, pout = _litellm().cost_per_token(model="gpt-4o-mini", prompt_tokens=11,
                                          completion_tokens=7)  # fmt: skip
    assert o.reply.cost_usd > 0 and abs(o.reply.cost_usd - (pin + pout)) < 1e-12, o.reply
    assert o.bodies[0]["model"] == "gpt-4o-mini"


def _check_retry_after(o: Outcome) -> None:
    assert o.reply.meta == {"retries": 1} and len(o.seen) == 2
    gap = o.seen[1].at - o.seen[0].at
    assert gap >= 0.9, f"retried {gap:.2f} s after a 429 with Retry-After: 1"


def _check_retried_5xx(o: Outcome) -> None:
    assert o.reply.meta == {"retries": 2} and len(o.seen) == 3
    assert o.snapshot.total.errors == 0


def _retried(kind: str) -> Callable[[Outcome], None]:
    """Two transient failures of ``kind``, retried, then the answer; the ledger counts them."""
    def check(o: Outcome) -> None:
        _check_retried_5xx(o)
        assert o.snapshot.total.retried == {kind: 2}, o.snapshot.total
        assert o.snapshot.by_role["task"].retried == {kind: 2}

    return check


def _gave_up(kind: str, why: str, hits: int) -> Callable[[Outcome], None]:
    def check(o: Outcome) -> None:
        e = o.error
        assert type(e).__name__ == kind, f"{type(e).__name__}: {e}"
        assert why in str(e) and MODEL in str(e), str(e)
        assert len(o.seen) == hits, f"{len(o.seen)} requests, expected {hits}"
        t = o.snapshot.total
        assert (t.calls, t.errors) == (0, 1), t
        assert sum(t.failed.values()) == 1, t
        if hits:  # each request the server saw but the last was a retried failure
            assert sum(t.retried.values()) == hits - 1, t

    return check


def _check_fallback(o: Outcome) -> None:
    assert o.reply.meta == {"response_format_fallback": "json_object"}
    assert o.bodies[0]["response_format"]["type"] == "json_schema"
    assert o.bodies[1]["response_format"] == {"type": "json_object"}


def _json_protocol() -> dict[str, Any]:
    from metasearch.runtime.protocols import JsonProtocol

    return {"response_format": JsonProtocol().response_format(JSON_FIELDS)}


def _check_json_protocol(o: Outcome) -> None:
    from metasearch.runtime.protocols import JsonProtocol

    assert o.bodies[0]["response_format"] == _json_protocol()["response_format"]
    assert JsonProtocol().parse(o.reply.text, JSON_FIELDS) == {"thinking": "add", "answer": "4"}


def _check_sections_protocol(o: Outcome) -> None:
    from metasearch.runtime.protocols import parse_sections

    assert "response_format" not in o.bodies[0]
    assert parse_sections(o.reply.text, JSON_FIELDS) == {"thinking": "add", "answer": "4"}


def _check_cache(o: Outcome) -> None:
    first, second = o.replies
    assert isinstance(first, LLMResponse) and isinstance(second, LLMResponse)
    assert not first.cached and second.cached and second.text == first.text
    assert second.cost_usd == 0.0 and len(o.seen) == 1
    assert (o.snapshot.total.calls, o.snapshot.total.cached_calls) == (2, 1)


def _check_budget(o: Outcome) -> None:
    assert isinstance(o.replies[0], LLMResponse)
    assert type(o.replies[1]).__name__ == "BudgetExceeded" and len(o.seen) == 1


def _check_limit(o: Outcome) -> None:
    assert all(isinstance(r, LLMResponse) for r in o.replies), o.replies
    assert o.max_in_flight == 3, f"{o.max_in_flight} calls in flight at once, limit 3"
    assert len({b["messages"][0]["content"] for b in o.bodies}) == 12


def _distinct(n: int) -> tuple[Mapping[str, Any], ...]:
    return tuple({"messages": ({"role": "user", "content": f"q{i}"},)} for i in range(n))


_RA = {"Retry-After": "1"}
_SCHEMA_REJECTED = Reply(status=400, message="response_format type json_schema is not supported")
_OVERFLOW = "the request exceeds the available context size, try increasing it"
SCENARIOS: tuple[Scenario, ...] = (
    Scenario("reply_tokens_and_request", _check_reply),
    Scenario("truncated", _check_truncated, default=Reply(finish_reason="length")),
    Scenario("no_usage_counts_zero", _check_no_usage, default=Reply(usage=None)),
    Scenario("null_content_is_empty_text", _check_null_content, default=Reply(text=None)),
    Scenario("user_prices", _check_user_prices,
             settings={"price_input_per_mtok": 1.0, "price_output_per_mtok": 2.0}),
    Scenario("price_map", _check_price_map, model="openai/gpt-4o-mini"),
    Scenario("rate_limit_honours_retry_after", _check_retry_after,
             plan=(Reply(status=429, headers=_RA),)),
    Scenario("server_errors_are_retried", _retried("server_error"),
             plan=(Reply(status=500), Reply(status=503))),
    Scenario("server_errors_give_up", _gave_up("ProviderError", "server errors", 3),
             default=Reply(status=500)),
    Scenario("rate_limits_give_up", _gave_up("ProviderError", "rate-limiting", 2),
             default=Reply(status=429), settings={"max_retries": 1}),
    Scenario("timeout_gives_up", _gave_up("ProviderError", "timeout_s = 0.5 s", 2),
             default=Reply(delay_s=1.5), settings={"timeout_s": 0.5, "max_retries": 1}),
    Scenario("dropped_connection_is_retried", _retried("connection"),
             plan=(Reply(drop=True), Reply(drop=True))),
    Scenario("dropped_connections_give_up",
             _gave_up("EndpointUnreachableError", "could not be reached", 3),
             default=Reply(drop=True)),
    Scenario("non_json_body_is_retried", _retried("malformed"),
             plan=(Reply(body=b"<html>oops</html>"), Reply(body=b"<html>oops</html>"))),
    Scenario("non_json_bodies_give_up", _gave_up("ProviderError", "usable completion", 3),
             default=Reply(body=b"<html>busy</html>")),
    Scenario("empty_choices_are_retried", _retried("malformed"),
             plan=(Reply(choices=[]), Reply(choices=[]))),
    Scenario("empty_choices_give_up", _gave_up("ProviderError", "empty 'choices'", 3),
             default=Reply(choices=[])),
    Scenario("missing_message_is_retried", _retried("malformed"),
             plan=(Reply(choices=[{"index": 0, "finish_reason": "stop"}]),) * 2),
    Scenario("context_overflow", _gave_up("ContextWindowError", "context window", 1),
             default=Reply(status=400, message=_OVERFLOW)),
    Scenario("key_refused", _gave_up("MissingAPIKeyError", "refused the API key", 1),
             default=Reply(status=401, message="invalid api key")),
    Scenario("model_unknown", _gave_up("UnknownModelError", "does not know model", 1),
             default=Reply(status=404, message="model 'fake' not found")),
    Scenario("other_refusal_fails_at_once", _gave_up("ProviderError", "refused the call", 1),
             default=Reply(status=403, message="this key may not use model 'fake'")),
    Scenario("connection_refused", _gave_up("EndpointUnreachableError", "127.0.0.1:9", 0),
             api_base="http://127.0.0.1:9/v1"),
    Scenario("json_protocol_sends_the_schema", _check_json_protocol,
             default=Reply(text='{"thinking": "add", "answer": "4"}'), calls=(_json_protocol(),)),
    Scenario("json_schema_refused_falls_back", _check_fallback, plan=(_SCHEMA_REJECTED,),
             calls=(_json_protocol(),)),
    Scenario("sections_protocol", _check_sections_protocol,
             default=Reply(text="## thinking\nadd\n\n## answer\n4")),
    Scenario("cache_hit_is_free", _check_cache, calls=({}, {}), cache=True),
    Scenario("budget_caps_calls", _check_budget, calls=(_distinct(2)),
             gateway={"budget": {"max_calls": 1}}),
    Scenario("endpoint_limit_holds", _check_limit, default=Reply(delay_s=0.2),
             calls=_distinct(12), concurrent=True, settings={"max_concurrency": 3}),
)  # fmt: skip


class BackendContract:
    """Every scenario of :data:`SCENARIOS`, as one test each, for the client named by ``transport``.

    ``expect`` is the client the gateway must report choosing (``"http"`` or
    ``"litellm"``), so a suite meant for one path cannot silently test the other.
    """

    transport: str = "auto"
    expect: str = "http"
    server: FakeOpenAIServer

    def make_gateway(self, settings: GatewaySettings) -> Gateway:
        """The gateway under test (override to put another backend in)."""
        return Gateway(settings=settings)

    @classmethod
    def setup_class(cls) -> None:
        cls.server = FakeOpenAIServer()

    @classmethod
    def teardown_class(cls) -> None:
        cls.server.close()

    def run(self, scenario: Scenario, tmp_path: Path) -> Outcome:
        outcome = run_scenario(scenario, self.server, transport=self.transport,
                               make_gateway=self.make_gateway, cache_dir=tmp_path)  # fmt: skip
        assert outcome.transport == self.expect, f"the gateway chose {outcome.transport}"
        return outcome


def _make_test(scenario: Scenario) -> Callable[[BackendContract, Path], None]:
    def test(self: BackendContract, tmp_path: Path) -> None:
        scenario.check(self.run(scenario, tmp_path))

    test.__name__ = f"test_{scenario.name}"
    test.__doc__ = f"Scenario {scenario.name!r} of the backend contract."
    return test


for _s in SCENARIOS:
    setattr(BackendContract, f"test_{_s.name}", _make_test(_s))
del _s
