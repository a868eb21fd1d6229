"""``--tracking-uri http://...`` against a real ``mlflow server`` (one per module).

The server runs on 127.0.0.1 with an artifact root it serves itself; its
backend store is PostgreSQL where ``METASEARCH_TEST_POSTGRES`` names one (as
CI does), else sqlite. A toy campaign (scripted model) logs to it; the runs,
metrics, logged models and traces on the server must match the archive, and
``compare``, ``export --format mlflow`` and ``ui`` must work with the URI.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metasearch.cli.app import app
from metasearch.search.random import RandomStrategy
from metasearch.search.spaces import load_space
from metasearch.store.tracking import TAG_CANDIDATE, TAG_ROLE, Tracker, read_campaign
from metasearch.testing.campaigns import (
    META_MODEL,
    TASK_MODEL,
    ScriptedModel,
    close_campaign,
    toy_campaign,
)

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    backend = os.environ.get("METASEARCH_TEST_POSTGRES") or f"sqlite:///{root / 'mlflow.db'}"
    port = _free_port()
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", backend, "--artifacts-destination", str(root / "artifacts"),
         "--workers", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # ~15 s on an idle 2-core machine
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn workers
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


@pytest.fixture(scope="module")
def campaign(server, tmp_path_factory):
    """A finished toy campaign (random strategy, 2 agents + a seed) tracked on the server."""
    d = tmp_path_factory.mktemp("campaigns") / f"served-{os.getpid()}"

    def strategy(_gateway, _parallel):
        return RandomStrategy(space=load_space(ROOT / "search_spaces/reasoning.toml"),
                              generations=1, width=2, seed=5)

    c = toy_campaign(d, ScriptedModel(), strategy)
    c.tracker = Tracker.for_campaign(d, tracking_uri=server)
    c.tracker.start({"suite.name": "toy", "search.strategy": "random"},
                    models={"meta_model": META_MODEL, "task_model": TASK_MODEL})
    try:
        result = c.run()
    finally:
        close_campaign(c)
    return d, result


def test_the_servers_runs_match_the_archive(server, campaign):
    d, result = campaign
    data = read_campaign(server, d.name)
    rows = {row.id: row for row in data.candidates}
    assert set(rows) == {r.id for r in result.records}
    for r in result.records:
        row = rows[r.id]
        assert row.status == r.status
        if r.val is not None:
            assert row.metrics["val_score"] == pytest.approx(r.val.mean)
        if r.test is not None:
            assert row.metrics["test_score"] == pytest.approx(r.test.mean)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server)
    best = max((r for r in result.records if r.val is not None), key=lambda r: r.val.mean)
    assert data.candidate_scores(best.id)["validation"]["scores"] == pytest.approx(best.val.scores)
    exp = client.get_experiment_by_name(d.name)
    assert exp.artifact_location.startswith("mlflow-artifacts:")  # the server holds artifacts
    runs = client.search_runs([exp.experiment_id], f"tags.`{TAG_ROLE}` = 'candidate'")
    assert sorted(r.data.tags[TAG_CANDIDATE] for r in runs) == sorted(rows)  # once each
    one = next(r for r in runs if r.data.tags[TAG_CANDIDATE] == result.records[0].id)
    names = {a.path for a in client.list_artifacts(one.info.run_id)}
    assert names, "no artifacts reached the server's artifact root"
    traces = client.search_traces(locations=[exp.experiment_id], max_results=100)
    assert traces, "no traces on the server (TracingClient._upload_trace_data)"
    assert {t.info.request_metadata.get("mlflow.sourceRun") for t in traces} <= {
        r.info.run_id for r in runs}


def test_compare_export_and_ui_take_the_server_uri(server, campaign, tmp_path):
    d, result = campaign
    cli = CliRunner()
    out = cli.invoke(app, ["compare", str(d), "--tracking-uri", server, "--json"])
    assert out.exit_code == 0, out.output
    assert d.name in out.output
    out = cli.invoke(app, ["export", str(d), "--best", "--format", "mlflow", "--model-name",
                           f"served-{os.getpid()}", "--tracking-uri", server, "--json"])
    assert out.exit_code == 0, out.output
    exported, _ = json.JSONDecoder().raw_decode(out.output[out.output.index("{"):])
    assert exported["tracking_uri"] == server and exported["version"]
    from mlflow import MlflowClient

    mv = MlflowClient(tracking_uri=server).get_model_version(f"served-{os.getpid()}",
                                                             exported["version"])
    assert mv.run_id == exported["run_id"]
    out = cli.invoke(app, ["ui", str(d), "--tracking-uri", server])
    assert out.exit_code == 0, out.output
    assert f"{server}/#/experiments/" in out.output
    out = cli.invoke(app, ["ui", str(tmp_path / "nope"), "--tracking-uri", server])
    assert out.exit_code != 0 and "has no experiment" in out.output


def test_two_workers_on_one_server_log_each_candidate_once(server, tmp_path):
    """``run --worker --storage postgresql://... --tracking-uri SERVER`` from two processes:
    one experiment named after the campaign, one parent run, one run per record."""
    from postgres_kit import fresh_campaign, postgres_url
    from test_campaign_faults_cli import respond
    from test_campaign_resume_cli import ENV, config_text

    from metasearch.store.sql_archive import SqlArchive
    from metasearch.testing.fake_openai import FakeOpenAIServer

    url, name = postgres_url(), fresh_campaign("mlw")
    with FakeOpenAIServer(respond=respond) as fake:
        cfg = tmp_path / "c.toml"
        cfg.write_text(config_text(fake.url))
        procs = [subprocess.Popen(
            [sys.executable, "-m", "metasearch.cli.app", "run", str(cfg), "--out",
             str(tmp_path / w / "camp"), "--worker", "--storage", f"{url}#{name}",
             "--tracking-uri", server, "--generations", "1"], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True) for w in "ab"]
        ends = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[1][-2000:] for e in ends]
    ids = {r.id for r in SqlArchive.open(url, campaign=name, readonly=True).records()}
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server)
    exp = client.get_experiment_by_name(name)
    assert exp is not None, "the experiment is not named after the campaign"
    runs = client.search_runs([exp.experiment_id], f"tags.`{TAG_ROLE}` = 'candidate'")
    assert sorted(r.data.tags[TAG_CANDIDATE] for r in runs) == sorted(ids)  # once each
    parents = client.search_runs([exp.experiment_id], f"tags.`{TAG_ROLE}` = 'campaign'")
    assert len(parents) == 1
    tested = {r.data.tags[TAG_CANDIDATE] for r in runs if "test_score" in r.data.metrics}
    assert tested, "no test score reached the server"
