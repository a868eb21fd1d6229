"""What an agent needs to know about its run, fixed before it starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from metasearch.runtime.call_cap import DEFAULT_MAX_CALLS_PER_TASK

Protocol = Literal["json", "sections"]


@dataclass(frozen=True)
class AgentSettings:
    """Per-candidate settings handed to the runtime (in-process or in the sandbox).

    ``model`` is the run's task model: the default of ``LLMAgentBase`` when the
    agent code does not name one. ``alternatives`` are the other models an
    agent may name with ``model=`` (the campaign's ``models.task.alternatives``),
    each with its resolved reply protocol; the sandbox host refuses any model
    outside ``allowed``. ``protocol`` is already resolved (never ``auto``).
    ``answer_hint`` comes from the suite, e.g. "an integer".
    The ``python_*`` fields are the limits of each ``run_python`` child: wall
    clock, memory, and the characters of stdout (and of stderr) kept.
    ``max_calls_per_task`` is enforced by the host (:mod:`metasearch.runtime.call_cap`);
    0 means no limit.
    """

    model: str
    answer_hint: str
    protocol: Protocol = "sections"
    candidate: str | None = None
    max_tokens: int = 1024
    task_timeout_s: float = 300.0
    threads: int = 8
    python_timeout_s: float = 10.0
    python_memory_mb: int = 256
    python_output_chars: int = 4000
    max_calls_per_task: int = DEFAULT_MAX_CALLS_PER_TASK
    alternatives: dict[str, Protocol] = field(default_factory=dict)

    @property
    def allowed(self) -> tuple[str, ...]:
        """Every model an agent of this run may call: the task model, then the alternatives."""
        return (self.model, *self.alternatives)

    def model_for(self, name: object) -> str:
        """The model a call of ``LLMAgentBase(model=name)`` uses: ``name`` if allowed, else ours."""
        return name if isinstance(name, str) and name in self.alternatives else self.model

    def protocol_for(self, model: str) -> Protocol:
        """The resolved reply protocol of an allowed ``model``."""
        return self.alternatives.get(model, self.protocol)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AgentSettings:
        return cls(**d)
