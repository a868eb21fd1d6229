"""The runner: a pool of jailed workers (and prewarmed spares), their uids, the mode.

Each run gets a fresh worker, served by a ``session._Session``; see
``session`` for the two kinds of failure and what the host checks.
"""

from __future__ import annotations

import fcntl
import json
import os
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from metasearch.execution.sandbox import state
from metasearch.execution.sandbox.cgroups import PREFIX, worker_cgroups
from metasearch.execution.sandbox.launch import MODES, JailSpec, probe
from metasearch.execution.sandbox.protocol import ProtocolError, recv_frame
from metasearch.execution.sandbox.seccomp import filter_fd, seccomp_available
from metasearch.execution.sandbox.session import _Session
from metasearch.execution.sandbox.state import scratch_base
from metasearch.execution.sandbox.types import (
    SandboxError,
    SandboxLimits,
    SandboxResult,
    SandboxUnavailable,
    SandboxWarning,
    _Worker,
)
from metasearch.llm.types import LLMRequest, LLMResponse
from metasearch.outcomes import TaskOutcome
from metasearch.runtime.settings import AgentSettings
from metasearch.suites.task import Task


class SandboxRunner:
    """Runs one candidate's tasks in a fresh jailed worker per call to :meth:`run`.

    ``gateway`` is the host-side door to the models: an object with
    ``complete(LLMRequest) -> LLMResponse`` (and optionally ``note(event,
    candidate=, n=)``), such as the gateway or a ``Transport``, or a bare
    ``complete`` function; None refuses LLM calls. ``mode`` is ``"auto"``
    (bwrap, else unshare; never silently ``none``), ``"bwrap"``,
    ``"unshare"`` or ``"none"``. A worker's LLM request for a model outside
    its run's ``AgentSettings.allowed`` (and, when given, outside
    ``allowed_models``) is refused, never routed. Thread-safe: concurrent runs get distinct
    uids from ``uids`` (as root) or their own user namespaces (everyone else: ``rootless``,
    see ``launch``), and distinct scratch directories under the user's own
    ``state.scratch_base()`` unless ``scratch_root`` is given.

    ``prewarm`` is how many spare workers to keep started and waiting for
    their code (``True`` is 1, ``False`` or 0 none): a run takes a ready
    spare, or one on its way that no other run is waiting for, else starts
    its own worker; after each run the spares are topped up again. A spare
    costs a uid and an idle interpreter; :meth:`close` ends them all.
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
        prewarm: bool | int = False,
    ) -> None:
        if mode not in (*MODES, "auto"):
            raise SandboxUnavailable(f"Unknown sandbox mode {mode!r}; use one of "
                                     "auto, bwrap, unshare, none.")
        self.limits = limits or SandboxLimits()
        self.python = python or sys.executable
        self._complete, self._note = _gateway_calls(gateway)
        self._allowed_models = None if allowed_models is None else frozenset(allowed_models)
        self._own_root = scratch_root is None
        # root switches each worker to its own uid; anyone else gets user namespaces
        self.rootless = os.geteuid() != 0
        self.scratch_root = Path(scratch_root or tempfile.mkdtemp(prefix="sandbox-",
                                                                  dir=scratch_base()))
        self.scratch_root.mkdir(parents=True, exist_ok=True)
        self._free_uids = list(uids)[::-1]
        self._uid_cond = threading.Condition()
        self._uid_locks: dict[int, list[int]] = {}  # uid -> its flocked fds
        self._pool = ThreadPoolExecutor(max_workers=call_threads, thread_name_prefix="sbx-llm")
        if int(prewarm) < 0:
            raise ValueError(f"prewarm must be a count of spare workers, not {prewarm!r}")
        self.prewarm = int(prewarm)
        self._spares: list[_Worker] = []  # ready: said hello, waiting for their code
        self._coming = 0  # spares asked for and not yet ready (queued or starting)
        self._queued = 0  # of those, not yet picked up by the spawner
        self._claims = 0  # runs waiting for a spare on its way
        self._spare_cond = threading.Condition()
        self._counts = {"runs": 0, "prewarmed": 0, "cold": 0, "spares_started": 0}
        self._closed = False
        self._spawner: threading.Thread | None = None
        self.mode = self._choose_mode(mode)
        if self.mode == "none":
            msg = ("SANDBOX DISABLED (mode='none'): candidate code runs with only rlimits, as "
                   f"uid {os.getuid()}, with FULL NETWORK ACCESS and the host's file system. "
                   "Never use it for code written by a model.")
            warnings.warn(msg, SandboxWarning, stacklevel=2)
            print(f"WARNING: {msg}", file=sys.stderr)
        # the syscall filter (see ``seccomp``): bwrap loads it, the unshare worker installs it
        self.seccomp, why = (False, "") if self.mode == "none" else seccomp_available()
        if self.mode != "none" and not self.seccomp:
            warnings.warn(f"seccomp is not available here ({why}); the sandbox runs without "
                          "its syscall filter.", SandboxWarning, stacklevel=2)
        # a cgroup per worker holds its whole tree (see ``cgroups``); without, rlimits alone
        self.cgroups, why = worker_cgroups(self.limits.memory_mb, self.limits.max_pids)
        if why:
            warnings.warn(f"cgroups are not available here ({why}); each candidate's memory "
                          "and processes are held by rlimits only (per process, per uid).",
                          SandboxWarning, stacklevel=2)

    # -- public API -----------------------------------------------------------
    def run(self, code: str, tasks: Sequence[Task], settings: AgentSettings, *,
            on_outcome: Callable[[TaskOutcome], None] | None = None) -> list[TaskOutcome]:
        """Run ``code`` on ``tasks``; one outcome per task, in task order."""
        return self.run_detailed(code, tasks, settings, on_outcome=on_outcome).outcomes

    def run_detailed(self, code: str, tasks: Sequence[Task], settings: AgentSettings, *,
                     on_outcome: Callable[[TaskOutcome], None] | None = None) -> SandboxResult:
        """Like :meth:`run`, with timings, captured output and the failure reason."""
        t0 = time.monotonic()
        spare = self._take_spare()
        worker = spare or self._spawn()
        with self._spare_cond:
            self._counts["runs"] += 1
            self._counts["prewarmed" if spare is not None else "cold"] += 1
        try:
            return _Session(self, worker, code, list(tasks), settings, on_outcome, t0).run()
        finally:
            self._retire(worker)
            if self.prewarm:  # after the run, so the spares do not compete with it for CPU
                self._request_spares()

    def warm_up(self) -> None:
        """Start the spare workers now; returns when they are ready (or could not start).

        Does nothing without ``prewarm``.
        """
        deadline = time.monotonic() + self.limits.start_timeout_s
        self._request_spares()
        with self._spare_cond:
            while self._coming and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._spare_cond.wait(left)

    @property
    def stats(self) -> dict[str, int]:
        """Counters so far: ``runs``; of those, ``prewarmed`` (started on a spare) and
        ``cold`` (started their own worker); ``spares_started`` (spares that came up);
        and now: ``spares_ready``, ``spares_coming``, ``uids_held``."""
        with self._spare_cond:
            counts = {**self._counts, "spares_ready": len(self._spares),
                      "spares_coming": self._coming}
        with self._uid_cond:
            counts["uids_held"] = len(self._uid_locks)
        return counts

    def close(self) -> None:
        with self._spare_cond:
            spares, self._spares, self._closed = self._spares, [], True
            spawner = self._spawner
            self._spare_cond.notify_all()
        if spawner is not None:
            spawner.join(timeout=self.limits.start_timeout_s)
        with self._spare_cond:
            spares, self._spares = spares + self._spares, []
        for spare in spares:
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
        seccomp_fd: int | None = None
        cgroup = None
        try:
            scratch.mkdir(mode=0o700)
            if self.mode != "none" and not self.rootless:
                os.chown(scratch, uid, uid)
            if self.seccomp and self.mode == "bwrap":
                seccomp_fd = filter_fd()
            limits = {**self.limits.rlimits(), "seccomp": self.seccomp and self.mode == "unshare"}
            spec = JailSpec(mode=self.mode, python=self.python, scratch=scratch,
                            scratch_root=self.scratch_root, uid=uid, fd=child_sock.fileno(),
                            limits_json=json.dumps(limits), seccomp_fd=seccomp_fd,
                            rootless=self.rootless)
            fds = (child_sock.fileno(),) + (() if seccomp_fd is None else (seccomp_fd,))
            if self.cgroups is not None:  # joined by the jail's first process, before it forks
                cgroup = self.cgroups.create(f"{PREFIX}{os.getpid()}-{scratch.name}",
                                             memory_mb=self.limits.memory_mb,
                                             max_pids=self.limits.max_pids)
            argv = spec.argv() if cgroup is None else cgroup.wrap(spec.argv())
            proc = subprocess.Popen(
                argv, env=spec.env(), cwd=spec.cwd(), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=fds,
                start_new_session=True)
        except OSError as e:
            host_sock.close()
            shutil.rmtree(scratch, ignore_errors=True)
            if cgroup is not None:
                cgroup.remove()
            self._give_uid(uid)
            raise SandboxError(f"Cannot start the sandbox worker ({self.mode}): {e}.") from e
        finally:
            child_sock.close()
            if seccomp_fd is not None:
                os.close(seccomp_fd)
        host_sock.settimeout(10.0)
        worker = _Worker(proc=proc, sock=host_sock, uid=uid, scratch=scratch,
                         rootless=self.rootless and self.mode != "none", cgroup=cgroup)
        if worker.rootless:  # known now, while its pid 1 is surely the launcher's child
            worker.wait_for_ns(self.limits.start_timeout_s)
        for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            t = threading.Thread(target=worker.drain, args=(name, stream, self.limits.max_log_bytes),
                                 daemon=True)
            t.start()
            worker.drains.append(t)
        return worker

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        if worker.rootless:
            _reap_ns(worker.jail_ns)
        elif self.mode != "none":
            _reap_uid(worker.uid)
        if worker.cgroup is not None:  # kills what is left in it, then removes it
            worker.cgroup.remove()
        worker.sock.close()
        for d in worker.drains:
            d.join(timeout=2)
        shutil.rmtree(worker.scratch, ignore_errors=True)
        self._give_uid(worker.uid)

    def _take_spare(self) -> _Worker | None:
        """A ready spare, or one on its way that no other run waits for; else None.

        A spare on its way is sooner than a fresh start.
        """
        deadline = time.monotonic() + self.limits.start_timeout_s
        with self._spare_cond:
            if len(self._spares) + self._coming <= self._claims:
                return None
            self._claims += 1
            try:
                while not self._spares and self._coming and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._spare_cond.wait(left)
                spare = self._spares.pop(0) if self._spares else None
            finally:
                self._claims -= 1
        if spare is not None and spare.proc.poll() is not None:
            self._retire(spare)
            return None
        return spare

    def _request_spares(self) -> None:
        """Ask the spawner for as many spares as bring ready plus coming up to ``prewarm``."""
        # Spares are started by one long-lived thread: bwrap's --die-with-parent follows the
        # *thread* that started it, so a spare started by a short-lived thread would die.
        with self._spare_cond:
            if self._closed:
                return
            if self._spawner is None:
                self._spawner = threading.Thread(target=self._spawn_loop, name="sbx-spawner",
                                                 daemon=True)
                self._spawner.start()
            n = self.prewarm - len(self._spares) - self._coming
            if n > 0:
                self._coming += n
                self._queued += n
                self._spare_cond.notify_all()

    def _spawn_loop(self) -> None:
        while True:
            with self._spare_cond:
                while not self._queued and not self._closed:
                    self._spare_cond.wait()
                if self._closed:
                    self._coming -= self._queued
                    self._queued = 0
                    return
                n, self._queued = self._queued, 0
            self._refill(n)

    def _refill(self, n: int) -> None:
        """Start ``n`` spares at once, then hand each out as soon as it says hello."""
        started = []
        for _ in range(n):
            try:
                started.append(None if self._closed else self._spawn())
            except SandboxError:
                started.append(None)
        for worker in started:
            if worker is not None:
                try:
                    hello = recv_frame(worker.sock, self.limits.max_message_bytes)
                except (OSError, ProtocolError):
                    hello = None
                if hello is None or hello.get("op") != "hello":
                    self._retire(worker)
                    worker = None
                else:
                    worker.hello = True
            with self._spare_cond:
                self._coming -= 1
                if worker is not None and not self._closed:
                    self._spares.append(worker)
                    self._counts["spares_started"] += 1
                    worker = None
                self._spare_cond.notify_all()
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
            "(apt-get install bubblewrap); as an ordinary user, unprivileged user namespaces "
            "must be enabled (`metasearch doctor` checks them and gives the command); or set "
            "sandbox mode 'none' explicitly to run candidate code without isolation.")

    def _take_uid(self) -> int:
        """A uid no other worker uses, in this process or any other (an flock per uid).

        Rootless, the worker keeps the user's uid (its user namespace keeps it apart).
        """
        if self.rootless:
            return os.getuid()
        lock_dirs = state.lock_dirs()
        with self._uid_cond:
            while True:
                for uid in reversed(self._free_uids):
                    fds = _flock_all([d / str(uid) for d in lock_dirs])
                    if fds is None:
                        continue
                    self._free_uids.remove(uid)
                    self._uid_locks[uid] = fds
                    return uid
                self._uid_cond.wait(timeout=0.1)

    def _give_uid(self, uid: int) -> None:
        if self.rootless:
            return
        with self._uid_cond:
            for fd in self._uid_locks.pop(uid, ()):
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


def _flock_all(paths: list[Path]) -> list[int] | None:
    """Exclusive flocks on every path (the fds hold them), or None if any is taken."""
    fds: list[int] = []
    for path in paths:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            for held in fds:
                os.close(held)
            return None
        fds.append(fd)
    return fds


def _reap_ns(ns: str | None, timeout_s: float = 5.0) -> None:
    """Rootless: make sure no process of the worker's pid namespace outlives the run.

    The jail's pid 1 is gone once its launcher is killed, and the kernel then
    kills the rest of the namespace, asynchronously; this waits for that (and
    kills what is left). Only this user's processes can be in it. A zombie is
    gone already: the jail's pid 1 can be left one, reparented to an init that
    does not reap (a container's), and holds nothing.
    """
    if ns is None or ns == os.readlink("/proc/self/ns/pid"):
        return
    me = os.geteuid()
    deadline = time.monotonic() + timeout_s
    while True:
        pids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    if (os.stat(f"/proc/{d}").st_uid == me
                            and os.readlink(f"/proc/{d}/ns/pid") == ns and not _zombie(d)):
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


def _zombie(pid: str) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True  # gone


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

