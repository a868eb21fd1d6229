"""Test doubles for the runtime tests (no tests here): a fake Transport."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable

from metasearch.llm.types import LLMRequest, LLMResponse
from metasearch.runtime.settings import AgentSettings


def settings(protocol: str = "sections", **kw) -> AgentSettings:
    kw.setdefault("model", "fake/task-model")
    kw.setdefault("answer_hint", "an integer")
    return AgentSettings(protocol=protocol, candidate="cand-1", **kw)


def requested_fields(req: LLMRequest) -> list[str]:
    if req.response_format is not None:
        return list(req.response_format["json_schema"]["schema"]["required"])
    system = req.messages[0]["content"]
    return re.findall(r"^## (\S+)$", system, flags=re.MULTILINE)


def well_formed(req: LLMRequest, values: dict[str, str]) -> str:
    """A correct reply in the request's protocol with the given field values."""
    fields = requested_fields(req)
    vals = {f: values.get(f, f"my {f}") for f in fields}
    if req.response_format is not None:
        return json.dumps(vals)
    return "\n\n".join(f"## {f}\n{v}" for f, v in vals.items())


def always(value: str) -> Callable[[LLMRequest], str]:
    """Every field of every reply is ``value``."""
    return lambda req: well_formed(req, {f: value for f in requested_fields(req)})


class FakeTransport:
    """Answers with ``fn(request)`` (or ``replies`` in order); records requests and notes."""

    def __init__(self, fn: Callable[[LLMRequest], str] | None = None, *, replies: list[str] | None = None,
                 finish_reason: str = "stop") -> None:
        self._fn = fn or always("42")
        self._replies = list(replies) if replies is not None else None
        self.finish_reason = finish_reason
        self.requests: list[LLMRequest] = []
        self.notes: Counter[str] = Counter()
        self.note_candidates: set[str | None] = set()
        self._lock = threading.Lock()

    def complete(self, request: LLMRequest) -> LLMResponse:
        with self._lock:
            self.requests.append(request)
            text = self._replies.pop(0) if self._replies is not None else None
        if text is None:
            text = self._fn(request)
        return LLMResponse(text=text, model=request.model, finish_reason=self.finish_reason)

    def note(self, event: str, *, candidate: str | None = None, n: int = 1) -> None:
        with self._lock:
            self.notes[event] += n
            self.note_candidates.add(candidate)
