"""What the sandbox's modules share: its errors, a worker's limits, a run's result, a started jail."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metasearch.errors import MetasearchError
from metasearch.execution.sandbox.cgroups import WorkerCgroup
from metasearch.outcomes import TaskOutcome


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
    bounds the whole run and kills the worker's namespace. ``memory_mb`` is
    each process's address space (rlimit) and, where cgroups work (see
    ``cgroups``), the whole tree's memory; ``max_pids`` caps the tree's
    processes and threads together (a cgroup; ``nproc`` is the per-uid rlimit).
    """

    cpu_s: int | None = 300
    memory_mb: int | None = 2048
    file_size_mb: int | None = 64
    nproc: int | None = 256
    nofile: int | None = 256
    max_pids: int | None = 256
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
    worker (jail set-up, interpreter start, runtime import, agent exec);
    ``prewarmed`` says the run took a spare worker that had already started.
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
    prewarmed: bool = False



@dataclass
class _Worker:
    """A started jail: the process, the host's end of the socket, its uid and scratch dir."""

    proc: subprocess.Popen[bytes]
    sock: socket.socket
    uid: int
    scratch: Path
    drains: list[threading.Thread] = field(default_factory=list)
    hello: bool = False  # the worker already said hello (a prewarmed spare)
    rootless: bool = False  # no uid of its own: reaped by its pid namespace (``jail_ns``)
    jail_ns: str | None = None  # the jail's pid namespace, e.g. "pid:[4026532328]"
    cgroup: WorkerCgroup | None = None  # the tree's memory and pids limits (``cgroups``)
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

    def find_ns(self) -> str | None:
        """The jail's pid namespace: that of the launcher's child (bwrap's or unshare's pid 1).

        Never the host's own (a child not yet in its new namespace): reaping that
        would kill the host.
        """
        if self.jail_ns is None:
            pid = self.proc.pid
            try:
                kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                ns = os.readlink(f"/proc/{kids[0]}/ns/pid") if kids else None
            except (OSError, IndexError):
                ns = None
            if ns is not None and ns != os.readlink("/proc/self/ns/pid"):
                self.jail_ns = ns
        return self.jail_ns

    def wait_for_ns(self, timeout_s: float) -> str | None:
        """:meth:`find_ns` as soon as the jail's pid 1 exists (before any agent code runs)."""
        deadline = time.monotonic() + timeout_s
        while self.find_ns() is None and self.proc.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.002)
        return self.jail_ns

    def kill(self) -> None:
        if self.rootless:
            self.find_ns()  # before the kill, while the jail's pid 1 can still be found
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

