"""``Info``: the message record agent code passes between agents (ADAS-compatible)."""

from __future__ import annotations

from typing import Any, NamedTuple


class Info(NamedTuple):
    """One named piece of text produced by someone, as in ADAS.

    A real tuple, so ADAS code that indexes or unpacks it keeps working:
    ``name, author, content, iteration_idx = info``. Every field has a default,
    so the common small-model mistake ``Info(content=...)`` still works.

    ``taskInfo`` is ``Info('task', 'User', <question text>, -1)``.
    """

    name: str = "info"
    author: str = "unknown"
    content: Any = ""
    iteration_idx: int = -1
