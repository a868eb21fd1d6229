"""Run untrusted candidate code in an isolated worker; the host owns the RPC loop.

Typical use::

    from metasearch.execution.sandbox import SandboxRunner, run_candidate

    with SandboxRunner(gateway=gateway) as runner:
        outcomes = run_candidate(code, tasks, settings, runner=runner)

See ``launch`` for what each mode isolates, ``pool`` for the runner (its
workers, prewarmed spares and uids), ``cgroups`` for the memory and process
limits on each worker's whole tree, and ``session`` for the two kinds of
failure (the candidate's, reported as outcomes; the sandbox's, raised as
:class:`SandboxError`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from metasearch.candidate.validate import ValidationPolicy, format_findings, validate_code
from metasearch.execution.sandbox.launch import MODES
from metasearch.execution.sandbox.pool import SandboxRunner
from metasearch.execution.sandbox.types import (
    SandboxError,
    SandboxLimits,
    SandboxResult,
    SandboxUnavailable,
    SandboxWarning,
)
from metasearch.outcomes import TaskError, TaskOutcome
from metasearch.runtime.settings import AgentSettings
from metasearch.suites.task import Task

__all__ = [
    "MODES",
    "SandboxError",
    "SandboxLimits",
    "SandboxResult",
    "SandboxRunner",
    "SandboxUnavailable",
    "SandboxWarning",
    "refused_outcomes",
    "run_candidate",
]


def refused_outcomes(tasks: Sequence[Task], message: str) -> list[TaskOutcome]:
    """One ``refused`` outcome per task, e.g. for code that failed validation."""
    error = TaskError(kind="refused", type="ValidationError", message=message)
    return [TaskOutcome(task_id=t.id, answer=None, error=error) for t in tasks]


def run_candidate(
    code: str,
    tasks: Sequence[Task],
    settings: AgentSettings,
    *,
    runner: SandboxRunner,
    validate: bool = True,
    policy: ValidationPolicy | None = None,
    on_outcome: Callable[[TaskOutcome], None] | None = None,
) -> list[TaskOutcome]:
    """Validate ``code`` (unless ``validate=False``), then run it in ``runner``.

    Code that fails validation never starts a worker: every task gets a
    ``refused`` outcome whose message lists the findings.
    """
    if validate:
        findings = validate_code(code, policy)
        if findings:
            outcomes = refused_outcomes(tasks, format_findings(findings))
            if on_outcome is not None:
                for o in outcomes:
                    on_outcome(o)
            return outcomes
    return runner.run(code, tasks, settings, on_outcome=on_outcome)
