"""Per-load and per-task state of the agent runtime, passed explicitly (no globals).

A :class:`RuntimeContext` is created by ``load_agent`` and bound to that load's
``LLMAgentBase`` subclass. Each task runs inside a :class:`TaskScope` that
makes repeated identical requests distinct (``sample_index`` 0, 1, 2, ...)
and agent ids deterministic, so that a rerun of the same task sends the same
requests and hits the gateway cache.
"""

from __future__ import annotations

import hashlib
import json
import random
import string
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from metasearch.llm.types import LLMRequest, LLMResponse
from metasearch.runtime.settings import AgentSettings
from metasearch.runtime.transport import Transport

_ID_ALPHABET = string.ascii_letters + string.digits


def request_key(**parts: Any) -> str:
    """A stable hash of everything that makes two requests identical."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class TaskScope:
    """Counters for one task run (thread-safe)."""

    def __init__(self, seed: str, task: str | None = None) -> None:
        self.task = task  # the task's id as the runner named it (None: no task)
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._rng = random.Random(hashlib.sha256(seed.encode()).hexdigest())
        self.truncated = False

    def next_sample_index(self, key: str) -> int:
        """0 for the first request with this key in this task, then 1, 2, ..."""
        with self._lock:
            n = self._counts.get(key, 0)
            self._counts[key] = n + 1
            return n

    def new_agent_id(self) -> str:
        """A short random-looking id, deterministic in creation order within the task."""
        with self._lock:
            return "".join(self._rng.choice(_ID_ALPHABET) for _ in range(4))


class RuntimeContext:
    """What a loaded agent's ``LLMAgentBase`` needs: settings, transport, task scopes.

    The current task scope is thread-local. Threads that ``forward`` starts
    itself do not see it, so they fall back to one lock-protected scope per
    load: identical requests still get distinct indices, but a second run of
    the same task *within the same load* would continue counting (each
    evaluation loads the agent afresh, so reruns across evaluations match).
    """

    def __init__(self, settings: AgentSettings, transport: Transport) -> None:
        self.settings = settings
        self.transport = transport
        self._local = threading.local()
        self._fallback = TaskScope("")

    @property
    def scope(self) -> TaskScope:
        return getattr(self._local, "scope", None) or self._fallback

    @contextmanager
    def task_scope(self, seed: str, task: str | None = None) -> Iterator[TaskScope]:
        """Run one task: a fresh scope for the calling thread, removed afterwards."""
        previous = getattr(self._local, "scope", None)
        scope = TaskScope(seed, task)
        self._local.scope = scope
        try:
            yield scope
        finally:
            self._local.scope = previous

    def complete(self, request: LLMRequest, *, agent: str = "", repair: bool = False) -> LLMResponse:
        """Make one call through the transport, labelled for the trace when it records one.

        A transport with ``complete_traced(request, tag)`` gets the tag
        ``{"task": <this thread's task id or None>, "agent": ..., "repair": ...}``;
        any other gets ``complete(request)``.
        """
        traced = getattr(self.transport, "complete_traced", None)
        if traced is None:
            return self.transport.complete(request)
        return traced(request, {"task": self.scope.task, "agent": agent, "repair": repair})

    def note(self, event: str, n: int = 1) -> None:
        self.transport.note(event, candidate=self.settings.candidate, n=n)
