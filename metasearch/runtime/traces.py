"""Per-task traces: the LLM calls an agent made inside each task, recorded on the host.

A :class:`TraceRecorder` is filled by the runner while an agent runs: the
sandbox host (which serves every call over its RPC loop) and the in-process
runner record the same thing. Each call becomes a JSON-ready dict, the
*call dict* (the contract strategies read through ``ArchiveView.read_traces``):

- ``agent``: the calling agent, ``"<agent_name> <id>"`` as its Infos name it
  (``""`` when unknown: a call from a thread the agent started itself);
- ``repair``: True for the runtime's repair call after an unusable reply;
- ``model``, ``temperature``;
- ``system``: the system message, ``prompt``: the last user message, each
  capped; ``n_messages``: how many messages the request held;
- ``reply``: the reply text, capped (``""`` when the call failed);
- ``error``: why the call failed (``"BudgetExceeded: ..."``), else None;
- ``events``: the reply-protocol events that followed this call in its thread:
  ``repair`` (its reply could not be used), ``parse_failure``,
  ``missing_field``, ``truncated``, ``python_<kind>`` (a ``run_python`` run);
- ``prompt_tokens``, ``completion_tokens``, ``latency_s``, ``cached``;
- ``start``: wall-clock start (Unix seconds);
- ``cut``: ``{field: original length}`` for each text field that was shortened.

Sizes are capped (:class:`TraceLimits`) so a chatty agent cannot bloat a
campaign directory: each text field, the calls kept per task (the first
ones; the rest are counted in ``dropped_calls``) and the characters kept per
candidate (failed and wrong tasks are served first; a task past the cap keeps
its call metadata without texts, and says so in ``cut``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metasearch.llm.types import LLMRequest, LLMResponse

__all__ = ["TraceLimits", "TraceRecorder", "task_traces", "TEXT_FIELDS"]

#: The call-dict fields whose text is capped (and emptied past the candidate cap).
TEXT_FIELDS = ("system", "prompt", "reply")


@dataclass(frozen=True)
class TraceLimits:
    """How much of a candidate's calls is kept (characters, calls)."""

    prompt_chars: int = 2000  # the last user message: its head and tail are kept
    system_chars: int = 600
    reply_chars: int = 2000
    calls_per_task: int = 24
    chars_per_candidate: int = 400_000
    question_chars: int = 1000


DEFAULT_LIMITS = TraceLimits()


def clip(text: str, cap: int) -> tuple[str, bool]:
    """``text`` cut to about ``cap`` characters, keeping its head and tail."""
    if len(text) <= cap:
        return text, False
    head = max(0, cap * 2 // 3)
    tail = max(0, cap - head)
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut} characters cut ...]\n{text[len(text) - tail:]}", True


class TraceRecorder:
    """Collects one run's calls per task; thread-safe. Tasks are keyed by their index.

    ``begin`` opens a call (returns its id), ``end`` closes it with the reply
    or the error, ``event`` attaches a protocol event to a call (or, without
    one, to the task). Calls of an unknown task (``task=None``) are kept
    apart and given to the task when exactly one was running.
    """

    def __init__(self, n_tasks: int, limits: TraceLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._calls: list[dict[str, Any]] = []
        self._task_of: list[int | None] = []
        self._per_task = [0] * n_tasks
        self._dropped = [0] * n_tasks
        self._task_events: list[list[str]] = [[] for _ in range(n_tasks)]
        self._running: set[int] = set()

    # ---- task lifecycle (for attributing untagged calls)
    def started(self, task: int) -> None:
        with self._lock:
            self._running.add(task)

    def finished(self, task: int) -> None:
        with self._lock:
            self._running.discard(task)

    # ---- calls
    def begin(self, request: LLMRequest, *, task: int | None, agent: str = "",
              repair: bool = False) -> int:
        """Record that a call started; returns its id (-1 when the task's cap is reached)."""
        lim = self.limits
        msgs = request.messages
        system = next((m["content"] for m in msgs if m["role"] == "system"), "")
        prompt = next((m["content"] for m in reversed(msgs) if m["role"] == "user"), "")
        call: dict[str, Any] = {
            "agent": str(agent)[:200], "repair": bool(repair), "model": request.model,
            "temperature": request.temperature, "n_messages": len(msgs),
            "system": system, "prompt": prompt, "reply": "", "error": None, "events": [],
            "prompt_tokens": 0, "completion_tokens": 0, "latency_s": 0.0, "cached": False,
            "start": time.time(), "cut": {},
        }
        for key, cap in (("system", lim.system_chars), ("prompt", lim.prompt_chars)):
            call[key], cut = clip(call[key], cap)
            if cut:
                call["cut"][key] = len(system if key == "system" else prompt)
        with self._lock:
            if task is None and len(self._running) == 1:
                task = next(iter(self._running))
            if task is not None and not 0 <= task < len(self._per_task):
                task = None
            if task is not None:
                if self._per_task[task] >= lim.calls_per_task:
                    self._dropped[task] += 1
                    return -1
                self._per_task[task] += 1
            elif len(self._task_of) - sum(self._per_task) >= lim.calls_per_task:
                return -1  # calls of no known task: kept only up to one task's worth
            self._calls.append(call)
            self._task_of.append(task)
            return len(self._calls) - 1

    def end(self, call_id: int, response: LLMResponse | None = None, *,
            error: str | None = None, latency_s: float | None = None) -> None:
        if call_id < 0:
            return
        with self._lock:
            if call_id >= len(self._calls):
                return
            call = self._calls[call_id]
            if response is not None:
                text, cut = clip(response.text, self.limits.reply_chars)
                if cut:
                    call["cut"]["reply"] = len(response.text)
                call.update(reply=text, prompt_tokens=response.prompt_tokens,
                            completion_tokens=response.completion_tokens,
                            cached=response.cached, model=response.model or call["model"])
                if response.truncated and "truncated" not in call["events"]:
                    call["events"].append("truncated")
            if error is not None:
                call["error"] = error[:1000]
            call["latency_s"] = (latency_s if latency_s is not None
                                 else max(0.0, time.time() - call["start"]))

    def event(self, event: str, *, call_id: int | None, task: int | None = None) -> None:
        """Attach a protocol event to ``call_id`` (else to ``task``)."""
        with self._lock:
            if call_id is not None and 0 <= call_id < len(self._calls):
                events = self._calls[call_id]["events"]
                if event not in events or event != "truncated":  # truncated comes from both ends
                    events.append(event)
                return
            if task is not None and 0 <= task < len(self._task_events):
                self._task_events[task].append(event)

    # ---- reading
    def task_calls(self, task: int) -> list[dict[str, Any]]:
        """Copies of the calls recorded for ``task`` (``events`` and ``cut`` copied too)."""
        with self._lock:
            return [_copy(c) for c, t in zip(self._calls, self._task_of, strict=True) if t == task]

    def task_extra(self, task: int) -> dict[str, Any]:
        """Task-level notes: calls dropped by the per-task cap, events outside any call."""
        with self._lock:
            out: dict[str, Any] = {}
            if self._dropped[task]:
                out["dropped_calls"] = self._dropped[task]
            if self._task_events[task]:
                out["events"] = list(self._task_events[task])
            return out

    def task_trace(self, task: int) -> dict[str, Any]:
        """``{"calls": [...]}`` plus the task-level notes: what a ``TaskOutcome`` carries."""
        return {"calls": self.task_calls(task), **self.task_extra(task)}


def _copy(call: Mapping[str, Any]) -> dict[str, Any]:
    return {**call, "events": list(call["events"]), "cut": dict(call["cut"])}


def task_traces(
    results: Iterable[Any], traces: Mapping[str, Mapping[str, Any]], questions: Mapping[str, str],
    limits: TraceLimits = DEFAULT_LIMITS,
) -> tuple[dict[str, Any], ...]:
    """One JSON-ready line per task: the answer against the gold answer, and its calls.

    ``results`` are scored ``TaskResult``\\ s; ``traces`` maps task id to
    ``{"calls": [...], ...}`` from the runner. The per-candidate character cap
    is spent on failed and wrong tasks first.
    """
    results = list(results)
    order = sorted(range(len(results)),
                   key=lambda i: (results[i].error is None and results[i].score >= 1.0, i))
    budget = limits.chars_per_candidate
    lines: dict[int, dict[str, Any]] = {}
    for i in order:
        r = results[i]
        t = dict(traces.get(r.task_id) or {})
        calls = [dict(c) for c in t.pop("calls", ())]
        question, q_cut = clip(questions.get(r.task_id, ""), limits.question_chars)
        size = sum(len(c.get(f) or "") for c in calls for f in TEXT_FIELDS)
        line: dict[str, Any] = {
            "task_id": r.task_id, "question": question, "answer": r.answer, "gold": r.gold,
            "score": r.score, "error": r.error.brief() if r.error is not None else None,
            "calls": calls, **t,
        }
        if q_cut:
            line["cut"] = "question shortened"
        if size > budget:
            for c in calls:
                for f in TEXT_FIELDS:
                    if c.get(f):
                        c["cut"] = {**c.get("cut", {}), f: len(c[f])}
                        c[f] = ""
            line["cut"] = (f"call texts removed: the candidate's trace cap "
                           f"({limits.chars_per_candidate} characters) was reached")
            size = 0
        budget -= size
        lines[i] = line
    return tuple(lines[i] for i in range(len(results)))


def calls_by_task(lines: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Task id -> its call dicts, from the lines of a trace file."""
    return {str(line["task_id"]): [dict(c) for c in line.get("calls") or ()] for line in lines}
