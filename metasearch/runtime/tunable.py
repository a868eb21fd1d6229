"""``tunable(name, default, *, low=, high=, choices=, log=)``: a knob in agent code.

It returns ``default``. The ``hybrid`` strategy reads the knobs from the code
(:mod:`metasearch.candidate.knobs`) and writes each trial's chosen values
into the code as the defaults, so at run time the value chosen for this
candidate *is* the default, and nothing but the code has to reach the
sandbox. An untuned agent runs with the defaults it declared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["tunable"]


def tunable(name: str, default: Any, *, low: float | None = None, high: float | None = None,
            choices: Sequence[Any] | None = None, log: bool = False) -> Any:
    """The value of knob ``name`` for this candidate: ``default`` (checked against its domain)."""
    if choices is not None:
        if default not in list(choices):
            raise ValueError(f"tunable({name!r}): the default {default!r} is not one of the "
                             f"choices {list(choices)!r}")
    elif low is not None and high is not None and not low <= default <= high:
        raise ValueError(f"tunable({name!r}): the default {default!r} is outside "
                         f"[{low!r}, {high!r}]")
    return default
