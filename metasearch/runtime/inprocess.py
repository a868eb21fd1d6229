"""Run trusted agent code (the seeds in ``archive/``, tests) in this process.

Tasks run concurrently on ``settings.threads`` threads. Each task's exception
becomes a :class:`TaskOutcome` with a :class:`TaskError`. A ``BudgetExceeded``
stops launching new tasks; tasks not started are reported as ``budget``.

The per-task timeout is *soft*: a task past ``settings.task_timeout_s`` is
reported as ``timeout`` and its thread is abandoned (it keeps running in the
background until it finishes). Python cannot kill a thread; only the sandbox,
which runs agents in a killable process, enforces timeouts for real. Untrusted
code must never come here.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from metasearch.llm.types import LLMError, LLMRequest, LLMResponse
from metasearch.outcomes import TaskError, TaskOutcome
from metasearch.runtime.call_cap import CallCap
from metasearch.runtime.loader import LoadedAgent, load_agent
from metasearch.runtime.settings import AgentSettings
from metasearch.runtime.traces import TraceRecorder
from metasearch.runtime.transport import Transport
from metasearch.suites.task import Task

_NOT_STARTED = TaskError(
    kind="budget", type="BudgetExceeded",
    message="not started: the budget was exhausted by an earlier task",
)


def run_tasks_inprocess(
    code: str,
    tasks: Sequence[Task],
    settings: AgentSettings,
    transport: Transport,
    *,
    on_outcome: Callable[[TaskOutcome], None] | None = None,
) -> list[TaskOutcome]:
    """Run ``code`` on every task; one outcome per task, in task order.

    Raises :class:`~metasearch.errors.AgentCodeError` if the code cannot be
    loaded. ``on_outcome`` is called from this thread as each outcome lands.
    Each returned outcome carries its task's calls in ``trace``
    (:mod:`metasearch.runtime.traces`).
    """
    recorder = TraceRecorder(len(tasks))
    traced = TracingTransport(transport, recorder, {t.id: i for i, t in enumerate(tasks)},
                              cap=CallCap(settings.max_calls_per_task, len(tasks)))
    agent = load_agent(code, settings, traced)
    done: queue.Queue[tuple[int, TaskOutcome]] = queue.Queue()
    results: dict[int, TaskOutcome] = {}
    running: dict[int, float] = {}  # index -> start time
    pending = list(range(len(tasks)))[::-1]
    stop = False

    def record(i: int, outcome: TaskOutcome) -> None:
        nonlocal stop
        results[i] = outcome
        running.pop(i, None)
        recorder.finished(i)
        if outcome.error is not None and outcome.error.kind == "budget":
            stop = True
        if on_outcome is not None:
            on_outcome(outcome)

    while pending or running:
        while pending and not stop and len(running) < max(1, settings.threads):
            i = pending.pop()
            running[i] = time.monotonic()
            recorder.started(i)
            threading.Thread(target=_worker, args=(agent, tasks[i], i, done),
                             name=f"task-{tasks[i].id}", daemon=True).start()
        if stop:
            for i in reversed(pending):
                record(i, TaskOutcome(task_id=tasks[i].id, answer=None, error=_NOT_STARTED))
            pending.clear()
        if not running:
            break
        deadline = min(running.values()) + settings.task_timeout_s
        try:
            i, outcome = done.get(timeout=max(0.0, deadline - time.monotonic()))
            if i in running:  # late results of abandoned tasks are dropped
                record(i, outcome)
        except queue.Empty:
            pass
        now = time.monotonic()
        for i, start in list(running.items()):
            if now - start >= settings.task_timeout_s:
                record(i, TaskOutcome(
                    task_id=tasks[i].id, answer=None, wall_s=now - start,
                    error=TaskError(kind="timeout", type="TimeoutError",
                                    message=f"the task took longer than {settings.task_timeout_s:g} s"),
                ))
    return [replace(results[i], trace=recorder.task_trace(i)) for i in range(len(tasks))]


class TracingTransport:
    """A transport that records each call in a :class:`TraceRecorder`, then passes it on.

    Protocol events go to the last call made on the noting thread.
    """

    def __init__(self, inner: Transport, recorder: TraceRecorder, index: dict[str, int],
                 cap: CallCap | None = None) -> None:
        self._inner = inner
        self._recorder = recorder
        self._index = index
        self._cap = cap
        self._local = threading.local()

    def complete(self, request: LLMRequest) -> LLMResponse:
        return self.complete_traced(request, {})

    def complete_traced(self, request: LLMRequest, tag: dict[str, Any]) -> LLMResponse:
        task = self._index.get(tag.get("task"))  # type: ignore[arg-type]
        call = self._recorder.begin(request, task=task, agent=str(tag.get("agent") or ""),
                                    repair=bool(tag.get("repair")))
        self._local.call = call
        start = time.monotonic()
        refused = self._cap.take(task) if self._cap is not None else None
        try:
            if refused is not None:
                raise LLMError(refused)
            response = self._inner.complete(request)
        except Exception as e:
            self._recorder.end(call, error=f"{type(e).__name__}: {e}",
                               latency_s=time.monotonic() - start)
            raise
        self._recorder.end(call, response, latency_s=time.monotonic() - start)
        return response

    def note(self, event: str, *, candidate: str | None = None, n: int = 1) -> None:
        self._inner.note(event, candidate=candidate, n=n)
        self._recorder.event(event, call_id=getattr(self._local, "call", None))


def _worker(agent: LoadedAgent, task: Task, i: int, done: queue.Queue) -> None:
    done.put((i, agent.run_task(task.id, task.question)))
