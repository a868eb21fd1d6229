"""What running an agent on one task produced, before scoring.

Failures are states with a reason, never a silent zero: a task that raised,
timed out, crashed its worker or hit the budget says so, with enough detail
(type, message, trimmed traceback) to be handed back to the meta agent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ErrorKind = Literal["exception", "timeout", "crash", "budget", "refused"]


@dataclass(frozen=True)
class TaskError:
    kind: ErrorKind
    type: str
    message: str
    traceback: str = ""

    def brief(self) -> str:
        return f"{self.type}: {self.message}"


@dataclass(frozen=True)
class TaskOutcome:
    task_id: str
    answer: str | None
    error: TaskError | None = None
    wall_s: float = 0.0
    truncated: bool = False
    # the task's LLM calls as the runner recorded them (``runtime.traces``); None: not traced
    trace: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TaskOutcome:
        d = dict(d)
        if d.get("error") is not None:
            d["error"] = TaskError(**d["error"])
        return cls(**d)
