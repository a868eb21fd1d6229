"""The Ray executor on a real Ray cluster of simulated nodes (``ray.cluster_utils.Cluster``).

One cluster per module (head + one worker node; the node-death test adds and
removes a third). The scripted task model runs on each node's own gateway;
records must equal the local sandbox runner's.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402

from metasearch.execution.ray_executor import RayRunner  # noqa: E402
from metasearch.execution.ray_node import NodeSpec  # noqa: E402
from metasearch.execution.sandbox import SandboxRunner  # noqa: E402
from metasearch.llm.settings import GatewaySettings, ModelSettings  # noqa: E402
from metasearch.runtime.settings import AgentSettings  # noqa: E402
from metasearch.search.random import RandomStrategy  # noqa: E402
from metasearch.search.spaces import load_space  # noqa: E402
from metasearch.testing.campaigns import (  # noqa: E402
    TASK_MODEL,
    TOY_TASKS,
    ScriptedModel,
    close_campaign,
    comparable,
    toy_campaign,
)
from metasearch.testing.ray_nodes import scripted_task_gateway  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-metasearch-test-secret-0123456789"


def db_password() -> str | None:
    """The test database's password, which the nodes read from PGPASSWORD (never a payload)."""
    from metasearch.urls import password

    return password(os.environ.get("METASEARCH_TEST_POSTGRES", ""))


@pytest.fixture(scope="module")
def cluster():
    # set where the cluster runs (its node processes inherit it), as a key set on a real node
    os.environ["METASEARCH_TEST_KEY"] = SECRET
    set_pw = bool(db_password()) and "PGPASSWORD" not in os.environ
    if set_pw:
        os.environ["PGPASSWORD"] = db_password()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()
    os.environ.pop("METASEARCH_TEST_KEY", None)
    if set_pw:
        os.environ.pop("PGPASSWORD", None)


def strategy(_gateway, _parallel):
    return RandomStrategy(space=load_space(ROOT / "search_spaces/reasoning.toml"),
                          generations=1, width=2, seed=3)


def spec(delay_s: float = 0.0) -> NodeSpec:
    return NodeSpec(gateway=GatewaySettings(), sandbox="auto", allowed_models=[TASK_MODEL],
                    make_gateway=functools.partial(scripted_task_gateway, delay_s=delay_s))


def run_campaign(directory: Path, make_runner, *, during=None):
    campaign = toy_campaign(directory, ScriptedModel(), strategy)
    runner = make_runner(campaign.gateway)
    campaign.runner = runner
    try:
        if during is None:
            return campaign.run(), runner
        box: dict = {}
        t = threading.Thread(target=lambda: box.setdefault("r", campaign.run()))
        t.start()
        during(runner)
        t.join(300)
        assert "r" in box, "the campaign did not finish"
        return box["r"], runner
    finally:
        close_campaign(campaign)
        runner.close()


@pytest.fixture(scope="module")
def local_records(tmp_path_factory):
    result, _ = run_campaign(tmp_path_factory.mktemp("local") / "c",
                             lambda gw: SandboxRunner(mode="auto", gateway=gw,
                                                      allowed_models=[TASK_MODEL]))
    return comparable(result.records)


def test_ray_executor_gives_the_local_executors_records(cluster, tmp_path, local_records):
    result, runner = run_campaign(
        tmp_path / "c", lambda gw: RayRunner(spec=spec(), gateway=gw, shard_tasks=2))
    assert comparable(result.records) == local_records
    assert len(runner.shards_by_node) == 2  # both nodes evaluated shards
    assert all(r.calls > 0 for r in result.records if r.status == "ok")  # costed on the host


def test_a_node_killed_mid_evaluation_has_its_shards_retried_and_records_written_once(
        cluster, tmp_path, local_records):
    doomed = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    doomed_id = doomed.node_id

    def kill_when_busy(runner: RayRunner) -> None:
        deadline = time.monotonic() + 120
        while runner.in_flight().get(doomed_id, 0) == 0:
            assert time.monotonic() < deadline, "no shard ever ran on the third node"
            time.sleep(0.05)
        cluster.remove_node(doomed, allow_graceful=False)

    d = tmp_path / "c"
    result, runner = run_campaign(
        d, lambda gw: RayRunner(spec=spec(delay_s=0.3), gateway=gw, shard_tasks=2),
        during=kill_when_busy)
    assert runner.retried_shards >= 1
    assert comparable(result.records) == local_records
    lines = [json.loads(x) for x in (d / "archive.jsonl").read_text().splitlines()]
    ids = [x["id"] for x in lines if x.get("kind") == "candidate"]
    assert len(ids) == len(set(ids)) == len(local_records)


def test_keys_stay_on_the_node_gateway_out_of_payloads_and_sandboxes(cluster):
    """A key set where the cluster runs reaches neither the shard payload nor the agent."""
    node_spec = NodeSpec(
        gateway=GatewaySettings(models={TASK_MODEL: ModelSettings(api_key_env="METASEARCH_TEST_KEY")}),
        allowed_models=[TASK_MODEL],
        make_gateway=functools.partial(scripted_task_gateway))
    code = ("import os\n"
            "def forward(self, taskInfo):\n"
            "    return ';'.join(sorted(f'{k}={v}' for k, v in os.environ.items()))\n")
    settings = AgentSettings(model=TASK_MODEL, answer_hint="an integer", protocol="sections",
                             max_tokens=64, threads=2,
                             candidate="g001-00")
    tasks = list(TOY_TASKS[:2])
    payload = pickle.dumps((node_spec, code, tasks, settings))
    assert SECRET.encode() not in payload
    # the node's processes have the key (its gateway needs it) ...
    node_key = ray.remote(num_cpus=0)(lambda: __import__("os").environ.get("METASEARCH_TEST_KEY"))
    assert ray.get(node_key.remote()) == SECRET
    with RayRunner(spec=node_spec, gateway=scripted_task_gateway(), shard_tasks=1) as runner:
        outcomes = runner.run(code, tasks, settings)
    # ... the agent in the sandbox has neither the key nor its variable
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    for o in outcomes:
        assert "PATH=" in (o.answer or "")  # the agent did print its environment
        assert SECRET not in o.answer and "METASEARCH_TEST_KEY" not in o.answer
        assert "PGPASSWORD" not in o.answer  # nor the database's password, when one is set


def test_nodes_share_the_databases_cache_and_hold_its_call_cap_exactly(cluster):
    """With the campaign on PostgreSQL, a reply one node paid for is a hit on the other,
    and the call cap is reserved call by call on the nodes, not checked per shard."""
    from postgres_kit import fresh_campaign, postgres_url

    from metasearch.execution.ray_node import SharedStore
    from metasearch.llm.scripted import scripted_gateway
    from metasearch.llm.settings import BudgetSettings
    from metasearch.testing.campaigns import toy_agent
    from metasearch.urls import without_password

    url = postgres_url()
    store = SharedStore(url=without_password(url), campaign=fresh_campaign("ray"),
                        budget=BudgetSettings(max_calls=5))
    node_spec = NodeSpec(gateway=GatewaySettings(), allowed_models=[TASK_MODEL],
                         make_gateway=functools.partial(scripted_task_gateway), shared=store)
    if db_password():  # (the test server's password is also its user's name: look for ':pw@')
        assert f":{db_password()}@".encode() not in pickle.dumps(node_spec)
    cache, budget = store.open()  # the host's view of the same rows (a worker's gateway)
    host = scripted_gateway(ScriptedModel(), cache=cache, budget=budget)
    settings = AgentSettings(model=TASK_MODEL, answer_hint="an integer", protocol="sections",
                             max_tokens=64, threads=4, candidate="g001-00")
    agent = toy_agent(1)
    with RayRunner(spec=node_spec, gateway=host, shard_tasks=1) as runner:
        first, second = (n.actor for n in runner._nodes.values())
        paid = ray.get(first.run_shard.remote(agent, [TOY_TASKS[0]], settings))
        hit = ray.get(second.run_shard.remote(agent, [TOY_TASKS[0]], settings))
        assert paid.node_id != hit.node_id
        assert (paid.cost.calls, paid.cost.cached_calls) == (1, 0)
        assert (hit.cost.calls, hit.cost.cached_calls) == (1, 1)
        assert budget.usage().calls == 1
        # eight one-task shards sent at once to both nodes: only four calls are left
        outcomes = runner.run(agent, list(TOY_TASKS[1:9]), settings)
    assert budget.usage().calls == 5
    assert sum(o.ok for o in outcomes) == 4, [o.error for o in outcomes]
    assert {o.error.kind for o in outcomes if not o.ok} == {"budget"}, [o.error for o in outcomes]
    assert len(runner.shards_by_node) == 2
    host.close()


def test_the_nodes_get_the_database_url_without_its_password(monkeypatch):
    """A local Ray instance started here inherits PGPASSWORD; the spec never holds it."""
    from types import SimpleNamespace

    from metasearch.execution.ray_executor import _shared_store
    from metasearch.llm.settings import BudgetSettings

    shared = SimpleNamespace(url="postgresql+psycopg://ms:s3cret@db:5432/metasearch",
                             name="c1", budget=SimpleNamespace(settings=BudgetSettings(max_calls=7)))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    store = _shared_store(shared, starts_ray=False)  # joining a cluster: its nodes have it
    assert store.url == "postgresql+psycopg://ms@db:5432/metasearch"
    assert store.campaign == "c1" and store.budget.max_calls == 7
    assert "PGPASSWORD" not in os.environ
    assert b"s3cret" not in pickle.dumps(_shared_store(shared, starts_ray=True))
    assert os.environ["PGPASSWORD"] == "s3cret"  # for the local instance's nodes


def test_a_spent_budget_sends_no_shard_and_node_costs_reach_the_host(cluster):
    from metasearch.llm.budget import Budget
    from metasearch.llm.scripted import scripted_gateway
    from metasearch.llm.settings import BudgetSettings
    from metasearch.testing.campaigns import toy_agent

    settings = AgentSettings(model=TASK_MODEL, answer_hint="an integer", protocol="sections",
                             max_tokens=64, threads=2, candidate="g001-00")
    host = scripted_gateway(ScriptedModel(), budget=Budget(BudgetSettings(max_calls=4)))
    with RayRunner(spec=spec(), gateway=host, shard_tasks=2) as runner:
        outcomes = runner.run(toy_agent(1), list(TOY_TASKS[:4]), settings)
        assert all(o.ok for o in outcomes)
        cost = host.snapshot().by_candidate["g001-00"]
        assert cost.calls == 4 and host.budget.usage().calls == 4  # made on the nodes
        refused = runner.run(toy_agent(1), list(TOY_TASKS[4:6]), settings)
    assert [o.error.kind for o in refused] == ["budget", "budget"]
    assert sum(runner.shards_by_node.values()) == 2  # the refused shard was never sent
    host.close()


def cli_on_cluster(cluster, tmp_path, *extra: str) -> tuple[int, str, int]:
    """``metasearch run`` of the CLI test config on the cluster (RAY_ADDRESS), one generation:
    (exit code, stderr, requests the fake endpoint got)."""
    from test_campaign_faults_cli import respond
    from test_campaign_resume_cli import ENV, config_text, finish, start

    from metasearch.testing.fake_openai import FakeOpenAIServer

    cfg = tmp_path / "c.toml"
    with FakeOpenAIServer(respond=respond) as server:
        cfg.write_text(config_text(server.url).replace(
            'sandbox = "none"', 'sandbox = "auto"\nexecutor = "ray"\n[ray]\nshard_tasks = 1'))
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("test_campaign_resume_cli.ENV", {**ENV, "RAY_ADDRESS": cluster.address})
            code, err = finish(start(cfg, tmp_path / "out", "--generations", "1", *extra))
        return code, err, len(server.bodies())


def test_the_cli_runs_a_config_on_the_cluster_in_ray_address(cluster, tmp_path):
    """``metasearch run`` with executor = "ray" joins the cluster that RAY_ADDRESS names.

    (Equal records with the local executor are shown in-process above; one CLI
    campaign here keeps CI short.)
    """
    from test_campaign_resume_cli import records

    code, err, _ = cli_on_cluster(cluster, tmp_path)
    assert code == 0, err
    assert f"executor ray: 2 nodes with a gateway and sandbox pool each, cluster {cluster.address}" \
        in err, err
    assert records(tmp_path / "out") == [("seed-chain_of_thought", "ok"), ("g001-00", "ok")]


def test_the_cli_puts_the_nodes_cache_and_budget_in_the_campaigns_database(cluster, tmp_path):
    """``run --worker --storage postgresql://...`` with executor = "ray": every call the nodes
    and the host made is counted once in the database's budget row, and the records are there."""
    from postgres_kit import fresh_campaign, postgres_url

    from metasearch.llm.shared import SqlBudget
    from metasearch.store.sql_archive import SqlArchive

    url, name = postgres_url(), fresh_campaign("rayc")
    code, err, made = cli_on_cluster(cluster, tmp_path, "--worker", "--storage", f"{url}#{name}")
    assert code == 0, err
    archive = SqlArchive.open(url, campaign=name, root=tmp_path / "out")
    assert [(r.id, r.status) for r in archive.records()] == [
        ("seed-chain_of_thought", "ok"), ("g001-00", "ok")]
    assert SqlBudget(url=url, campaign=name).usage().calls == made > 0


LOCAL_CONFIG = """
[suite]
name = "arith"
n_val = 2
n_test = 1
seed = 0
difficulty = 1

[models.meta]
model = "local/qwen2.5-coder-0.5b"

[models.task]
model = "local/qwen2.5-coder-0.5b"
temperature = 0.0
max_tokens = 96

[search]
generations = 0
seeds = ["chain_of_thought"]

[pruning]
enabled = false

[run]
concurrency = 2
sandbox = "auto"
executor = "ray"
task_timeout_s = 300
candidate_timeout_s = 300

[ray]
shard_tasks = 2

[local]
n_parallel = 2
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_real_local_model_campaign_on_the_ray_executor(cluster, tmp_path):
    """The seed on the real 0.5B model, served by the gateway of the node that runs it."""
    pytest.importorskip("xllamacpp")
    from metasearch.campaign.build import build_campaign, close_campaign
    from metasearch.config import load_config

    path = tmp_path / "local.toml"
    path.write_text(LOCAL_CONFIG)
    out = tmp_path / "campaign"
    campaign = build_campaign(load_config(path, {"run.out": str(out)}), config_text=LOCAL_CONFIG)
    t0 = time.monotonic()
    try:
        assert isinstance(campaign.runner, RayRunner)
        result = campaign.run()
        by_node = dict(campaign.runner.shards_by_node)
    finally:
        close_campaign(campaign)
    print(f"ray local-model campaign: {time.monotonic() - t0:.0f} s, shards by node {by_node}")
    (seed,) = result.records
    assert seed.status == "ok" and seed.val is not None and seed.val.n == 2
    assert seed.test is not None and seed.test.n == 1
    assert seed.calls >= 2 and seed.tokens > 0  # real calls, costed on the host's ledger
    assert sum(by_node.values()) == 2  # one validation shard, one test shard
