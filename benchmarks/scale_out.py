"""Scale-out on Ray: throughput with 1 and with 2 simulated nodes, in one run.

A Ray cluster of simulated nodes (``ray.cluster_utils.Cluster``) on this
machine; the real :class:`~metasearch.execution.ray_executor.RayRunner`
with one node actor per node (its own gateway, limit ``--limit`` calls in
flight, response cache off; its own prewarmed sandbox pool, ``--sandbox``).
The task model is the fake OpenAI-compatible server of
``metasearch.testing`` on 127.0.0.1, answering every call after
``--latency`` seconds with unlimited concurrency, so a node can complete at
most ``limit / latency`` tasks a second (one call per task).

Shape (the same both times): ``--candidates`` candidates evaluated at once,
each on ``--tasks`` tasks in shards of ``--shard`` tasks. It runs once on the
head node alone, then a second node joins (the time from ``add_node`` until
its actor's gateway and sandbox spares are up is the join time), then the
same shape again on both.

Also printed: Ray's per-task overhead, the mean of ``--probe`` sequential
empty round trips to a node actor (one shard costs one such trip plus the
pickling of its tasks and outcomes).

    python benchmarks/scale_out.py [--candidates 4] [--tasks 128] [--shard 32]
        [--latency 1.0] [--limit 32] [--sandbox auto] [--json PATH] [--storage URL]

With ``--storage`` (a PostgreSQL URL; default ``METASEARCH_TEST_POSTGRES``) it
also times a second ``metasearch run --worker`` joining a running campaign.

Targets: 2-node throughput >= 1.8x 1-node; overhead < 10 ms. Exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from metasearch.execution.ray_executor import RayRunner  # noqa: E402
from metasearch.execution.ray_node import NodeSpec  # noqa: E402
from metasearch.llm.gateway import Gateway  # noqa: E402
from metasearch.llm.settings import GatewaySettings, ModelSettings  # noqa: E402
from metasearch.runtime.settings import AgentSettings  # noqa: E402
from metasearch.suites.task import Task  # noqa: E402
from metasearch.testing.campaigns import toy_agent  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from campaign_schedule import FakeServer  # noqa: E402  (the fake endpoint, in a child process)

MODEL = "openai/fake"


def evaluate(runner: RayRunner, candidates: int, tasks: list[Task], threads: int) -> float:
    """Wall seconds to evaluate ``candidates`` agents on ``tasks`` at once; all must succeed."""
    errors: list[str] = []

    def one(i: int) -> None:
        settings = AgentSettings(model=MODEL, answer_hint="an integer", protocol="sections",
                                 max_tokens=32, threads=threads, candidate=f"c{i:03d}",
                                 task_timeout_s=120)
        code = toy_agent(1, instruction=f"Solve it (agent {i}).")
        out = runner.run(code, tasks, settings)
        errors.extend(o.error.brief() for o in out if o.error is not None)

    t0 = time.perf_counter()
    threads_ = [threading.Thread(target=one, args=(i,)) for i in range(candidates)]
    for t in threads_:
        t.start()
    for t in threads_:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{len(errors)} tasks failed, e.g. {errors[0]}")
    return wall


WORKER_CONFIG = """
[suite]
name = "arith"
n_val = {tasks}
n_test = 2
[models.meta]
model = "openai/fake-meta"
api_base = "{url}"
protocol = "sections"
[models.task]
model = "openai/fake-task"
api_base = "{url}"
protocol = "sections"
[search]
generations = 0
seeds = ["chain_of_thought", "step_back_abstraction", "self_refine", "role_assignment"]
[pruning]
enabled = false
[run]
sandbox = "{sandbox}"
concurrency = {limit}
"""


def worker_join(storage: str, url: str, a: argparse.Namespace, root: Path) -> float:
    """Seconds from starting a second ``--worker`` beside a running one to its first phase.

    The first worker evaluates a seed (``--tasks`` validation tasks at ``--latency`` s a
    call); the second is started once the first printed its first phase, and its own
    first phase line (a seed it claimed) is when it has joined: CLI start, the database
    join, its MLflow store and sandbox included.
    """
    import subprocess
    import uuid

    cfg = root / "worker.toml"
    cfg.write_text(WORKER_CONFIG.format(tasks=a.tasks, url=url, sandbox=a.sandbox,
                                        limit=a.limit))
    name = f"scale-out-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", OPENAI_API_KEY="sk-fake")

    def start(i: int) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "metasearch.cli.app", "run", str(cfg), "--worker",
             "--storage", f"{storage}#{name}", "--out", str(root / f"w{i}" / name)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def first_phase(p: subprocess.Popen) -> None:
        assert p.stderr is not None
        for line in p.stderr:
            if line.lstrip().startswith("»"):
                return
        raise SystemExit(f"worker exited (rc {p.wait()}) before its first phase")

    one = start(1)
    try:
        first_phase(one)
        t0 = time.perf_counter()
        two = start(2)
        try:
            first_phase(two)
            return time.perf_counter() - t0
        finally:
            two.kill()
            two.wait()
    finally:
        one.kill()
        one.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--candidates", type=int, default=4)
    p.add_argument("--tasks", type=int, default=128)
    p.add_argument("--shard", type=int, default=32)
    p.add_argument("--latency", type=float, default=1.0)
    p.add_argument("--limit", type=int, default=32)
    p.add_argument("--sandbox", default="auto")
    p.add_argument("--probe", type=int, default=300)
    p.add_argument("--json", type=Path)
    p.add_argument("--storage", default=os.environ.get("METASEARCH_TEST_POSTGRES"),
                   help="a PostgreSQL URL for the --worker join time (default: "
                        "METASEARCH_TEST_POSTGRES; none: not measured)")
    a = p.parse_args(argv)

    import ray
    from ray.cluster_utils import Cluster

    tasks = [Task(id=f"t{i:04d}", question=f"What is {i} + 1?", answer=str(i + 1))
             for i in range(a.tasks)]
    per_node_shards = max(1, a.candidates * -(-a.tasks // a.shard))
    server = FakeServer(a.latency)
    try:
        settings = GatewaySettings(models={MODEL: ModelSettings(api_base=server.url + "/v1",
                                                                protocol="sections")},
                                   default_concurrency=a.limit, cache_enabled=False)
        spec = NodeSpec(gateway=settings, sandbox=a.sandbox, allowed_models=[MODEL],
                        prewarm=per_node_shards, call_threads=a.limit * 2, preflight=(MODEL,))
        os.environ.setdefault("OPENAI_API_KEY", "sk-fake")  # the nodes inherit it, as on a cluster
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        ray.init(address=cluster.address, log_to_driver=False)
        host = Gateway(settings=settings, cache=None)
        try:
            runner = RayRunner(spec=spec, gateway=host, shard_tasks=a.shard)
            evaluate(runner, 1, tasks[:a.shard], a.shard)  # warm: imports, first workers
            overhead_s = runner.overhead_probe(a.probe)
            server.stats(reset=True)
            one = evaluate(runner, a.candidates, tasks, a.shard)
            peak1 = server.stats()["peak"]
            t0 = time.perf_counter()
            cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            runner.refresh()
            join_s = time.perf_counter() - t0
            assert len(runner.in_flight()) == 2, runner.in_flight()
            evaluate(runner, 1, tasks[:a.shard], a.shard)
            server.stats(reset=True)
            two = evaluate(runner, a.candidates, tasks, a.shard)
            peak2 = server.stats()["peak"]
            by_node = dict(runner.shards_by_node)
            runner.close()
            worker_s = None
            if a.storage:
                import tempfile

                with tempfile.TemporaryDirectory(prefix="scale-out-") as tmp:
                    worker_s = worker_join(a.storage, server.url + "/v1", a, Path(tmp))
        finally:
            host.close()
            ray.shutdown()
            cluster.shutdown()
    finally:
        server.close()

    n = a.candidates * a.tasks
    tput1, tput2 = n / one, n / two
    ratio = tput2 / tput1
    ceiling = a.limit / a.latency
    lines = [
        f"shape: {a.candidates} candidates x {a.tasks} tasks, shards of {a.shard}, one call of "
        f"{a.latency:g} s per task, gateway limit {a.limit} per node, sandbox {a.sandbox}, "
        f"{os.cpu_count()} CPU cores",
        f"1 node : {tput1:6.1f} tasks/s ({one:.1f} s; ceiling {ceiling:.0f} tasks/s; "
        f"peak calls in flight {peak1})",
        f"2 nodes: {tput2:6.1f} tasks/s ({two:.1f} s; ceiling {2 * ceiling:.0f} tasks/s; "
        f"peak calls in flight {peak2})",
        f"scaling: {ratio:.2f}x (ideal 2.00x, {100 * ratio / 2:.0f}% of ideal; target >= 1.8x)",
        f"Ray per-task overhead: {1000 * overhead_s:.2f} ms (empty round trip to a node actor, "
        f"mean of {a.probe}; target < 10 ms)",
        f"node join: {join_s:.1f} s (add_node until its actor's gateway and {per_node_shards} "
        "sandbox spares are up)",
        f"shards by node: {sorted(by_node.values())}",
        "second --worker joining a running campaign: " + (
            f"{worker_s:.1f} s (process start until its first phase line)" if worker_s is not None
            else "not measured (give --storage postgresql://... or METASEARCH_TEST_POSTGRES)"),
        f"load average during the run: {os.getloadavg()[0]:.1f}",
    ]
    print("\n".join(lines))
    if a.json is not None:
        a.json.write_text(json.dumps({
            "tasks_per_s_1": tput1, "tasks_per_s_2": tput2, "ratio": ratio,
            "overhead_ms": 1000 * overhead_s, "join_s": join_s, "wall_1": one, "wall_2": two,
            "peak_1": peak1, "peak_2": peak2, "load_avg": os.getloadavg(), "worker_join_s": worker_s,
            "args": {k: str(v) for k, v in vars(a).items()}}, indent=1))
    return 0 if ratio >= 1.8 and overhead_s < 0.010 else 1


if __name__ == "__main__":
    sys.exit(main())
