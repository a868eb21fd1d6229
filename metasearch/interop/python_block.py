"""``run_python`` for standalone exported agents: metasearch's own runner, copied in.

An exported module needs only litellm, so it cannot import metasearch. An
agent whose code calls ``run_python`` (the program-of-thought seed, or a
design the meta agent found) gets the source of
:mod:`metasearch.runtime.pyrun` (standard library only, no metasearch
imports) pasted into the module's ``# <tools>`` block, with the same
limits, so the exported agent runs its programs as it did in the campaign,
minus the sandbox around them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

TOOLS_BLOCK = re.compile(r"^# <tools>\n.*?^# </tools>\n", re.MULTILINE | re.DOTALL)
RUNNER = Path(__file__).resolve().parents[1] / "runtime" / "pyrun.py"

_ENTRY = '''

def run_python(code: Any) -> str:
    """Run a Python program (standard library only) and return what it printed.

    On failure the text starts with ``Error:``. Limits as in metasearch (``PythonLimits``).
    The program runs with your uid, network and files: there is no sandbox here.
    """
    if isinstance(code, Info):
        code = code.content
    if not isinstance(code, str):
        raise TypeError("run_python takes the program's source as a string")
    return run_program(program_source(code), PythonLimits())


TOOLS["run_python"] = run_python
'''


def uses_run_python(code: str) -> bool:
    """Whether the agent's code refers to ``run_python`` (a syntax error: by its text)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return "run_python" in code
    return any(isinstance(n, ast.Name) and n.id == "run_python" for n in ast.walk(tree))


def tools_block(code: str) -> str:
    """The module's ``# <tools>`` block for an agent with source ``code``."""
    lines = ["# <tools>", "TOOLS: dict[str, Any] = {}  # names besides the ADAS API that the agent uses"]
    if uses_run_python(code):
        runner = RUNNER.read_text(encoding="utf-8").replace(
            "from __future__ import annotations\n", "", 1)
        lines += ["# run_python: metasearch.runtime.pyrun, copied by metasearch export", runner + _ENTRY]
    return "\n".join([*lines, "# </tools>", ""])
