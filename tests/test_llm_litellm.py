"""The real litellm backend against a tiny fake OpenAI-compatible server (no network).

Each model here sets ``transport = "litellm"``: an ``openai/`` model with an
api_base would otherwise take the fast path (tests/test_llm_transport.py).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from metasearch.llm import Gateway, GatewaySettings, LLMRequest, ModelSettings, ProviderError

MODEL = "openai/fake"


class FakeServer:
    """Answers chat completions; ``plan`` is a list of HTTP statuses to return first."""

    def __init__(self) -> None:
        self.plan: list[int] = []
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                status = outer.plan.pop(0) if outer.plan else 200
                rf = body.get("response_format") or {}
                if rf.get("type") == "json_schema":
                    status = 400
                if status == 200:
                    payload = {
                        "id": "x", "object": "chat.completion", "created": 0, "model": "fake",
                        "choices": [{"index": 0, "finish_reason": "length",
                                     "message": {"role": "assistant", "content": "## answer\n4"}}],
                        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
                    }  # fmt: skip
                else:
                    payload = {"error": {"message": f"fake {status}", "type": "x", "code": status}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def server():
    s = FakeServer()
    yield s
    s.httpd.shutdown()


@pytest.fixture
def gw(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server.plan.clear()
    settings = GatewaySettings(
        cache_enabled=False,
        retry_base_delay_s=0.0,
        models={MODEL: ModelSettings(api_base=server.url, max_retries=2, timeout_s=20,
                                     transport="litellm")},
    )
    with Gateway(settings=settings) as g:
        yield g
        assert g._routes[MODEL].transport == "litellm"


def req(**kw) -> LLMRequest:
    return LLMRequest(model=MODEL, messages=({"role": "user", "content": "2+2?"},), **kw)


def test_reply_tokens_and_finish_reason(gw) -> None:
    gw.preflight(MODEL)
    r = gw.complete(req(max_tokens=5))
    assert r.text == "## answer\n4" and r.truncated
    assert (r.prompt_tokens, r.completion_tokens, r.cost_usd) == (11, 7, 0.0)


def test_retries_rate_limits_and_server_errors(gw, server) -> None:
    server.plan[:] = [429, 503]
    r = gw.complete(req())
    assert r.meta["retries"] == 2
    server.plan[:] = [500, 500, 500]
    with pytest.raises(ProviderError, match="3 attempts"):
        gw.complete(req())


def test_json_schema_rejected_falls_back(gw, server) -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}
    r = gw.complete(req(response_format=schema))
    assert r.meta["response_format_fallback"] == "json_object"
    assert server.bodies[-1]["response_format"] == {"type": "json_object"}


def test_user_prices_apply(server, monkeypatch) -> None:
    ms = ModelSettings(api_base=server.url, price_input_per_mtok=1.0, price_output_per_mtok=2.0,
                       transport="litellm")
    settings = GatewaySettings(cache_enabled=False, models={MODEL: ms})
    with Gateway(settings=settings) as gw:
        assert gw.complete(req()).cost_usd == pytest.approx((11 * 1 + 7 * 2) / 1e6)


def test_context_overflow_in_words_maps_to_context_window_error() -> None:
    import litellm

    from metasearch.llm import ContextWindowError
    from metasearch.llm.backend import Route
    from metasearch.llm.litellm_backend import _map_exception

    e = litellm.BadRequestError(
        "the request exceeds the available context size", model="x", llm_provider="openai"
    )
    mapped = _map_exception(e, Route("openai/x", "openai/x", "openai", "openai"))
    assert isinstance(mapped, ContextWindowError) and "shorter contexts" in str(mapped)
