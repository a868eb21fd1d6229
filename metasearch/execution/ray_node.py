"""What runs on each Ray node: one actor holding that node's gateway and sandbox pool.

The actor is the only place on a node that holds model keys (its gateway reads
them from the node's own environment when it calls); the jailed workers of its
:class:`~metasearch.execution.sandbox.SandboxRunner` reach the models only
through that gateway, exactly as on one machine. What travels to the actor is
a :class:`NodeSpec` (settings and the names of key variables, never their
values) and, per shard, the code, the tasks (no gold answers) and the agents'
settings.

When the campaign's state is on a database (``--storage``), each node's
gateway uses that database's response cache and budget (:class:`SharedStore`),
so a reply one node paid for is a hit on every other node, and the call cap
is reserved call by call across all of them, exactly as across workers. The
URL travels without its password: a node reads it from its own environment
(``PGPASSWORD`` or ``~/.pgpass``), as it reads model keys.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from metasearch.llm.ledger import Counts
from metasearch.llm.settings import BudgetSettings, GatewaySettings
from metasearch.outcomes import TaskOutcome
from metasearch.runtime.settings import AgentSettings
from metasearch.suites.task import Task


@dataclass(frozen=True)
class SharedStore:
    """The campaign's database, for the nodes' cache and budget; holds no password."""

    url: str  # without its password (``metasearch.urls.without_password``)
    campaign: str
    budget: BudgetSettings

    def open(self) -> tuple[Any, Any]:
        """(cache, budget) on the database; a clear error if this node cannot reach it."""
        from metasearch.llm.shared import SqlBudget, SqlResponseCache
        from metasearch.store import db

        try:
            db.open_engine(self.url)  # the same one-paragraph error as on the host
            budget = SqlBudget(self.budget, url=self.url, campaign=self.campaign)
        except Exception as exc:
            from metasearch.errors import ConfigError

            raise ConfigError(
                f"This Ray node could not open the campaign's database {self.url}: "
                f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else exc!r}. "
                "Give every node the database password where libpq reads it (PGPASSWORD or "
                "~/.pgpass; it never travels in the task payload), and check that the node "
                "reaches the database host.") from None
        return SqlResponseCache(url=self.url, campaign=self.campaign), budget


@dataclass(frozen=True)
class NodeSpec:
    """How to build one node's gateway and sandbox pool; picklable, holds no secrets.

    ``make_gateway`` (a module-level function, for tests and benchmarks that
    script the model) replaces the gateway built from ``gateway``; with
    ``shared``, it is called with the database's ``cache=`` and ``budget=``.
    """

    gateway: GatewaySettings
    sandbox: str = "auto"
    candidate_timeout_s: float = 3600.0
    memory_mb: int = 2048  # [sandbox]: each candidate's process tree, as on one machine
    max_pids: int = 256
    allowed_models: Collection[str] | None = None
    prewarm: int = 0
    call_threads: int = 16
    make_gateway: Callable[[], Any] | None = None
    env: dict[str, str] = field(default_factory=dict)  # non-secret settings, e.g. cost map
    # models checked on the node before it takes shards: the key is set there, the endpoint
    # answers, local weights are assembled, and the route (litellm's price map) is built
    preflight: tuple[str, ...] = ()
    shared: SharedStore | None = None  # the campaign's database: cache and budget there


@dataclass(frozen=True)
class ShardResult:
    """A shard's outcomes (task order) and what its LLM calls cost on the node."""

    outcomes: list[TaskOutcome]
    cost: Counts
    node_id: str


class NodeEvaluator:
    """One per node (a Ray actor): a gateway and a prewarmed sandbox pool, built once.

    ``run_shard`` is called concurrently (a threaded actor); each shard runs
    under its own ledger key so concurrent shards of one candidate are costed
    apart.
    """

    def __init__(self, spec: NodeSpec, uid_block: int = 0) -> None:
        import os

        os.environ.update(spec.env)
        from metasearch.execution.sandbox import SandboxLimits, SandboxRunner

        parts: dict[str, Any] = {}
        if spec.shared is not None:
            parts["cache"], parts["budget"] = spec.shared.open()
        if spec.make_gateway is not None:
            self.gateway = spec.make_gateway(**parts)
        else:
            from metasearch.llm.gateway import Gateway

            self.gateway = Gateway(settings=spec.gateway, **parts)
        try:
            for model in spec.preflight:
                self.gateway.preflight(model)
            self.runner = SandboxRunner(
                mode=spec.sandbox, gateway=self.gateway, allowed_models=spec.allowed_models,
                limits=SandboxLimits(candidate_timeout_s=spec.candidate_timeout_s,
                                     memory_mb=spec.memory_mb, nproc=spec.max_pids,
                                     max_pids=spec.max_pids),
                prewarm=spec.prewarm, call_threads=spec.call_threads,
                uids=_uids(uid_block))
            if spec.prewarm:
                self.runner.warm_up()
        except BaseException:
            self.gateway.close()
            raise
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self.node_id = _node_id()

    def ready(self) -> str:
        """The node's id, once the gateway and the spare workers are up."""
        return self.node_id

    def run_shard(self, code: str, tasks: Sequence[Task], settings: AgentSettings) -> ShardResult:
        """Run ``code`` on ``tasks`` in this node's sandbox; outcomes in task order."""
        with self._lock:
            key = f"{settings.candidate or 'eval'}#shard{next(self._ids)}"
        shard = AgentSettings(**(settings.to_json() | {"candidate": key}))
        outcomes = self.runner.run(code, tasks, shard)
        cost = self.gateway.snapshot().by_candidate.get(key, Counts())
        return ShardResult(outcomes=outcomes, cost=cost, node_id=self.node_id)

    def stats(self) -> dict[str, int]:
        return dict(self.runner.stats)

    def close(self) -> None:
        for part in (self.runner, self.gateway):
            try:
                part.close()
            except Exception:  # best effort: the actor is going away
                pass


def _uids(block: int) -> range:
    """This actor's sandbox uids: a block of its own, so simulated nodes sharing one
    machine (and a local sandbox pool, block 0) never share a uid."""
    start = 60000 + 256 * (block % 21)
    return range(start, start + 256)


def _node_id() -> str:
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # outside Ray (unit use)
        return "local"
