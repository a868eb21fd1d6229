"""Run one model-written Python program in a child process with hard limits.

This is the process side of the agent tool ``run_python`` (see
:mod:`metasearch.runtime.python_tool`). The program is untrusted text a model
wrote at run time; no validation ever saw it. So it runs in a fresh
interpreter started from *this* process (inside the sandbox that is the
worker, so the child is inside the same jail, as the same unprivileged uid),
with:

- its own wall-clock limit (the child's process group is killed at it), and a
  CPU-time limit as a backstop (``RLIMIT_CPU``);
- a memory cap (``RLIMIT_AS``), a file-size cap, few open files, no core
  dumps, and ``RLIMIT_NPROC`` 0: it can start no process and no thread (the
  kernel does not enforce that limit for root, see the README);
- no stdin, only fds 0/1/2 (``close_fds``), a minimal explicit environment, a
  private empty working directory, no ``site`` (standard library only), and
  ``PR_SET_PDEATHSIG`` so it dies with the thread that started it;
- stdout and stderr capped (stdout at ``output_chars``, stderr at 64 KiB, of
  which only the tail goes into an error text): past a cap the program is
  stopped and its output truncated with a marker, so a flood costs neither
  memory nor time.

The limits are set by a small launcher (``-c`` program) before the model's
code is compiled, never in a ``preexec_fn`` (unsafe in a threaded parent).
Each limit is clamped to this process's own hard limit, so the child always
sits inside the worker's. Runs are deterministic where Python allows it
(hash seed 0, ``random`` seeded with 0), so a rerun sends the same prompts
and hits the response cache. Standard library only, and no imports from
metasearch: the sandbox worker imports this module, and ``metasearch export``
copies it into standalone agent modules that use ``run_python``.
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import NamedTuple

_MEMORY_EXIT = 86  # the launcher's exit status for MemoryError (its ``sys.exit(86)``)
_STDERR_KEEP = 1500  # characters of a failure's stderr kept in the error text
_STDERR_CAP = 65536  # more stderr than this is a flood: the program is stopped
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)

_LAUNCHER = r"""
import json, linecache, os, random, resource, sys, traceback
limits, code = json.loads(sys.argv[1]), sys.argv[2]
try:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, 9, 0, 0, 0)   # PR_SET_PDEATHSIG: SIGKILL when the starting thread ends
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    del ctypes, libc
except Exception:
    pass
if os.getppid() != int(sys.argv[3]):
    os._exit(70)  # the parent is already gone
for name, (soft, hard) in limits.items():
    resource.setrlimit(getattr(resource, name), (soft, hard))
random.seed(0)
sys.argv = ["program.py"]
name = "<program>"
linecache.cache[name] = (len(code), None, code.splitlines(True), name)
scope = {"__name__": "__main__", "__builtins__": __builtins__}
try:
    exec(compile(code, name, "exec"), scope)
except SystemExit:
    raise
except MemoryError:
    scope.clear()
    sys.stdout.flush()
    sys.stderr.write("MemoryError\n")
    sys.exit(86)
except BaseException as e:
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == name]
    sys.stdout.flush()
    sys.stderr.write("".join(traceback.format_list(frames[-5:]))
                     + "".join(traceback.format_exception_only(type(e), e)))
    sys.exit(1)
"""


class PythonLimits(NamedTuple):
    """The limits of one ``run_python`` child.

    ``output_chars`` caps stdout (the returned text); ``cpu_s`` defaults to the
    wall-clock limit rounded up (a backstop: the wall clock stops the program
    first). Every limit is further clamped to the parent's own hard limit.
    (A NamedTuple, not a dataclass: an exported module loaded from a file path
    is not in ``sys.modules``, which dataclasses need.)
    """

    timeout_s: float = 10.0
    memory_mb: int = 256
    output_chars: int = 4000
    cpu_s: int | None = None
    file_size_mb: int = 1
    nofile: int = 64
    max_code_chars: int = 50_000

    def rlimits(self) -> dict[str, tuple[int, int]]:
        """``RLIMIT_*`` name -> (soft, hard), each inside this process's hard limit."""
        cpu = self.cpu_s if self.cpu_s is not None else max(1, math.ceil(self.timeout_s))
        wanted = {
            "RLIMIT_CPU": (cpu, cpu + 1),  # SIGXCPU at the soft limit, SIGKILL a second later
            "RLIMIT_AS": (self.memory_mb << 20,) * 2,
            "RLIMIT_FSIZE": (self.file_size_mb << 20,) * 2,
            "RLIMIT_NOFILE": (self.nofile,) * 2,
            "RLIMIT_NPROC": (0, 0),
            "RLIMIT_CORE": (0, 0),
        }
        out = {}
        for name, (soft, hard) in wanted.items():
            ceiling = resource.getrlimit(getattr(resource, name))[1]
            if ceiling != resource.RLIM_INFINITY:
                soft, hard = min(soft, ceiling), min(hard, ceiling)
            out[name] = (soft, hard)
        return out


class PythonResult(str):
    """What ``run_python`` returns: a plain string to the agent, with details attached.

    The text is the program's stdout when it succeeded (``ok``); otherwise it
    starts with ``Error:`` and says what happened, followed by any output the
    program printed first. ``kind`` is ``ok``, ``error`` (it raised or
    exited non-zero), ``timeout``, ``memory``, ``output`` (printed too much),
    ``crash`` (killed by a signal) or ``refused`` (not started).
    """

    ok: bool
    kind: str
    stdout: str
    exit_code: int | None

    def __new__(cls, text: str, *, kind: str, stdout: str = "",
                exit_code: int | None = None) -> PythonResult:
        self = super().__new__(cls, text)
        self.ok, self.kind, self.stdout, self.exit_code = kind == "ok", kind, stdout, exit_code
        return self


def refused(message: str) -> PythonResult:
    return PythonResult(f"Error: {message}", kind="refused")


def program_source(text: str) -> str:
    """The program in ``text``: its first fenced block if it has one, dedented."""
    fenced = _FENCE.search(text)
    if fenced is not None:
        text = fenced.group(1)
    return textwrap.dedent(text).strip("\n")


def run_program(code: str, limits: PythonLimits, *, python: str | None = None) -> PythonResult:
    """Run ``code`` as a fresh ``python`` process under ``limits``; never raises for its faults."""
    if not code.strip():
        return refused("the program is empty. Write Python code that prints the answer, "
                       "e.g. print(6 * 7).")
    if len(code) > limits.max_code_chars:
        return refused(f"the program is {len(code)} characters long; the limit is "
                       f"{limits.max_code_chars}. Write a shorter program.")
    rl = limits.rlimits()
    workdir = tempfile.mkdtemp(prefix="run-python-")
    env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
           "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONIOENCODING": "utf-8"}
    # -s -S: no site-packages; -P: no script directory on sys.path; -B: no .pyc files.
    # Not -I/-E: the environment is ours alone, and it carries PYTHONHASHSEED.
    argv = [python or sys.executable, "-s", "-S", "-P", "-B", "-X", "utf8", "-c", _LAUNCHER,
            json.dumps(rl), code, str(os.getpid())]
    try:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, close_fds=True, env=env, cwd=workdir,
                                    start_new_session=True)
        except (OSError, ValueError) as e:
            return refused(f"the program could not be started ({type(e).__name__}: {e}).")
        try:
            out, err, why = _collect(proc, limits)
        finally:
            _kill_group(proc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return _classify(proc.returncode, out, err, why, limits, rl)


def _collect(proc: subprocess.Popen[bytes], limits: PythonLimits) -> tuple[str, str, str]:
    """Read stdout and stderr until both close, the deadline, or a cap; and why it stopped."""
    assert proc.stdout is not None and proc.stderr is not None
    cap = limits.output_chars
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    bufs = {out_fd: bytearray(), err_fd: bytearray()}
    poller = select.poll()  # not select(): a busy host process has fds above 1024
    for fd in bufs:
        poller.register(fd, select.POLLIN)
    reading = set(bufs)
    deadline = time.monotonic() + limits.timeout_s
    why = ""
    while reading and not why:
        left = deadline - time.monotonic()
        if left <= 0:
            why = "timeout"
            break
        for fd, _ in poller.poll(left * 1000):
            chunk = os.read(fd, 1 << 16)
            if not chunk:  # EOF (POLLHUP with nothing left to read)
                reading.discard(fd)
                poller.unregister(fd)
                continue
            bufs[fd] += chunk
            limit = cap if fd == out_fd else _STDERR_CAP
            if len(bufs[fd]) > limit and len(bufs[fd].decode("utf-8", "replace")) > limit:
                why = "output"
    if not why:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            why = "timeout"  # it closed its pipes but went on running
    return bufs[out_fd].decode("utf-8", "replace"), bufs[err_fd].decode("utf-8", "replace"), why


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's process group (it has its own session), then reap the child."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _classify(rc: int | None, out: str, err: str, why: str, limits: PythonLimits,
              rl: dict[str, tuple[int, int]]) -> PythonResult:
    cap = limits.output_chars
    shown = out if len(out) <= cap else out[:cap] + f"\n[... output truncated at {cap} characters ...]"
    if rc == 0 and not why:
        return PythonResult(shown, kind="ok", stdout=shown, exit_code=0)
    tail = err.strip()[-_STDERR_KEEP:]
    if why == "timeout":
        kind, msg = "timeout", (f"the program did not finish within its time limit of "
                                f"{limits.timeout_s:g} s and was stopped. Make it faster: no "
                                "endless loops, no brute force over huge ranges.")
    elif why == "output":
        kind, msg = "output", ("the program printed too much and was stopped (output "
                               f"truncated at {cap} characters). Print only the final answer.")
    elif rc == -signal.SIGXCPU:
        kind, msg = "timeout", (f"the program used up its CPU time limit of "
                                f"{rl['RLIMIT_CPU'][0]} s and was stopped. Make it faster.")
    elif rc == _MEMORY_EXIT and tail.endswith("MemoryError"):
        kind, msg = "memory", (f"the program ran out of memory (its limit is "
                               f"{rl['RLIMIT_AS'][0] >> 20} MB). Use less memory: no huge lists, "
                               "strings or numbers.")
    elif rc is not None and rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
        kind, msg = "crash", f"the program was killed by signal {name}."
    elif rc == 1 and tail:
        kind, msg = "error", f"the program raised an exception:\n{tail}"
        if "BlockingIOError" in tail or "can't start new thread" in tail:
            msg += "\n(Programs cannot start processes or threads.)"
    else:
        kind, msg = "error", f"the program exited with status {rc}." + (f"\n{tail}" if tail else "")
    text = f"Error: {msg}" + (f"\nIts output before it stopped:\n{shown}" if out else "")
    return PythonResult(text, kind=kind, stdout=shown, exit_code=rc)
