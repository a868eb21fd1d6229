"""Gateways for Ray nodes in tests and benchmarks: module-level, so Ray can ship them.

A :class:`~metasearch.execution.ray_node.NodeSpec` names one of these as its
``make_gateway`` (bound with :func:`functools.partial`); each node then
builds its own scripted gateway, holding no keys and needing no network.
"""

from __future__ import annotations

from typing import Any

from metasearch.llm.scripted import scripted_gateway
from metasearch.testing.campaigns import ScriptedModel


def scripted_task_gateway(*, delay_s: float = 0.0, concurrency: int = 8,
                          cache: Any = None, budget: Any = None) -> Any:
    """The toy campaign's task model (a pure function of each request) on this node.

    ``cache`` and ``budget`` are the campaign database's, when the node spec has
    a :class:`~metasearch.execution.ray_node.SharedStore`.
    """
    kw: dict[str, Any] = {"delay_s": delay_s} if delay_s else {}
    if budget is not None:
        kw["budget"] = budget
    return scripted_gateway(ScriptedModel(), default_concurrency=concurrency, cache=cache, **kw)
