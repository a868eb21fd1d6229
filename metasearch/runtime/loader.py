"""Load agent code (the source of ``def forward(self, taskInfo)``) into a callable.

This is the code that runs *inside* the sandbox worker (or in-process for the
trusted seeds). It does no sandboxing of its own. It execs the code in a fresh
namespace that holds ``LLMAgentBase`` (bound to this load's settings and
transport), ``Info``, ``run_python`` (the code-execution tool, under this
load's limits) and the normal builtins, then binds ``forward`` as the method of
an otherwise empty ``AgentSystem`` object, as ADAS does.
"""

from __future__ import annotations

import builtins
import inspect
import time
import types
from typing import Any

from metasearch.errors import AgentCodeError
from metasearch.outcomes import TaskOutcome
from metasearch.runtime.agent_base import LLMAgentBase, bind_agent_class
from metasearch.runtime.context import RuntimeContext
from metasearch.runtime.failures import AGENT_FILENAME, task_error_from_exception
from metasearch.runtime.info import Info
from metasearch.runtime.python_tool import PythonTool, limits_from_settings
from metasearch.runtime.settings import AgentSettings
from metasearch.runtime.transport import Transport
from metasearch.runtime.tunable import tunable

#: The names the runtime puts in every agent's namespace.
NAMESPACE_NAMES = ("LLMAgentBase", "Info", "run_python", "tunable")
_SIGNATURE_HELP = (
    "Define it as `def forward(self, taskInfo):`, where taskInfo is an Info holding the "
    "task, and return the final answer (an Info or a string)."
)


class AgentSystem:
    """The otherwise empty object whose ``forward`` method is the agent (as in ADAS)."""


def to_answer(result: Any) -> str:
    """Convert what ``forward`` returned into the answer text, forgivingly.

    ``Info`` → its content; a list of Info (a common mistake) → the Info named
    'answer', else the last one; a string → itself; anything else → ``str()``.
    ``None`` is an error: it almost always means a missing ``return``.
    """
    if isinstance(result, Info):
        return result.content if isinstance(result.content, str) else str(result.content)
    if isinstance(result, str):
        return result
    if result is None:
        raise TypeError(
            "forward returned None: it must return the final answer, e.g. `return answer` "
            "(the answer Info from the last agent call) or a string."
        )
    if isinstance(result, list | tuple) and result and all(isinstance(x, Info) for x in result):
        named = [x for x in result if x.name == "answer"]
        return to_answer(named[-1] if named else result[-1])
    return str(result)


class LoadedAgent:
    """A loaded agent: ``agent(question) -> answer``, or ``run_task`` for a full outcome."""

    def __init__(self, code: str, system: AgentSystem, ctx: RuntimeContext) -> None:
        self.code = code
        self._system = system
        self._ctx = ctx

    def _answer(self, question: str) -> str:
        task_info = Info("task", "User", question, -1)
        return to_answer(self._system.forward(task_info))  # type: ignore[attr-defined]

    def __call__(self, question: str) -> str:
        """Run one task; exceptions from the agent propagate."""
        with self._ctx.task_scope(question):
            return self._answer(question)

    def run_task(self, task_id: str, question: str) -> TaskOutcome:
        """Run one task; never raises for agent errors: they become ``TaskOutcome.error``."""
        start = time.monotonic()
        with self._ctx.task_scope(question, task_id) as scope:
            try:
                answer = self._answer(question)
            except (Exception, SystemExit) as e:
                return TaskOutcome(
                    task_id=task_id, answer=None, error=task_error_from_exception(e, self.code),
                    wall_s=time.monotonic() - start, truncated=scope.truncated,
                )
        return TaskOutcome(task_id=task_id, answer=answer, wall_s=time.monotonic() - start,
                           truncated=scope.truncated)


def _compile(code: str) -> types.CodeType:
    try:
        return compile(code, AGENT_FILENAME, "exec")
    except SyntaxError as e:
        line = (e.text or "").rstrip()
        where = f"line {e.lineno}, column {e.offset}"
        raise AgentCodeError(
            f"The agent code has a syntax error at {where}: {e.msg}."
            + (f" The line is: `{line.strip()}`." if line.strip() else "")
            + " Fix it and return the whole corrected `def forward(self, taskInfo):` source."
        ) from None
    except ValueError as e:  # e.g. null bytes
        raise AgentCodeError(f"The agent code cannot be compiled: {e}.") from None


def _find_forward(namespace: dict[str, Any]) -> types.FunctionType:
    forward = namespace.get("forward")
    if forward is None:
        owners = [n for n, v in namespace.items()
                  if isinstance(v, type) and isinstance(v.__dict__.get("forward"), types.FunctionType)]
        if owners:
            raise AgentCodeError(
                f"`forward` is defined as a method of class {owners[0]}, but it must be a "
                "top-level function. Remove the class and define `def forward(self, taskInfo):` "
                "at the top level; use LLMAgentBase and Info as they are, without redefining them."
            )
        defined = sorted(n for n in namespace if not n.startswith("__")
                         and n not in NAMESPACE_NAMES)
        raise AgentCodeError(
            "The agent code defines no top-level function named `forward`"
            + (f" (it defines: {', '.join(defined)})" if defined else "")
            + f". {_SIGNATURE_HELP}"
        )
    if not isinstance(forward, types.FunctionType):
        raise AgentCodeError(f"`forward` must be a function, but it is a {type(forward).__name__}. "
                             + _SIGNATURE_HELP)
    if inspect.iscoroutinefunction(forward) or inspect.isgeneratorfunction(forward):
        raise AgentCodeError("`forward` must be a plain function (not async, not a generator). "
                             + _SIGNATURE_HELP)
    try:
        inspect.signature(forward).bind(None, None)
    except TypeError:
        raise AgentCodeError(
            f"`forward` has the wrong signature: `def forward{inspect.signature(forward)}`. "
            + _SIGNATURE_HELP
        ) from None
    return forward


def load_agent(code: str, settings: AgentSettings, transport: Transport, *,
               sandboxed: bool = False) -> LoadedAgent:
    """Exec ``code`` and return a callable ``question -> answer`` (a :class:`LoadedAgent`).

    Raises :class:`AgentCodeError` with a message written for the meta agent
    when the code has a syntax error, fails at the top level, or has no
    usable ``forward``. ``sandboxed`` is set by the sandbox worker: its
    ``run_python`` then hardens the worker before starting children.
    """
    compiled = _compile(code)
    ctx = RuntimeContext(settings, transport)
    agent_cls = bind_agent_class(ctx)
    run_python = PythonTool(limits_from_settings(settings), note=ctx.note,
                            harden_parent=sandboxed).function()
    namespace: dict[str, Any] = {
        "__name__": "agent_code", "__builtins__": builtins,
        "LLMAgentBase": agent_cls, "Info": Info, "run_python": run_python, "tunable": tunable,
    }
    try:
        exec(compiled, namespace)
    except Exception as e:
        line = next((f.lineno for f in reversed(inspect.trace()) if f.filename == AGENT_FILENAME), None)
        raise AgentCodeError(
            f"Running the top level of the agent code raised {type(e).__name__}: {e}"
            + (f" (line {line})" if line else "")
            + ". Only definitions and imports belong at the top level; do the work inside forward."
        ) from None
    # Fake stand-ins for the runtime names can never work; give the real ones back.
    if not (isinstance(namespace.get("LLMAgentBase"), type)
            and issubclass(namespace["LLMAgentBase"], LLMAgentBase)):
        namespace["LLMAgentBase"] = agent_cls
    if namespace.get("Info") is not Info:
        namespace["Info"] = Info
    namespace["run_python"] = run_python
    namespace["tunable"] = tunable
    forward = _find_forward(namespace)

    system_cls = type("AgentSystem", (AgentSystem,), {"forward": forward})
    for name, value in namespace.items():
        if (isinstance(value, types.FunctionType) and value is not forward
                and value.__code__.co_filename == AGENT_FILENAME and not hasattr(system_cls, name)):
            params = list(inspect.signature(value).parameters)
            method = value if params[:1] == ["self"] else staticmethod(value)
            setattr(system_cls, name, method)
    return LoadedAgent(code, system_cls(), ctx)
