"""Where an agent runs: the one protocol every executor implements.

The sandbox (``execution/sandbox``), the in-process runner for trusted code
(``execution/inprocess.py``) and, later, a Ray executor all sit behind it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from metasearch.outcomes import TaskOutcome
from metasearch.runtime.settings import AgentSettings
from metasearch.suites.task import Task

OnOutcome = Callable[[TaskOutcome], None]


class AgentRunner(Protocol):
    """Executes one candidate's code on tasks; one outcome per task, in task order."""

    def run(
        self,
        code: str,
        tasks: Sequence[Task],
        settings: AgentSettings,
        *,
        on_outcome: OnOutcome | None = None,
    ) -> list[TaskOutcome]: ...
