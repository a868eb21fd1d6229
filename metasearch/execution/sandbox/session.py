"""The host side of one run: serve a jailed worker's LLM calls, collect its outcomes.

Two kinds of failure, kept apart:

* the candidate's code failed (raised, timed out, crashed or killed its
  worker, broke the protocol): every affected task gets a ``TaskOutcome``
  with a ``TaskError``; ``run`` returns normally;
* the sandbox itself broke (the jail cannot start, the worker never says
  hello): :class:`SandboxError` is raised.

A breach of the worker's cgroup limits (``cgroups``: memory, processes) is
the candidate's failure: it is read back before every frame, and from then
on the worker is killed and every task not yet recorded fails with a reason
that says "memory limit" or "process limit".

The host never trusts the worker: every frame is size-capped and
schema-checked, requests are relabelled host-side (``role="task"``, the
run's candidate, ``max_tokens`` capped), a model outside the run's allowed
list (``AgentSettings.allowed``, within the runner's ``allowed_models``) is
refused and never routed, and any violation kills
the worker and fails the candidate's remaining tasks.
"""

from __future__ import annotations

import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import replace
from typing import Any, Protocol

from metasearch.execution.sandbox.protocol import FrameBuffer, ProtocolError, encode
from metasearch.execution.sandbox.types import SandboxError, SandboxLimits, SandboxResult, _Worker
from metasearch.llm.types import BudgetExceeded, LLMError, LLMRequest, LLMResponse
from metasearch.outcomes import TaskError, TaskOutcome
from metasearch.runtime.call_cap import CallCap
from metasearch.runtime.python_tool import PYTHON_EVENTS
from metasearch.runtime.settings import AgentSettings
from metasearch.runtime.traces import TraceRecorder
from metasearch.suites.task import Task

NOTE_EVENTS = frozenset({"parse_failure", "repair", "missing_field", "truncated"}) | PYTHON_EVENTS
_ERROR_KINDS = frozenset({"exception", "timeout", "crash", "budget", "refused"})
_REQUEST_KEYS = frozenset({"model", "messages", "temperature", "max_tokens", "response_format",
                           "sample_index", "role", "candidate"})
_MESSAGE_ROLES = frozenset({"system", "user", "assistant"})


class _Host(Protocol):
    """What a session uses of its runner (a ``pool.SandboxRunner``)."""

    limits: SandboxLimits
    mode: str
    _complete: Callable[[LLMRequest], LLMResponse] | None
    _note: Callable[..., None] | None
    _allowed_models: frozenset[str] | None
    _pool: ThreadPoolExecutor


class _Violation(Exception):
    """The worker broke the protocol."""


class _Session:
    """One worker, one candidate. Runs entirely on the caller's thread, except LLM calls."""

    def __init__(self, runner: _Host, worker: _Worker, code: str, tasks: list[Task],
                 settings: AgentSettings, on_outcome: Callable[[TaskOutcome], None] | None,
                 t0: float) -> None:
        self.r, self.lim, self.code, self.tasks = runner, runner.limits, code, tasks
        self.settings, self.on_outcome, self.t0 = settings, on_outcome, t0
        self.w, self.proc, self.sock = worker, worker.proc, worker.sock
        self.task_timeout = self.lim.task_timeout_s or settings.task_timeout_s
        self.results: dict[int, TaskOutcome] = {}
        self.outputs: dict[str, str] = {}
        self.started: dict[int, float] = {}
        self.timed_out: set[int] = set()  # abandoned on the host; the thread may still run
        self.inflight: set[Future[Any]] = set()
        self.send_lock = threading.Lock()
        self.budget_replied = False
        self.llm_calls = 0
        self.notes = 0
        # every call this run served, by task: the host's own record (the worker only labels)
        self.trace = TraceRecorder(len(tasks))
        self.trace_ids: dict[int, int] = {}  # the worker's rid -> the trace's call id
        self.cap = CallCap(settings.max_calls_per_task, len(tasks))
        self.eof = False
        self.loaded_s = 0.0
        # the models this run's agents may call: the host's settings, within the runner's list
        allowed = frozenset(settings.allowed)
        self.allowed = allowed if runner._allowed_models is None else (
            allowed & runner._allowed_models)

    # -- lifecycle ---------------------------------------------------------------
    def run(self) -> SandboxResult:
        t0 = self.t0
        self.frames = FrameBuffer(self.lim.max_message_bytes)
        self.pending: list[dict[str, Any]] = []
        failure: str | None = None
        try:
            self._handshake()
            failure = self._serve(t0 + self.lim.candidate_timeout_s)
        finally:
            self._kill()
            wait_futures(list(self.inflight), timeout=60)
            for d in self.w.drains:
                d.join(timeout=2)
        return SandboxResult(
            outcomes=[replace(self.results[i], trace=self.trace.task_trace(i))
                      for i in range(len(self.tasks))], mode=self.r.mode,
            start_s=self.loaded_s, wall_s=time.monotonic() - t0, llm_calls=self.llm_calls,
            outputs=self.outputs, stdout=self._log("stdout"), stderr=self._log("stderr"),
            failure=failure, prewarmed=self.w.hello)

    def _handshake(self) -> None:
        deadline = time.monotonic() + self.lim.start_timeout_s
        msg = {"op": "hello"} if self.w.hello else self._next_frame(deadline)
        if msg is None or msg.get("op") != "hello":
            self._kill()
            raise SandboxError(
                f"The sandbox worker ({self.r.mode}) did not start: "
                + ("no hello within the start timeout" if msg is None else "bad first message")
                + f". Worker stderr: {self._log('stderr')[-1500:] or '(empty)'}")
        self._send({
            "op": "init", "code": self.code, "settings": self.settings.to_json(),
            "tasks": [[i, t.question] for i, t in enumerate(self.tasks)],
            "max_answer_chars": self.lim.max_answer_chars,
            "max_output_chars": self.lim.max_output_chars,
            "max_error_chars": self.lim.max_error_chars,
        })

    def _serve(self, candidate_deadline: float) -> str | None:
        """The event loop; returns why the worker was given up on, or None."""
        loaded = False
        try:
            while len(self.results) < len(self.tasks):
                now = time.monotonic()
                if now >= candidate_deadline:
                    return self._fail_rest("timeout", "TimeoutError",
                                           f"the candidate exceeded its time limit of "
                                           f"{self.lim.candidate_timeout_s:g} s")
                self._expire_tasks(now)
                if len(self.results) >= len(self.tasks):
                    break
                if self.timed_out and len(self.timed_out) >= max(1, self.settings.threads):
                    return self._fail_rest("timeout", "TimeoutError",
                                           "not run: every worker thread was stuck in a task "
                                           "that had timed out")
                wake = min([candidate_deadline, now + 0.5]
                           + [s + self.task_timeout for i, s in self.started.items()
                              if i not in self.results])
                msg = self._next_frame(wake)
                # before the frame: an outcome sent after a breach is not the candidate's to keep
                breach = self.w.cgroup.breach() if self.w.cgroup is not None else None
                if breach is not None:
                    return self._fail_rest("crash", breach.type, breach.message)
                if msg is None:
                    if self._worker_gone():
                        return self._crash()
                    continue
                op = msg["op"]
                if op == "loaded" and not loaded:
                    loaded = True
                    self.loaded_s = time.monotonic() - self.t0
                elif op == "load_error" and not loaded:
                    message = _text(msg.get("message"), self.lim.max_error_chars)
                    return self._fail_rest("exception", _text(msg.get("type"), 100) or "Error",
                                           message)
                elif loaded:
                    self._handle(op, msg)
                else:
                    raise _Violation(f"unexpected {op!r} before the agent was loaded")
        except (ProtocolError, _Violation) as e:
            return self._fail_rest("crash", "SandboxProtocolError",
                                   f"the worker broke the sandbox protocol: {e}")
        return None

    # -- frames ---------------------------------------------------------------------
    def _next_frame(self, deadline: float) -> dict[str, Any] | None:
        """The next frame before ``deadline``, or None (timeout, or the worker closed)."""
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                return None
            try:
                data = self.sock.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                self.eof = True
                return None
            self.pending.extend(self.frames.feed(data))
        return self.pending.pop(0)

    def _worker_gone(self) -> bool:
        return self.eof or self.proc.poll() is not None

    def _send(self, msg: dict[str, Any]) -> None:
        data = encode(msg)
        with self.send_lock:
            self.sock.sendall(data)

    def _handle(self, op: str, msg: dict[str, Any]) -> None:
        if op == "start":
            i = self._index(msg)
            if i in self.started:
                raise _Violation(f"task {i} started twice")
            self.started[i] = time.monotonic()
            self.trace.started(i)
        elif op == "result":
            self._on_result(msg)
        elif op == "llm":
            self._on_llm(msg)
        elif op == "note":
            event, n = msg.get("event"), msg.get("n")
            if event not in NOTE_EVENTS or type(n) is not int or not 1 <= n <= 1000:
                raise _Violation("malformed note")
            self.notes += 1
            if self.notes > self.lim.max_notes:
                raise _Violation("too many notes")
            rid = msg.get("rid")
            self.trace.event(event, call_id=self.trace_ids.get(rid) if type(rid) is int else None)
            if self.r._note is not None:
                self.r._note(event, candidate=self.settings.candidate, n=n)
        else:
            raise _Violation(f"unknown op {op[:40]!r}")

    def _index(self, msg: dict[str, Any]) -> int:
        i = msg.get("index")
        if type(i) is not int or not 0 <= i < len(self.tasks):
            raise _Violation("bad task index")
        return i

    def _on_result(self, msg: dict[str, Any]) -> None:
        i = self._index(msg)
        if i in self.timed_out:  # a late answer: the thread is free again; the outcome stands
            self.timed_out.discard(i)
            return
        if i in self.results or i not in self.started:
            raise _Violation(f"unexpected result for task {i}")
        answer, err = msg.get("answer"), msg.get("error")
        wall, truncated, output = msg.get("wall_s"), msg.get("truncated"), msg.get("output", "")
        if (not (answer is None or isinstance(answer, str)) or not isinstance(truncated, bool)
                or not isinstance(wall, int | float) or not isinstance(output, str)
                or not (err is None or isinstance(err, dict))):
            raise _Violation("malformed result")
        error = None
        if err is not None:
            kind = err.get("kind")
            if kind not in _ERROR_KINDS or (kind == "budget" and not self.budget_replied):
                kind = "exception"  # the worker cannot claim what the host did not see
            error = TaskError(kind=kind, type=_text(err.get("type"), 100) or "Error",
                              message=_text(err.get("message"), self.lim.max_error_chars),
                              traceback=_text(err.get("traceback"), self.lim.max_error_chars))
            answer = None
        if answer is not None and len(answer) > self.lim.max_answer_chars:
            answer, truncated = answer[:self.lim.max_answer_chars], True
        if len(output) > self.lim.max_output_chars:
            output, truncated = output[:self.lim.max_output_chars], True
        task = self.tasks[i]
        if output:
            self.outputs[task.id] = output
        self._record(i, TaskOutcome(task_id=task.id, answer=answer, error=error,
                                    wall_s=float(wall), truncated=truncated))

    def _on_llm(self, msg: dict[str, Any]) -> None:
        rid = msg.get("rid")
        if type(rid) is not int:
            raise _Violation("llm call without an integer rid")
        if len(self.inflight) >= self.lim.max_inflight_calls:
            raise _Violation(f"more than {self.lim.max_inflight_calls} LLM calls in flight")
        request = self._request(msg.get("request"))
        index = self._task_index(msg)
        if isinstance(request, LLMRequest):
            request = self.cap.take(index) or request
        self.llm_calls += 1
        call = self._trace_begin(msg, request, index)
        self.trace_ids[rid] = call
        fut = self.r._pool.submit(self._call, rid, request, call)
        self.inflight.add(fut)
        fut.add_done_callback(self.inflight.discard)

    def _request(self, d: Any) -> LLMRequest | str:
        """The host's own version of the request, or why it is refused."""
        if not isinstance(d, dict) or not set(d) <= _REQUEST_KEYS:
            raise _Violation("malformed LLM request")
        msgs = d.get("messages")
        if (not isinstance(msgs, list) or not msgs or len(msgs) > 1000 or not all(
                isinstance(m, dict) and set(m) == {"role", "content"}
                and m["role"] in _MESSAGE_ROLES and isinstance(m["content"], str) for m in msgs)):
            raise _Violation("malformed LLM request messages")
        temp, mt, idx = d.get("temperature", 0.5), d.get("max_tokens"), d.get("sample_index", 0)
        rf, model = d.get("response_format"), d.get("model")
        if (not isinstance(model, str) or type(temp) not in (int, float) or not 0 <= temp <= 2
                or not (mt is None or type(mt) is int) or type(idx) is not int
                or not 0 <= idx < 1_000_000 or not (rf is None or isinstance(rf, dict))):
            raise _Violation("malformed LLM request fields")
        if model not in self.allowed:
            return (f"model {model[:100]!r} is not available to agents in this run; "
                    f"use the run's task model ({self.settings.model})"
                    + (f" or one of {', '.join(sorted(self.settings.alternatives))}"
                       if self.settings.alternatives else ""))
        cap = self.settings.max_tokens
        return LLMRequest(
            model=model, messages=tuple({"role": m["role"], "content": m["content"]} for m in msgs),
            temperature=float(temp), max_tokens=cap if mt is None else max(1, min(mt, cap)),
            response_format=rf, sample_index=idx, role="task", candidate=self.settings.candidate)

    def _task_index(self, msg: dict[str, Any]) -> int | None:
        """The running task a call is labelled with, else None; labels are only labels."""
        tag = msg.get("trace") if isinstance(msg.get("trace"), dict) else {}
        task = tag.get("task")
        index = int(task) if isinstance(task, str) and task.isdigit() else None
        if index is not None and (index not in self.started or index in self.results):
            index = None  # not a running task: let the recorder attribute it, if it can
        return index

    def _trace_begin(self, msg: dict[str, Any], request: LLMRequest | str,
                     index: int | None) -> int:
        """Open the trace's record of a call."""
        tag = msg.get("trace") if isinstance(msg.get("trace"), dict) else {}
        if isinstance(request, str):  # refused: record what was asked
            d = msg["request"]
            request = LLMRequest(model=str(d.get("model"))[:100],
                                 messages=tuple(d["messages"]), candidate=self.settings.candidate)
        agent = tag.get("agent")
        return self.trace.begin(request, task=index,
                                agent=agent[:200] if isinstance(agent, str) else "",
                                repair=tag.get("repair") is True)

    def _call(self, rid: int, request: LLMRequest | str, call: int = -1) -> None:
        reply: dict[str, Any]
        response: LLMResponse | None = None
        start = time.monotonic()
        if isinstance(request, str):
            reply = {"ok": False, "error": {"type": "LLMError", "message": request}}
        elif self.r._complete is None:
            reply = {"ok": False, "error": {"type": "LLMError",
                                            "message": "no LLM gateway is configured"}}
        else:
            try:
                response = self.r._complete(request)
                reply = {"ok": True, "response": response.to_json()}
            except BudgetExceeded as e:
                self.budget_replied = True
                reply = {"ok": False, "error": {"type": "BudgetExceeded", "message": str(e),
                                                "cap": e.cap}}
            except LLMError as e:
                reply = {"ok": False, "error": {"type": type(e).__name__, "message": str(e)}}
            except Exception as e:  # a gateway bug must not take the host down
                reply = {"ok": False, "error": {"type": "LLMError",
                                                "message": f"gateway failed: {type(e).__name__}"}}
        latency = time.monotonic() - start
        try:
            self._send({"op": "llm_result", "rid": rid, **reply})
        except OSError:
            pass  # the worker is gone; its tasks are failed by the event loop
        # after the reply, so the trace can never hold it up (run() waits for this thread)
        if response is not None:
            self.trace.end(call, response, latency_s=latency)
        else:
            err = reply["error"]
            self.trace.end(call, error=f"{err['type']}: {err['message']}", latency_s=latency)

    # -- outcomes -----------------------------------------------------------------
    def _record(self, i: int, outcome: TaskOutcome) -> None:
        self.results[i] = outcome
        self.trace.finished(i)
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    def _expire_tasks(self, now: float) -> None:
        for i, start in list(self.started.items()):
            if i not in self.results and now - start >= self.task_timeout:
                self.timed_out.add(i)
                self._record(i, TaskOutcome(
                    task_id=self.tasks[i].id, answer=None, wall_s=now - start,
                    error=TaskError(kind="timeout", type="TimeoutError",
                                    message=f"the task took longer than {self.task_timeout:g} s")))

    def _fail_rest(self, kind: str, type_: str, message: str) -> str:
        self._kill()
        for i, task in enumerate(self.tasks):
            if i not in self.results:
                self._record(i, TaskOutcome(task_id=task.id, answer=None,
                                            error=TaskError(kind=kind, type=type_,  # type: ignore[arg-type]
                                                            message=message)))
        return message

    def _crash(self) -> str:
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        self._kill()
        rc = self.proc.returncode
        sig = -rc if rc is not None and rc < 0 else (rc - 128 if rc is not None and rc > 128 else 0)
        tail = self._log("stderr").strip()[-1500:]
        if sig == signal.SIGXCPU:
            return self._fail_rest("timeout", "CPUTimeLimit",
                                   f"the worker used up its CPU time limit ({self.lim.cpu_s} s)")
        how = f"killed by signal {signal.Signals(sig).name}" if sig in signal.valid_signals() \
            and sig else f"exit status {rc}"
        return self._fail_rest("crash", "WorkerCrash",
                               f"the worker process died ({how}) before finishing its tasks"
                               + (f"; its last output: {tail}" if tail else ""))

    def _kill(self) -> None:
        self.w.kill()

    def _log(self, name: str) -> str:
        return self.w.log(name)


def _text(value: Any, cap: int) -> str:
    return (value if isinstance(value, str) else "" if value is None else str(value))[:cap]
