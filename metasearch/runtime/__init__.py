"""What agent code may use, and how it is loaded and run.

Agent code sees ``LLMAgentBase`` and ``Info`` (ADAS-compatible) and
``run_python`` (the code-execution tool, :mod:`.python_tool`). The host uses
:func:`load_agent` (inside the sandbox worker) or :func:`run_tasks_inprocess`
(trusted seeds only), with a :class:`GatewayTransport` in-process.
"""

from metasearch.runtime.agent_base import LLMAgentBase
from metasearch.runtime.gateway_transport import GatewayTransport
from metasearch.runtime.info import Info
from metasearch.runtime.inprocess import run_tasks_inprocess
from metasearch.runtime.loader import LoadedAgent, load_agent, to_answer
from metasearch.runtime.seeds import SeedAgent, list_seeds, load_seed

__all__ = [
    "GatewayTransport",
    "Info",
    "LLMAgentBase",
    "LoadedAgent",
    "SeedAgent",
    "list_seeds",
    "load_agent",
    "load_seed",
    "run_tasks_inprocess",
    "to_answer",
]
