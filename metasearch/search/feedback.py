"""Debug feedback built from task outcomes: why a candidate goes back to its strategy.

Strategy-neutral: any strategy with a fix step (see ``search.base.Fixer``)
gets the same :class:`DebugFeedback`, built from validation results only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["DebugFeedback", "TaskFeedback", "debug_feedback_from_outcomes"]


@dataclass(frozen=True)
class TaskFeedback:
    """One evaluated task, as shown to the meta agent when debugging."""

    question: str
    answer: str | None = None
    gold: str | None = None
    error: str = ""
    traceback: str = ""


@dataclass(frozen=True)
class DebugFeedback:
    """Why a candidate goes back to the meta agent after its sandbox run."""

    kind: Literal["errors", "all_zero"]
    n_tasks: int
    n_errors: int
    examples: tuple[TaskFeedback, ...] = ()
    agent_error: str = ""  # the code failed before any task ran (load error)


def debug_feedback_from_outcomes(
    outcomes: Sequence[Any],
    tasks: Sequence[Any],
    scores: Sequence[float] | None = None,
    *,
    max_examples: int = 3,
) -> DebugFeedback | None:
    """Feedback for the meta agent from ``TaskOutcome``s, or None when none is due.

    Due when any task raised (``kind="errors"``) or every task scored 0
    (``kind="all_zero"``, showing answers next to gold answers).
    """
    by_id = {t.id: t for t in tasks}
    errors = [o for o in outcomes if o.error is not None]
    if errors:
        examples = tuple(
            TaskFeedback(
                question=str(getattr(by_id.get(o.task_id), "question", "")),
                error=o.error.brief(),
                traceback=o.error.traceback,
            )
            for o in _distinct_errors(errors)[:max_examples]
        )
        return DebugFeedback("errors", len(outcomes), len(errors), examples)
    if outcomes and scores is not None and len(scores) and max(scores) <= 0:
        examples = tuple(
            TaskFeedback(
                question=str(getattr(by_id.get(o.task_id), "question", "")),
                answer=o.answer,
                gold=str(getattr(by_id.get(o.task_id), "answer", "")),
            )
            for o in list(outcomes)[:max_examples]
        )
        return DebugFeedback("all_zero", len(outcomes), 0, examples)
    return None


def _distinct_errors(errors: Sequence[Any]) -> list[Any]:
    seen: set[str] = set()
    first: list[Any] = []
    rest: list[Any] = []
    for o in errors:
        key = o.error.brief()
        (rest if key in seen else first).append(o)
        seen.add(key)
    return first + rest
