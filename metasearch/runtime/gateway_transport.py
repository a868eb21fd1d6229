"""The in-process :class:`~metasearch.runtime.transport.Transport` over a gateway."""

from __future__ import annotations

from typing import Any

from metasearch.llm.types import LLMRequest, LLMResponse


class GatewayTransport:
    """Adapts a ``Gateway`` to a Transport (it already has ``complete`` and ``note``).

    Kept as a seam so the runtime depends on the Transport protocol only.
    """

    def __init__(self, gateway: Any) -> None:
        self._gateway = gateway

    def complete(self, request: LLMRequest) -> LLMResponse:
        return self._gateway.complete(request)

    def note(self, event: str, *, candidate: str | None = None, n: int = 1) -> None:
        self._gateway.note(event, candidate=candidate, n=n)
