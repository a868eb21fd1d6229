"""The per-task call cap: an agent that calls the model in an unbounded loop is stopped.

The campaign's budget is checked before a candidate starts, so without a cap a
candidate in flight can spend without bound: in ``experiments/structured-local.md``
one ADAS proposal (a ``while True`` critic loop) made 760 calls on 10 tasks, 62% of
that search's calls, before its tasks timed out. The sandbox host and the in-process
runner ask the same :class:`CallCap` before serving each call.

A task's calls are counted by the task the call is labelled with; a call of no known
task counts against the run as a whole, and so does every call: the run never serves
more than ``limit x tasks`` calls, whatever the labels say (the worker only labels).
Cached calls count too, so a replay from the cache refuses at the same place.
"""

from __future__ import annotations

import threading

__all__ = ["DEFAULT_MAX_CALLS_PER_TASK", "CallCap", "cap_message"]

#: ``run.max_calls_per_task`` when nothing sets it: far above any seed (19 at most measured).
DEFAULT_MAX_CALLS_PER_TASK = 50


def cap_message(limit: int, *, run: bool = False) -> str:
    """Why a call was refused: the limit, the likely cause and the fix."""
    where = (f"this candidate has made {limit} LLM calls per task on average"
             if run else f"this task has already made {limit} LLM calls")
    return (f"LLM call refused: {where}, the limit run.max_calls_per_task = {limit}. An agent "
            "that calls the model in an unbounded loop would spend the campaign's budget; "
            "bound its loops, or raise run.max_calls_per_task (0 for no limit).")


class CallCap:
    """Counts one run's calls per task; ``take`` says whether one more may be served."""

    def __init__(self, limit: int, n_tasks: int) -> None:
        self.limit = max(0, int(limit))
        self._per_task = [0] * n_tasks
        self._total = 0
        self._lock = threading.Lock()

    def take(self, task: int | None) -> str | None:
        """Count a call of ``task`` (None: unknown); the refusal message once over the cap."""
        if self.limit == 0:
            return None
        with self._lock:
            if self._total >= self.limit * max(1, len(self._per_task)):
                return cap_message(self.limit, run=True)
            if task is not None and 0 <= task < len(self._per_task):
                if self._per_task[task] >= self.limit:
                    return cap_message(self.limit)
                self._per_task[task] += 1
            self._total += 1
            return None
