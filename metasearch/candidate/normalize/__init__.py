"""Normalise a meta-agent proposal with libcst before it is validated.

Small meta agents write agents that are nearly right in predictable ways
(measured with the 1.5B local model): ``forward`` as a method of a new class,
fake redefinitions of ``Info`` / ``LLMAgentBase``, helper stubs, driver code at
the bottom. :func:`normalize_proposal` repairs what it safely can and reports
the rest as findings with line numbers (of the returned code) and hints:

- a ``forward`` inside a class is lifted to the top level; the class's other
  methods become top-level helpers, ``self.helper(x)`` calls become
  ``helper(self, x)`` and attributes set in ``__init__`` (or on the class)
  become locals initialised at the start of the functions that use them;
- definitions, assignments and imports that shadow runtime names
  (:data:`RUNTIME_NAMES`) are dropped;
- extra top-level functions stay as helpers; unused placeholder helpers go;
- ``if __name__ == "__main__":`` blocks, top-level calls, loops and variables
  nothing uses are dropped;
- ``Info(...)`` calls missing fields get the remaining fields spelled out, so
  the code also runs under ADAS;
- ``forward(taskInfo)`` / ``forward(self, task)`` get the canonical signature.

Every change is described in ``changes``; what is left to the meta agent is in
``findings``. The function never raises on bad input: a syntax error is a
finding.

The work is split by job: :mod:`.transforms` holds the text repairs done before
parsing and the node-level libcst transformers, :mod:`.lifting` and
:mod:`.rewrites` the passes over the module body, :mod:`.problems` the finder
that reports what is left, and :mod:`._cst` the small libcst helpers they share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from metasearch.candidate.normalize._cst import RUNTIME_NAMES
from metasearch.candidate.normalize.problems import AGENT_PARAMS, NormalizeFinding, _find_problems
from metasearch.candidate.normalize.rewrites import _Normalizer
from metasearch.candidate.normalize.transforms import (
    INFO_FIELDS,
    _fix_hyphenated_names,
    _strip_fences,
)

__all__ = [
    "AGENT_PARAMS",
    "INFO_FIELDS",
    "RUNTIME_NAMES",
    "NormalizeFinding",
    "NormalizeResult",
    "normalize_proposal",
]


@dataclass(frozen=True)
class NormalizeResult:
    code: str
    changes: list[str] = field(default_factory=list)
    findings: list[NormalizeFinding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def normalize_proposal(code: str) -> NormalizeResult:
    """Repair the usual structural mistakes in ``code``; report what remains."""
    changes: list[str] = []
    src = _fix_hyphenated_names(_strip_fences(code, changes), changes)
    try:
        module = cst.parse_module(src)
    except cst.ParserSyntaxError as e:
        return NormalizeResult(
            src,
            changes,
            [
                NormalizeFinding(
                    "syntax-error",
                    e.raw_line,
                    e.raw_column + 1,
                    f"The code is not valid Python: {e.message}",
                    "Fix the syntax at that line; check indentation, brackets and quotes.",
                )
            ],
        )
    module = _Normalizer(module, changes).run()
    out = module.code
    return NormalizeResult(out, changes, _find_problems(module))
