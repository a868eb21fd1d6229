"""Run agent code in this process: only for trusted code (the seeds in ``archive/``, tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from metasearch.execution.base import OnOutcome
from metasearch.outcomes import TaskOutcome
from metasearch.runtime.settings import AgentSettings
from metasearch.suites.task import Task


class InProcessRunner:
    """Runs code in this process. Only for trusted code (the seeds in ``archive/``, tests)."""

    def __init__(self, *, gateway: Any) -> None:
        from metasearch.runtime.gateway_transport import GatewayTransport

        self._transport = GatewayTransport(gateway)

    def run(
        self,
        code: str,
        tasks: Sequence[Task],
        settings: AgentSettings,
        *,
        on_outcome: OnOutcome | None = None,
    ) -> list[TaskOutcome]:
        from metasearch.runtime.inprocess import run_tasks_inprocess

        return run_tasks_inprocess(code, tasks, settings, self._transport, on_outcome=on_outcome)
