"""The task record shared by suites, the evaluator and the sandbox."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Task:
    """One question with its gold answer.

    Only ``id`` and ``question`` ever cross into the sandbox; the gold answer
    stays on the host where scoring happens.
    """

    id: str
    question: str
    answer: str
    meta: dict[str, Any] = field(default_factory=dict)
