"""Turn an exception raised while running agent code into a :class:`TaskError`.

The traceback is trimmed to the frames of the agent's own code (compiled
under the file name :data:`AGENT_FILENAME`), each with its source line, so the
meta agent sees where *its* code failed; without such frames, the last lines of
the full traceback are kept.
"""

from __future__ import annotations

import traceback

from metasearch.llm.types import BudgetExceeded
from metasearch.outcomes import TaskError

AGENT_FILENAME = "<agent>"
_MAX_LINES = 15


def format_agent_traceback(exc: BaseException, code: str) -> str:
    lines = code.splitlines()
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == AGENT_FILENAME]
    last = traceback.format_exception_only(type(exc), exc)[-1].rstrip()
    if not frames:
        full = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return "\n".join(full.rstrip().splitlines()[-_MAX_LINES:])
    out = ["Traceback (agent code only):"]
    for f in frames[-(_MAX_LINES // 2):]:
        out.append(f'  File "{AGENT_FILENAME}", line {f.lineno}, in {f.name}')
        if f.lineno and 0 < f.lineno <= len(lines):
            out.append("    " + lines[f.lineno - 1].strip())
    out.append(last)
    return "\n".join(out)


def task_error_from_exception(exc: BaseException, code: str) -> TaskError:
    kind = "budget" if isinstance(exc, BudgetExceeded) else "exception"
    return TaskError(
        kind=kind,
        type=type(exc).__name__,
        message=str(exc),
        traceback=format_agent_traceback(exc, code),
    )
