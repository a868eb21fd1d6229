"""The seam between agent code and the gateway.

Agent code (``LLMAgentBase``) never holds a gateway: it holds a
:class:`Transport`. In-process evaluation uses :class:`GatewayTransport`; the
sandbox worker uses an RPC transport whose other end is the host gateway.
"""

from __future__ import annotations

from typing import Protocol

from metasearch.llm.types import LLMRequest, LLMResponse


class Transport(Protocol):
    """What agent code calls. A transport that records traces also offers
    ``complete_traced(request, tag)``, where ``tag`` is ``{"task", "agent",
    "repair"}`` (see ``RuntimeContext.complete``); the runtime then calls it instead.
    """

    def complete(self, request: LLMRequest) -> LLMResponse:
        """Make one call; raises the gateway's errors (e.g. ``BudgetExceeded``)."""
        ...

    def note(self, event: str, *, candidate: str | None = None, n: int = 1) -> None:
        """Count a reply-protocol event in the ledger.

        Events: ``parse_failure`` (reply could not be parsed even after
        repair), ``repair`` (a repair call was made), ``missing_field`` (a
        requested field was absent and filled with ''), ``truncated``; and
        one ``python_<kind>`` per ``run_python`` run (``python_ok``,
        ``python_error``, ``python_timeout``, ``python_memory``,
        ``python_output``, ``python_crash``, ``python_refused``).
        """
        ...
