"""Gateways for Ray nodes in tests and benchmarks: module-level, so Ray can ship them.

A :class:`~metasearch.execution.ray_node.NodeSpec` names one of these as its
``make_gateway`` (bound with :func:`functools.partial`); each node then
builds its own scripted gateway, holding no keys and needing no network.
"""

from __future__ import annotations

from typing import Any

from metasearch.llm.scripted import scripted_gateway
from metasearch.testing.campaigns import ScriptedModel


def scripted_task_gateway(*, delay_s: float = 0.0, concurrency: int = 8) -> Any:
    """The toy campaign's task model (a pure function of each request) on this node."""
    kw: dict[str, Any] = {"delay_s": delay_s} if delay_s else {}
    return scripted_gateway(ScriptedModel(), default_concurrency=concurrency, **kw)
