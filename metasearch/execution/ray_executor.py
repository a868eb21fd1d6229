"""The Ray executor: a candidate's tasks in shards, each on some node's own sandbox pool.

:class:`RayRunner` is an :class:`~metasearch.execution.base.AgentRunner`, so
the campaign loop cannot tell it from the local sandbox. It keeps one
:class:`~metasearch.execution.ray_node.NodeEvaluator` actor per alive node
(pinned to that node, holding its gateway and prewarmed sandbox pool), sends
each shard to the least busy one, and when a node dies mid-shard (its actor
errors) sends that shard to another node. Outcomes reach the caller only when
a whole evaluation is done, so a retried shard is never seen twice and the
candidate's record is written once, by the caller, as on one machine.

Cost: each shard returns what its calls cost on its node; the runner adds
that to the host gateway's ledger, so records and ``report.md`` count the
same calls as locally. The budget: with the campaign on a database
(``--storage``), every node's gateway reserves each call in the database's
budget row, so the caps are exact across nodes (and workers), and the
nodes share the database's response cache. Without one, the host checks the
budget before it sends each shard and adds each shard's cost after, so a cap
can be overshot by the calls of the shards in flight, and each machine keeps
its own disk cache (simulated nodes on one machine share it).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from metasearch.execution.base import OnOutcome
from metasearch.execution.ray_node import NodeEvaluator, NodeSpec, ShardResult, SharedStore
from metasearch.execution.sandbox.types import SandboxError
from metasearch.llm.types import BudgetExceeded
from metasearch.outcomes import TaskError, TaskOutcome
from metasearch.runtime.settings import AgentSettings
from metasearch.suites.task import Task

REFRESH_S = 10.0  # how often run() looks for nodes that joined


@dataclass
class _Node:
    node_id: str
    actor: Any
    busy: int = 0


def connect(address: str | None, *, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` (else ``RAY_ADDRESS``), else start a local instance.

    Returns True when this call started Ray (so the caller shuts it down).
    """
    import os

    import ray

    if ray.is_initialized():
        return False
    kw: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    target = address or os.environ.get("RAY_ADDRESS") or None
    if target is None:
        kw |= {"include_dashboard": False, "num_cpus": num_cpus}
    try:
        ray.init(address=target, **kw)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        from metasearch.errors import ConfigError

        raise ConfigError(
            f"Could not reach the Ray cluster at {target!r} (ray.address in the config, or "
            f"RAY_ADDRESS): {exc}. Start it with `ray start --head` (or check the address and "
            "port), or remove ray.address and unset RAY_ADDRESS to start a local Ray instance."
        ) from exc
    return True


class RayRunner:
    """Runs candidates' tasks on a Ray cluster, in shards of ``shard_tasks`` tasks.

    ``gateway`` is the host's gateway (meta calls, ledger, budget); ``spec``
    says how each node builds its own. ``max_attempts`` bounds how often one
    shard is sent after its node died.
    """

    def __init__(self, *, spec: NodeSpec, gateway: Any, address: str | None = None,
                 shard_tasks: int = 4, max_attempts: int = 3,
                 actor_concurrency: int = 64, start_timeout_s: float = 120.0) -> None:
        import ray

        if shard_tasks < 1:
            raise ValueError(f"shard_tasks must be >= 1, not {shard_tasks}")
        self.spec = spec
        self.gateway = gateway
        self.shard_tasks = shard_tasks
        self.max_attempts = max_attempts
        self._concurrency = actor_concurrency
        self._start_timeout_s = start_timeout_s
        self._owns_ray = connect(address)
        self._actor_class = ray.remote(NodeEvaluator)
        self._lock = threading.Lock()
        self._nodes: dict[str, _Node] = {}
        self._dead: set[str] = set()
        self._started = 0  # actors started so far: each gets its own uid block
        self._refreshed = 0.0
        self.left_out: dict[str, str] = {}  # node id -> why its actor could not start
        self.retried_shards = 0
        self.shards_by_node: dict[str, int] = {}
        try:
            self.refresh()
        except BaseException:
            self.close()
            raise

    # -- the AgentRunner seam ------------------------------------------------
    def run(self, code: str, tasks: Sequence[Task], settings: AgentSettings, *,
            on_outcome: OnOutcome | None = None) -> list[TaskOutcome]:
        """Run ``code`` on ``tasks`` across the nodes; one outcome per task, in task order."""
        import ray

        if time.monotonic() - self._refreshed > REFRESH_S:
            self.refresh()  # nodes that joined since get their actor before this candidate
        tasks = list(tasks)
        n = max(1, math.ceil(len(tasks) / self.shard_tasks))
        shards = [tasks[i * self.shard_tasks:(i + 1) * self.shard_tasks] for i in range(n)]
        done: dict[int, list[TaskOutcome]] = {}
        pending: dict[Any, tuple[int, _Node, int]] = {}
        for i, shard in enumerate(shards):
            if not shard:
                done[i] = []
                continue
            self._send(i, shard, code, settings, 1, pending, done)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            i, node, attempt = pending.pop(ref)
            self._release(node)
            try:
                result: ShardResult = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                self._forget(node)
                if attempt >= self.max_attempts:
                    raise SandboxError(
                        f"Shard {i} of candidate {settings.candidate} was lost {attempt} times "
                        f"(its Ray node died each time; last: {type(exc).__name__}). Check the "
                        "cluster's nodes (`ray status`), then --resume the campaign.") from exc
                with self._lock:
                    self.retried_shards += 1
                self._send(i, shards[i], code, settings, attempt + 1, pending, done)
                continue
            self._account(result, settings)
            done[i] = result.outcomes
        outcomes = [o for i in range(n) for o in done[i]]
        if on_outcome is not None:
            for o in outcomes:
                on_outcome(o)
        return outcomes

    # -- nodes ---------------------------------------------------------------
    def refresh(self) -> None:
        """Start an actor on every alive node that has none (nodes may join at any time)."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._refreshed = time.monotonic()
        alive = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
        new = []
        with self._lock:
            for node_id in alive:
                if node_id in self._nodes or node_id in self._dead or node_id in self.left_out:
                    continue
                self._started += 1
                actor = self._actor_class.options(
                    num_cpus=0, max_concurrency=self._concurrency, max_restarts=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
                ).remote(self.spec, self._started)
                new.append((node_id, actor))
        if not new:
            return
        refs = [a.ready.remote() for _, a in new]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=self._start_timeout_s)
        errors = []
        for (node_id, actor), ref in zip(new, refs, strict=True):
            why = None
            if ref not in ready:
                why = f"not ready after {self._start_timeout_s:.0f} s"
                ray.kill(actor)
            else:
                try:
                    ray.get(ref)
                except ray.exceptions.RayError as exc:
                    why = _cause(exc)
            if why is not None:
                errors.append(f"node {node_id[:12]}: {why}")
                self.left_out[node_id] = why
                continue
            with self._lock:
                self._nodes[node_id] = _Node(node_id, actor)
        if errors and self._nodes:
            import warnings

            warnings.warn("Ray nodes left out (their gateway or sandbox pool did not start): "
                          + "; ".join(errors), RuntimeWarning, stacklevel=2)
        if errors and not self._nodes:
            raise SandboxError(
                "No Ray node could start its gateway and sandbox pool: " + "; ".join(errors)
                + ". Each node needs metasearch installed and a working sandbox (run "
                "`metasearch doctor` on it).")

    def describe(self) -> str:
        """One line for the campaign's log: the cluster and the nodes in use."""
        import ray

        where = ray.get_runtime_context().gcs_address
        n = len(self.in_flight())
        return (f"{n} node{'s' if n != 1 else ''} with a gateway and sandbox pool each, "
                f"cluster {where}, {self.shard_tasks} tasks per shard")

    def in_flight(self) -> dict[str, int]:
        """Shards now running, by node id (the nodes this runner uses)."""
        with self._lock:
            return {k: n.busy for k, n in self._nodes.items()}

    def _pick(self) -> _Node:
        with self._lock:
            nodes = list(self._nodes.values())
        if not nodes:
            self.refresh()
            with self._lock:
                nodes = list(self._nodes.values())
            if not nodes:
                raise SandboxError("No Ray node is alive to run the candidate's tasks. Check "
                                   "the cluster (`ray status`), then --resume the campaign.")
        with self._lock:
            node = min(nodes, key=lambda n: n.busy)
            node.busy += 1
        return node

    def _release(self, node: _Node) -> None:
        with self._lock:
            node.busy -= 1

    def _forget(self, node: _Node) -> None:
        with self._lock:
            if self._nodes.pop(node.node_id, None) is not None:
                self._dead.add(node.node_id)

    def _send(self, i: int, shard: list[Task], code: str, settings: AgentSettings,
              attempt: int, pending: dict[Any, tuple[int, _Node, int]],
              done: dict[int, list[TaskOutcome]]) -> None:
        try:
            self.gateway.budget.check()
        except BudgetExceeded as exc:
            error = TaskError(kind="budget", type="BudgetExceeded", message=str(exc))
            done[i] = [TaskOutcome(task_id=t.id, answer=None, error=error) for t in shard]
            return
        node = self._pick()
        pending[node.actor.run_shard.remote(code, shard, settings)] = (i, node, attempt)

    def _account(self, result: ShardResult, settings: AgentSettings) -> None:
        """Add the shard's calls to the host's ledger and budget (as if made here)."""
        c = result.cost
        with self._lock:
            self.shards_by_node[result.node_id] = self.shards_by_node.get(result.node_id, 0) + 1
        self.gateway.ledger.add(c, role="task", candidate=settings.candidate)
        if self.spec.shared is None:  # else the node reserved and charged the database's row
            self.gateway.budget.add_prior(usd=c.cost_usd, calls=c.calls - c.cached_calls,
                                          tokens=c.tokens)

    def overhead_probe(self, n: int = 200) -> float:
        """Mean seconds of one empty round trip to a node actor (Ray's per-call overhead)."""
        import ray

        node = self._pick()
        try:
            ray.get(node.actor.ready.remote())
            t0 = time.perf_counter()
            for _ in range(n):
                ray.get(node.actor.ready.remote())
            return (time.perf_counter() - t0) / n
        finally:
            self._release(node)

    def close(self) -> None:
        import ray

        with self._lock:
            nodes, self._nodes = list(self._nodes.values()), {}
        if ray.is_initialized():
            closing = [n.actor.close.remote() for n in nodes]
            try:
                ray.wait(closing, num_returns=len(closing), timeout=30)
            except Exception:  # a dead node's actor: nothing left to close
                pass
            for n in nodes:
                try:
                    ray.kill(n.actor)
                except Exception:
                    pass
            if self._owns_ray:
                ray.shutdown()

    def __enter__(self) -> RayRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def build_ray_runner(gateway: Any, ray_config: Any, *, sandbox: str,
                     allowed: Sequence[str] | None, candidate_timeout_s: float,
                     prewarm: int, call_threads: int, memory_mb: int = 2048,
                     max_pids: int = 256, shared: Any = None) -> RayRunner:
    """A :class:`RayRunner` whose nodes build gateways like ``gateway`` (settings only).

    Each node's gateway gets the host gateway's settings and an absolute cache
    directory; keys are read on the node, from its environment. ``shared`` (a
    ``campaign.workers.SharedState``) puts every node's cache and budget on the
    campaign's database; otherwise the host enforces the budget per shard.
    """
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        from metasearch.errors import ConfigError

        raise ConfigError(
            "run.executor is \"ray\", but Ray is not installed here. Install it with "
            "`pip install 'metasearch[ray]'` (on every node of the cluster), or set "
            "run.executor = \"local\"."
        ) from exc
    from metasearch.llm.settings import BudgetSettings

    settings = gateway.settings.model_copy(update={
        "budget": BudgetSettings(), "cache_dir": gateway.settings.cache_dir.resolve()})
    address = getattr(ray_config, "address", None)
    store = None if shared is None else _shared_store(shared, starts_ray=_starts_ray(address))
    spec = NodeSpec(gateway=settings, sandbox=sandbox, candidate_timeout_s=candidate_timeout_s,
                    memory_mb=memory_mb, max_pids=max_pids,
                    allowed_models=None if allowed is None else tuple(allowed),
                    prewarm=prewarm, call_threads=call_threads,
                    env={"LITELLM_LOCAL_MODEL_COST_MAP": "True"},
                    preflight=() if allowed is None else tuple(allowed), shared=store)
    return RayRunner(spec=spec, gateway=gateway, address=address,
                     shard_tasks=getattr(ray_config, "shard_tasks", 4))


def _starts_ray(address: str | None) -> bool:
    """Whether :func:`connect` will start a local Ray instance (not join a cluster)."""
    import os

    import ray

    return not (ray.is_initialized() or address or os.environ.get("RAY_ADDRESS"))


def _shared_store(shared: Any, *, starts_ray: bool) -> SharedStore:
    """The nodes' view of the campaign's database: its URL without the password.

    A local Ray instance that this process starts inherits its environment, so
    the URL's password is handed to its nodes as ``PGPASSWORD`` (unless one is
    set); the nodes of a real cluster need it in their own environment.
    """
    import os

    from metasearch.urls import password, without_password

    secret = password(shared.url)
    if secret and starts_ray:
        os.environ.setdefault("PGPASSWORD", secret)
    return SharedStore(url=without_password(shared.url), campaign=shared.name,
                       budget=shared.budget.settings)
