"""The host side of the sandbox: start a jailed worker, serve its LLM calls, collect outcomes.

Two kinds of failure, kept apart:

* the candidate's code failed (raised, timed out, crashed or killed its
  worker, broke the protocol): every affected task gets a ``TaskOutcome``
  with a ``TaskError``; ``run`` returns normally;
* the sandbox itself broke (the jail cannot start, the worker never says
  hello): :class:`SandboxError` is raised.

The host never trusts the worker: every frame is size-capped and
schema-checked, requests are relabelled host-side (``role="task"``, the
run's candidate and model, ``max_tokens`` capped), and any violation kills
the worker and fails the candidate's remaining tasks.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metasearch.errors import MetasearchError
from metasearch.llm.types import BudgetExceeded, LLMError, LLMRequest, LLMResponse
from metasearch.outcomes import TaskError, TaskOutcome
from metasearch.runtime.settings import AgentSettings
from metasearch.execution.sandbox.launch import MODES, JailSpec, probe
from metasearch.execution.sandbox.protocol import FrameBuffer, ProtocolError, encode, recv_frame
from metasearch.suites.task import Task

NOTE_EVENTS = frozenset({"parse_failure", "repair", "missing_field", "truncated"})
_ERROR_KINDS = frozenset({"exception", "timeout", "crash", "budget", "refused"})
_REQUEST_KEYS = frozenset({"model", "messages", "temperature", "max_tokens", "response_format",
                           "sample_index", "role", "candidate"})
_MESSAGE_ROLES = frozenset({"system", "user", "assistant"})


class SandboxError(MetasearchError):
    """The sandbox itself broke or cannot be used (terminal; not the candidate's fault)."""


class SandboxUnavailable(SandboxError):
    """The requested isolation mode does not work on this machine."""


class SandboxWarning(UserWarning):
    """Isolation is weaker than it should be."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one worker (one candidate). ``None`` leaves a limit unset.

    ``cpu_s`` is CPU time of the whole worker (all its threads);
    ``task_timeout_s`` (wall clock, per task, from when the task starts)
    defaults to ``AgentSettings.task_timeout_s``; ``candidate_timeout_s``
    bounds the whole run and kills the worker's namespace.
    """

    cpu_s: int | None = 300
    memory_mb: int | None = 2048
    file_size_mb: int | None = 64
    nproc: int | None = 256
    nofile: int | None = 256
    task_timeout_s: float | None = None
    candidate_timeout_s: float = 1800.0
    start_timeout_s: float = 30.0
    max_message_bytes: int = 4 << 20
    max_answer_chars: int = 100_000
    max_output_chars: int = 20_000
    max_error_chars: int = 4_000
    max_log_bytes: int = 64 << 10
    max_inflight_calls: int = 256
    max_notes: int = 100_000

    def rlimits(self) -> dict[str, int | None]:
        mb = 1 << 20
        return {
            "cpu_s": self.cpu_s,
            "memory_bytes": None if self.memory_mb is None else self.memory_mb * mb,
            "file_size_bytes": None if self.file_size_mb is None else self.file_size_mb * mb,
            "nproc": self.nproc, "nofile": self.nofile, "core": 0,
            "max_message_bytes": self.max_message_bytes,
        }


@dataclass
class SandboxResult:
    """Everything one run produced: outcomes in task order, plus diagnostics.

    ``start_s`` is the time from the call to the agent being loaded in the
    worker (jail set-up, interpreter start, runtime import, agent exec).
    """

    outcomes: list[TaskOutcome]
    mode: str
    start_s: float = 0.0
    wall_s: float = 0.0
    llm_calls: int = 0
    outputs: dict[str, str] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    failure: str | None = None


class SandboxRunner:
    """Runs one candidate's tasks in a fresh jailed worker per call to :meth:`run`.

    ``gateway`` is the host-side door to the models: an object with
    ``complete(LLMRequest) -> LLMResponse`` (and optionally ``note(event,
    candidate=, n=)``), such as the gateway or a ``Transport``, or a bare
    ``complete`` function; None refuses LLM calls. ``mode`` is ``"auto"``
    (bwrap, else unshare; never silently ``none``), ``"bwrap"``,
    ``"unshare"`` or ``"none"``. Thread-safe: concurrent runs get distinct
    uids from ``uids`` and distinct scratch directories.
    """

    def __init__(
        self,
        *,
        mode: str = "auto",
        limits: SandboxLimits | None = None,
        gateway: Any = None,
        scratch_root: str | Path | None = None,
        uids: Sequence[int] = range(60000, 60256),
        call_threads: int = 16,
        allowed_models: Collection[str] | None = None,
        python: str | None = None,
        prewarm: bool = False,
    ) -> None:
        if mode not in (*MODES, "auto"):
            raise SandboxUnavailable(f"Unknown sandbox mode {mode!r}; use one of "
                                     "auto, bwrap, unshare, none.")
        self.limits = limits or SandboxLimits()
        self.python = python or sys.executable
        self._complete, self._note = _gateway_calls(gateway)
        self._allowed_models = None if allowed_models is None else frozenset(allowed_models)
        self._own_root = scratch_root is None
        self.scratch_root = Path(scratch_root or tempfile.mkdtemp(prefix="metasearch-sandbox-"))
        self.scratch_root.mkdir(parents=True, exist_ok=True)
        self._free_uids = list(uids)[::-1]
        self._uid_cond = threading.Condition()
        self._uid_locks: dict[int, int] = {}
        self._pool = ThreadPoolExecutor(max_workers=call_threads, thread_name_prefix="sbx-llm")
        self.prewarm = prewarm
        self._spare: _Worker | None = None
        self._spare_lock = threading.Lock()
        self._refilling = False
        self._closed = False
        self._want_spare = threading.Event()
        self._spawner: threading.Thread | None = None
        self.mode = self._choose_mode(mode)
        if self.mode == "none":
            msg = ("SANDBOX DISABLED (mode='none'): candidate code runs with only rlimits, as "
                   f"uid {os.getuid()}, with FULL NETWORK ACCESS and the host's file system. "
                   "Never use it for code written by a model.")
            warnings.warn(msg, SandboxWarning, stacklevel=2)
            print(f"WARNING: {msg}", file=sys.stderr)

    # -- public API -----------------------------------------------------------
    def run(self, code: str, tasks: Sequence[Task], settings: AgentSettings, *,
            on_outcome: Callable[[TaskOutcome], None] | None = None) -> list[TaskOutcome]:
        """Run ``code`` on ``tasks``; one outcome per task, in task order."""
        return self.run_detailed(code, tasks, settings, on_outcome=on_outcome).outcomes

    def run_detailed(self, code: str, tasks: Sequence[Task], settings: AgentSettings, *,
                     on_outcome: Callable[[TaskOutcome], None] | None = None) -> SandboxResult:
        """Like :meth:`run`, with timings, captured output and the failure reason."""
        t0 = time.monotonic()
        worker = self._take_spare() or self._spawn()
        try:
            return _Session(self, worker, code, list(tasks), settings, on_outcome, t0).run()
        finally:
            self._retire(worker)
            if self.prewarm:  # after the run, so the spare does not compete with it for CPU
                self._request_spare()

    def warm_up(self) -> None:
        """Start the spare worker now; returns when it is ready (or could not start)."""
        deadline = time.monotonic() + self.limits.start_timeout_s
        self._request_spare()
        while (self._spare is None and not self._closed and time.monotonic() < deadline
               and (self._refilling or self._want_spare.is_set())):
            time.sleep(0.005)

    def close(self) -> None:
        with self._spare_lock:
            spare, self._spare, self._closed = self._spare, None, True
        self._want_spare.set()
        if self._spawner is not None:
            self._spawner.join(timeout=self.limits.start_timeout_s)
        with self._spare_lock:
            spare, self._spare = spare or self._spare, None
        if spare is not None:
            self._retire(spare)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._own_root:
            shutil.rmtree(self.scratch_root, ignore_errors=True)

    def __enter__(self) -> SandboxRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- workers ----------------------------------------------------------------
    def _spawn(self) -> _Worker:
        uid = self._take_uid()
        scratch = self.scratch_root / f"cand-{uuid.uuid4().hex[:12]}"
        host_sock, child_sock = socket.socketpair()
        try:
            scratch.mkdir(mode=0o700)
            if self.mode != "none":
                os.chown(scratch, uid, uid)
            spec = JailSpec(mode=self.mode, python=self.python, scratch=scratch,
                            scratch_root=self.scratch_root, uid=uid, fd=child_sock.fileno(),
                            limits_json=json.dumps(self.limits.rlimits()))
            proc = subprocess.Popen(
                spec.argv(), env=spec.env(), cwd=spec.cwd(), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(child_sock.fileno(),),
                start_new_session=True)
        except OSError as e:
            host_sock.close()
            shutil.rmtree(scratch, ignore_errors=True)
            self._give_uid(uid)
            raise SandboxError(f"Cannot start the sandbox worker ({self.mode}): {e}.") from e
        finally:
            child_sock.close()
        host_sock.settimeout(10.0)
        worker = _Worker(proc=proc, sock=host_sock, uid=uid, scratch=scratch)
        for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            t = threading.Thread(target=worker.drain, args=(name, stream, self.limits.max_log_bytes),
                                 daemon=True)
            t.start()
            worker.drains.append(t)
        return worker

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        if self.mode != "none":
            _reap_uid(worker.uid)
        worker.sock.close()
        for d in worker.drains:
            d.join(timeout=2)
        shutil.rmtree(worker.scratch, ignore_errors=True)
        self._give_uid(worker.uid)

    def _take_spare(self) -> _Worker | None:
        if self.prewarm:  # a spare on its way is sooner than a fresh start
            deadline = time.monotonic() + self.limits.start_timeout_s
            while (self._spare is None and time.monotonic() < deadline
                   and (self._refilling or self._want_spare.is_set())):
                time.sleep(0.002)
        with self._spare_lock:
            spare, self._spare = self._spare, None
        if spare is not None and spare.proc.poll() is not None:
            self._retire(spare)
            return None
        return spare

    def _request_spare(self) -> None:
        # Spares are started by one long-lived thread: bwrap's --die-with-parent follows the
        # *thread* that started it, so a spare started by a short-lived thread would die.
        with self._spare_lock:
            if self._spawner is None:
                self._spawner = threading.Thread(target=self._spawn_loop, name="sbx-spawner",
                                                 daemon=True)
                self._spawner.start()
        self._want_spare.set()

    def _spawn_loop(self) -> None:
        while not self._closed:
            self._want_spare.wait()
            if self._closed:
                return
            self._refilling = True
            self._want_spare.clear()
            self._refill()

    def _refill(self) -> None:
        with self._spare_lock:
            if self._spare is not None or self._closed:
                self._refilling = False
                return
        try:
            worker = self._spawn()
            try:
                hello = recv_frame(worker.sock, self.limits.max_message_bytes)
            except (OSError, ProtocolError):
                hello = None
            if hello is None or hello.get("op") != "hello":
                self._retire(worker)
                return
            worker.hello = True
        except SandboxError:
            return
        finally:
            with self._spare_lock:
                self._refilling = False
        with self._spare_lock:
            if self._spare is None and not self._closed:
                self._spare, worker = worker, None
        if worker is not None:
            self._retire(worker)

    # -- internals --------------------------------------------------------------
    def _choose_mode(self, mode: str) -> str:
        if mode == "none":
            return mode
        uid = self._take_uid()
        try:
            return self._probe_modes(mode, uid)
        finally:
            self._give_uid(uid)

    def _probe_modes(self, mode: str, uid: int) -> str:
        tried = []
        for m in (("bwrap", "unshare") if mode == "auto" else (mode,)):
            why = probe(m, self.python, uid)
            if why is None:
                if mode == "auto" and m != "bwrap":
                    warnings.warn(f"bubblewrap does not work here ({tried[0]}); using the "
                                  "'unshare' sandbox, whose file-system isolation is weaker.",
                                  SandboxWarning, stacklevel=4)
                return m
            tried.append(f"{m}: {why}")
        raise SandboxUnavailable(
            "No sandbox works on this machine (" + "; ".join(tried) + "). Install bubblewrap "
            "(apt-get install bubblewrap) and run as root or with user namespaces enabled, or "
            "set sandbox mode 'none' explicitly to run candidate code without isolation.")

    def _take_uid(self) -> int:
        """A uid no other worker uses, in this process or any other (an flock per uid)."""
        lock_dir = Path(tempfile.gettempdir()) / "metasearch-sandbox-uids"
        lock_dir.mkdir(mode=0o700, exist_ok=True)
        with self._uid_cond:
            while True:
                for uid in reversed(self._free_uids):
                    fd = os.open(lock_dir / str(uid), os.O_RDWR | os.O_CREAT, 0o600)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError:
                        os.close(fd)
                        continue
                    self._free_uids.remove(uid)
                    self._uid_locks[uid] = fd
                    return uid
                self._uid_cond.wait(timeout=0.1)

    def _give_uid(self, uid: int) -> None:
        with self._uid_cond:
            fd = self._uid_locks.pop(uid, None)
            if fd is not None:
                os.close(fd)  # releases the flock
            self._free_uids.append(uid)
            self._uid_cond.notify()


def _reap_uid(uid: int, timeout_s: float = 5.0) -> None:
    """Make sure no process of the worker's uid outlives the run.

    Killing the jail tears its pid namespace down, but the kernel does that
    asynchronously; a uid is only handed to the next worker once it owns no
    process (RLIMIT_NPROC counts per uid). The uid is this run's alone, so
    everything it owns was started by this run.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        pids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    if os.stat(f"/proc/{d}").st_uid == uid:
                        pids.append(int(d))
                except OSError:
                    pass
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.02)


def _gateway_calls(gateway: Any) -> tuple[Callable[[LLMRequest], LLMResponse] | None,
                                          Callable[..., None] | None]:
    if gateway is None:
        return None, None
    complete = getattr(gateway, "complete", None)
    if complete is None and callable(gateway):
        return gateway, None
    if complete is None:
        raise TypeError("gateway must have a complete(LLMRequest) method or be callable")
    return complete, getattr(gateway, "note", None)


@dataclass
class _Worker:
    """A started jail: the process, the host's end of the socket, its uid and scratch dir."""

    proc: subprocess.Popen[bytes]
    sock: socket.socket
    uid: int
    scratch: Path
    drains: list[threading.Thread] = field(default_factory=list)
    hello: bool = False  # the worker already said hello (a prewarmed spare)
    logs: dict[str, bytearray] = field(
        default_factory=lambda: {"stdout": bytearray(), "stderr": bytearray()})

    def drain(self, name: str, stream: Any, cap: int) -> None:
        buf = self.logs[name]
        try:
            while chunk := stream.read1(1 << 16):
                if len(buf) < cap:
                    buf += chunk[:cap - len(buf)]
        except (OSError, ValueError):
            pass

    def log(self, name: str) -> str:
        return self.logs[name].decode("utf-8", "replace")

    def kill(self) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


class _Violation(Exception):
    """The worker broke the protocol."""


class _Session:
    """One worker, one candidate. Runs entirely on the caller's thread, except LLM calls."""

    def __init__(self, runner: SandboxRunner, worker: _Worker, code: str, tasks: list[Task],
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
        self.eof = False
        self.loaded_s = 0.0

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
            outcomes=[self.results[i] for i in range(len(self.tasks))], mode=self.r.mode,
            start_s=self.loaded_s, wall_s=time.monotonic() - t0, llm_calls=self.llm_calls,
            outputs=self.outputs, stdout=self._log("stdout"), stderr=self._log("stderr"),
            failure=failure)

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
        self.llm_calls += 1
        fut = self.r._pool.submit(self._call, rid, request)
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
        allowed = self.r._allowed_models or {self.settings.model}
        if model not in allowed:
            return (f"model {model[:100]!r} is not available to agents in this run; "
                    f"use the run's task model ({self.settings.model})")
        cap = self.settings.max_tokens
        return LLMRequest(
            model=model, messages=tuple({"role": m["role"], "content": m["content"]} for m in msgs),
            temperature=float(temp), max_tokens=cap if mt is None else max(1, min(mt, cap)),
            response_format=rf, sample_index=idx, role="task", candidate=self.settings.candidate)

    def _call(self, rid: int, request: LLMRequest | str) -> None:
        reply: dict[str, Any]
        if isinstance(request, str):
            reply = {"ok": False, "error": {"type": "LLMError", "message": request}}
        elif self.r._complete is None:
            reply = {"ok": False, "error": {"type": "LLMError",
                                            "message": "no LLM gateway is configured"}}
        else:
            try:
                reply = {"ok": True, "response": self.r._complete(request).to_json()}
            except BudgetExceeded as e:
                self.budget_replied = True
                reply = {"ok": False, "error": {"type": "BudgetExceeded", "message": str(e),
                                                "cap": e.cap}}
            except LLMError as e:
                reply = {"ok": False, "error": {"type": type(e).__name__, "message": str(e)}}
            except Exception as e:  # a gateway bug must not take the host down
                reply = {"ok": False, "error": {"type": "LLMError",
                                                "message": f"gateway failed: {type(e).__name__}"}}
        try:
            self._send({"op": "llm_result", "rid": rid, **reply})
        except OSError:
            pass  # the worker is gone; its tasks are failed by the event loop

    # -- outcomes -----------------------------------------------------------------
    def _record(self, i: int, outcome: TaskOutcome) -> None:
        self.results[i] = outcome
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
