"""A fake OpenAI-compatible server on 127.0.0.1 for tests: scripted replies and failures.

It runs aiohttp's server on an event loop in a daemon thread of the test
process, binds 127.0.0.1 on a free port, and stops on :meth:`FakeOpenAIServer.close`
(or leaving its ``with`` block). Each request takes the next :class:`Reply` of
``plan`` (then ``default``); every request body, header set and arrival time
is kept in ``requests``, so a test can check what a client really sent::

    with FakeOpenAIServer() as server:
        server.plan = [Reply(status=429, headers={"Retry-After": "1"}), Reply(text="4")]
        ...  # point a model's api_base at server.url

Fault injection: ``FakeOpenAIServer(respond=..., faults=0.2)`` fails that
fraction of the calls (a seeded draw per request, so a run is repeatable)
the ways real providers do, in turn: a 429 with ``Retry-After``, a 500, a
dropped connection, an empty ``choices`` list, a non-JSON body, a choice
without a message. ``faults_sent`` counts what it sent, by kind.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
_MISSING: Any = object()


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    ``status`` other than 200 sends an OpenAI-style error body with ``message``.
    ``body`` (bytes) replaces the whole body, e.g. ``b"<html>"`` for a non-JSON
    reply; ``choices`` replaces the choices list (``[]`` for none); ``usage``
    None leaves usage out. ``delay_s`` waits before answering; ``drop``
    closes the connection without an answer.
    """

    text: str | None = "## answer\n4"
    status: int = 200
    finish_reason: str = "stop"
    usage: dict[str, int] | None = field(default_factory=lambda: dict(USAGE))
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "fake error"
    body: bytes | None = None
    choices: list[dict[str, Any]] | None = None
    delay_s: float = 0.0
    drop: bool = False

    def payload(self, model: str) -> bytes:
        if self.body is not None:
            return self.body
        if self.status != 200:
            err = {"message": self.message, "type": "fake_error", "code": self.status}
            return json.dumps({"error": err}).encode()
        choices = self.choices
        if choices is None:
            choices = [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.text},
                    "finish_reason": self.finish_reason,
                }
            ]
        out: dict[str, Any] = {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
            "model": model, "choices": choices,
        }  # fmt: skip
        if self.usage is not None:
            out["usage"] = self.usage
        return json.dumps(out).encode()


#: What ``faults`` sends, in turn: the failures real providers answer with.
FAULTS: dict[str, Reply] = {
    "rate_limited": Reply(status=429, headers={"Retry-After": "0"}, message="rate limited"),
    "server_error": Reply(status=500, message="internal error"),
    "connection": Reply(drop=True),
    "empty_choices": Reply(choices=[]),
    "non_json": Reply(body=b"<html>502 Bad Gateway</html>"),
    "no_message": Reply(choices=[{"index": 0, "finish_reason": "stop"}]),
}


@dataclass(frozen=True)
class Seen:
    """One request the server received."""

    body: dict[str, Any]
    headers: dict[str, str]
    at: float  # time.monotonic() on arrival


class FakeOpenAIServer:
    """``POST /v1/chat/completions`` and ``GET /v1/models`` on 127.0.0.1, scripted.

    ``respond`` (optional) computes the reply from the request body when the
    plan is empty; otherwise ``default`` answers. Thread-safe: the test
    thread may change ``plan`` while clients call.
    """

    def __init__(
        self,
        *,
        default: Reply | None = None,
        respond: Callable[[dict[str, Any]], Reply] | None = None,
        faults: float = 0.0,
        fault_seed: int = 0,
    ) -> None:
        import random
        from collections import Counter

        self.default = default or Reply()
        self.respond = respond
        self.faults = faults
        self._rng = random.Random(fault_seed)
        self._fault_turn = 0
        self.faults_sent: Counter[str] = Counter()
        self.plan: list[Reply] = []
        self.requests: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._gen = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: Any = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="fake-openai-server")  # fmt: skip
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def _next(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self.plan:
                return self.plan.pop(0)
            if self.faults and self._rng.random() < self.faults:
                kind = list(FAULTS)[self._fault_turn % len(FAULTS)]
                self._fault_turn += 1
                self.faults_sent[kind] += 1
                return FAULTS[kind]
        return self.respond(body) if self.respond is not None else self.default

    async def _start(self) -> int:
        from aiohttp import web

        async def chat(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"_raw": raw.decode("utf-8", "replace")}
            with self._lock:
                self.requests.append(Seen(body, dict(request.headers), time.monotonic()))
                gen = self._gen  # a reset forgets requests still running from before it
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            reply = self._next(body)
            try:
                if reply.delay_s:
                    await asyncio.sleep(reply.delay_s)
            finally:
                with self._lock:
                    if gen == self._gen:
                        self.in_flight -= 1
            if reply.drop:
                assert request.transport is not None
                request.transport.abort()  # no status line at all: the client sees a disconnect
                return web.Response()
            ctype = "application/json" if reply.body is None else "text/html"
            return web.Response(status=reply.status, body=reply.payload(str(body.get("model"))),
                                headers={"Content-Type": ctype, **reply.headers})  # fmt: skip

        async def models(request: web.Request) -> web.Response:
            return web.json_response({"object": "list", "data": [{"id": "fake"}]})

        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_get("/v1/models", models)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        return int(self._runner.addresses[0][1])

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [s.body for s in self.requests]

    def reset(self, *, default: Reply | None = _MISSING) -> None:
        """Forget what was seen and planned (and set a new ``default`` if given)."""
        with self._lock:
            self.plan.clear()
            self.requests.clear()
            self._gen += 1
            self.in_flight = self.max_in_flight = 0
            if default is not _MISSING:
                self.default = default or Reply()

    def close(self) -> None:
        """Stop serving and end the thread. Idempotent."""
        if self._loop.is_closed():
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> FakeOpenAIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
