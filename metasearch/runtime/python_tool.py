"""``run_python(code) -> str``: the code-execution tool in every agent's namespace.

Program-of-thought agents ask the model for a program that prints the answer
and run it with this tool. Small coder models slip at arithmetic but write
correct small programs (issue 12's probe: 70% against 47% for step-by-step
reasoning), so this is where an agent can get what the model cannot do in
its head.

The tool is forgiving where that is harmless: it takes an ``Info`` as well as
a string (``run_python(code)`` after ``thinking, code = coder(...)``), and it
runs the first fenced block when the model wrapped the program in
Markdown fences. The process side, with every limit, is
:mod:`metasearch.runtime.pyrun`.

Each run is counted in the ledger as a runtime event (``python_ok``,
``python_error``, ``python_timeout``, ...) through the transport's ``note``,
as the reply-protocol events are: there is no per-task trace store yet, and
the counts are what a report can show.

Inside the sandbox the tool is built with ``harden_parent``: before its first
child starts, the worker makes itself non-dumpable, so a child of the same
uid can neither ptrace it nor open ``/proc/<worker>/mem`` or take its RPC
socket with ``pidfd_getfd``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from metasearch.runtime.info import Info
from metasearch.runtime.pyrun import (
    PythonLimits,
    PythonResult,
    program_source,
    refused,
    run_program,
)
from metasearch.runtime.settings import AgentSettings

KINDS = ("ok", "error", "timeout", "memory", "output", "crash", "refused")
PYTHON_EVENTS = frozenset(f"python_{k}" for k in KINDS)
_PR_SET_DUMPABLE = 4


def limits_from_settings(settings: AgentSettings) -> PythonLimits:
    return PythonLimits(timeout_s=settings.python_timeout_s, memory_mb=settings.python_memory_mb,
                        output_chars=settings.python_output_chars)


def program_text(code: Any) -> str:
    """The program to run: ``code`` itself, an Info's content, or its first fenced block."""
    if isinstance(code, Info):
        code = code.content
    if not isinstance(code, str):
        raise TypeError(
            f"run_python takes the program's source as a string, got {type(code).__name__}: "
            "run_python(code.content) or run_python('print(6 * 7)').")
    return program_source(code)


def make_undumpable() -> None:
    """``prctl(PR_SET_DUMPABLE, 0)`` for this process; raises OSError if it fails."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


class PythonTool:
    """The tool as bound to one load: limits, where events go, and parent hardening.

    ``note(event)`` records each run (the runtime context's ``note``).
    ``harden_parent`` makes this process non-dumpable before the first child
    starts (the sandbox worker sets it; in-process runs leave the host alone).
    """

    def __init__(self, limits: PythonLimits, *, note: Callable[[str], None] | None = None,
                 harden_parent: bool = False) -> None:
        self.limits = limits
        self._note = note
        self._harden = harden_parent
        self._hardened = False
        self._lock = threading.Lock()

    def __call__(self, code: Any) -> PythonResult:
        result = self._run(program_text(code))
        if self._note is not None:
            self._note(f"python_{result.kind}")
        return result

    def _run(self, code: str) -> PythonResult:
        if self._harden and code.strip() and not self._ready():
            return refused("the sandbox could not protect itself from the program, so it "
                           "was not run.")
        return run_program(code, self.limits)

    def _ready(self) -> bool:
        with self._lock:
            if not self._hardened:
                try:
                    make_undumpable()
                except (OSError, AttributeError):
                    return False
                self._hardened = True
        return True

    def function(self) -> Callable[[Any], str]:
        """The ``run_python`` that agent code calls."""
        tool = self

        def run_python(code: Any) -> str:
            """Run a Python program (standard library only) and return what it printed.

            On failure the text starts with ``Error:`` and says what went wrong.
            """
            return tool(code)

        return run_python
