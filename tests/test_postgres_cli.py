"""``metasearch run --worker --storage postgresql://...`` through the real CLI, over HTTP.

Two worker processes, each with its own local ``run.out``, join one campaign
(named after ``#``) on PostgreSQL, against the fake OpenAI-compatible server
of the fault tests: every record is there once, no request body reaches the
server twice (the shared response cache), the worker whose search finished
last ran the final test and the other left it to it,
and ``archive list``, ``export`` and ``compare`` read the campaign from the
database URL and from a worker's directory. A worker with another config is
refused with one paragraph.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from postgres_kit import fresh_campaign, postgres_url
from test_campaign_faults_cli import respond
from test_campaign_resume_cli import ENV, ROOT, config_text

from metasearch.store import db
from metasearch.store.coordinator import FINAL_TEST
from metasearch.store.sql_archive import SqlArchive
from metasearch.testing.fake_openai import FakeOpenAIServer, Reply

IDS = {"seed-chain_of_thought", "g001-00", "g002-00"}


def rows(url: str, table: sa.Table, campaign: str) -> list:
    with db.open_engine(url).connect() as conn:
        return conn.execute(sa.select(table).where(table.c.campaign == campaign)).all()


def cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "metasearch.cli.app", *args], cwd=ROOT,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def done(p: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=300)
    return p.returncode, out, err


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict:
    url = postgres_url()
    d = tmp_path_factory.mktemp("workers")
    name = fresh_campaign("cli")
    with FakeOpenAIServer(respond=respond) as server:
        cfg = d / "c.toml"
        cfg.write_text(config_text(server.url))
        where = f"{url}#{name}"
        procs = [cli("run", str(cfg), "--out", str(d / w / "camp"), "--worker", "--storage",
                     where) for w in "ab"]
        ends = [done(p) for p in procs]
        bodies = [json.dumps(b, sort_keys=True) for b in server.bodies()]
        other = d / "other.toml"
        other.write_text(config_text(server.url, n_val=3))
        refused = done(cli("run", str(other), "--out", str(d / "c" / "camp"), "--worker",
                           "--storage", where))
    return {"url": url, "name": name, "where": where, "d": d, "ends": ends,
            "bodies": bodies, "refused": refused}


def test_two_cli_workers_share_one_campaign(shared: dict) -> None:
    for code, _out, err in shared["ends"]:
        assert code == 0, err[-3000:]
    arc = SqlArchive.open(shared["url"], campaign=shared["name"], readonly=True)
    ids = [r.id for r in arc.records()]
    assert sorted(ids) == sorted(IDS)
    assert all(r.status == "ok" for r in arc.records())
    twice = [b for b, n in Counter(shared["bodies"]).items() if n > 1]
    assert not twice, f"{len(twice)} request bodies reached the server twice"
    tested = [r.id for r in arc.records() if r.test is not None]
    assert tested  # the final test ran, once: a second test result of an id is refused
    errs = " ".join(" ".join(e[2].split()) for e in shared["ends"])
    assert errs.count("final test: run by another worker") == 1, errs[-3000:]
    # ... and the one that ran it is the worker whose search finished last
    workers = rows(shared["url"], db.workers, shared["name"])
    assert len(workers) == 2 and all(w.finished_at is not None for w in workers)
    last = max(workers, key=lambda w: (w.finished_at, w.worker)).worker
    assert [c.worker for c in rows(shared["url"], db.claims, shared["name"])
            if c.cid == FINAL_TEST] == [last]
    for w in "ab":
        store = json.loads((shared["d"] / w / "camp" / "store.json").read_text())
        assert store["campaign"] == shared["name"] and "metasearch:metasearch@" not in store["url"]
        assert not (shared["d"] / w / "camp" / "archive.jsonl").exists()


def test_a_worker_with_another_config_is_refused(shared: dict) -> None:
    code, out, err = shared["refused"]
    text = " ".join(err.split())
    assert code != 0 and "Traceback" not in err
    assert f"Cannot join campaign {shared['name']!r}" in text and "suite.n_val" in text


def test_archive_list_export_and_compare_read_the_database(shared: dict, tmp_path: Path) -> None:
    where, camp = shared["where"], str(shared["d"] / "a" / "camp")
    for loc in (where, camp):
        code, out, err = done(cli("archive", "list", loc, "--json"))
        assert code == 0, err
        assert sorted(r["id"] for r in json.loads(out)) == sorted(IDS)
    code, out, err = done(cli("archive", "show", where, "g001-00", "--json"))
    assert code == 0 and "def forward" in json.loads(out)["code"], err
    code, out, err = done(cli("export", where, "--format", "py", "--best", "--out",
                              str(tmp_path / "best.py")))
    assert code == 0, err
    assert "def forward" in (tmp_path / "best.py").read_text()
    code, out, err = done(cli("export", camp, "--format", "adas", "--out",
                              str(tmp_path / "adas.json")))
    assert code == 0, err
    assert len(json.loads((tmp_path / "adas.json").read_text())) == 3
    code, out, err = done(cli("compare", where, camp, "--split", "validation", "--json"))
    assert code == 0, err
    got = json.loads(out)
    assert [c["candidates"] for c in got["campaigns"]] == [3, 3]
    assert got["campaigns"][0]["best"]["id"] == got["campaigns"][1]["best"]["id"]
    assert got["campaigns"][0]["suite"] == "arith"  # the params of the campaign's row


def test_an_optuna_worker_keeps_its_study_in_the_campaigns_database(tmp_path: Path) -> None:
    """``search.strategy = "optuna"`` with ``--worker``: the study is in the campaign's
    database (schema ``optuna``, apart from an MLflow store's tables), named after it."""
    import optuna

    from metasearch.search.optuna.storage import own_schema

    url, name = postgres_url(), fresh_campaign("optcli")
    space = (ROOT / "search_spaces/reasoning.toml").read_text(encoding="utf-8")
    space = space.replace("local/qwen2.5-coder-0.5b", "openai/task").replace(
        "local/qwen2.5-coder-1.5b", "openai/task2")
    (tmp_path / "space.toml").write_text(space, encoding="utf-8")
    with FakeOpenAIServer(respond=respond) as server:
        text = config_text(server.url).replace(
            'protocol = "sections"\n[search]',
            f'protocol = "sections"\nalternatives = [{{ model = "openai/task2", api_base = '
            f'"{server.url}", protocol = "sections" }}]\n[search]').replace(
            "generations = 2", 'generations = 1\nstrategy = "optuna"').replace(
            "[search.adas]\nreflexion_rounds = 0\nrepair_rounds = 0\ndebug_rounds = 0",
            f'[search.optuna]\nspace = "{tmp_path / "space.toml"}"\nwidth = 2\n'
            'pruner = "none"')
        (tmp_path / "c.toml").write_text(text, encoding="utf-8")
        code, out, err = done(cli("run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o"),
                                  "--worker", "--storage", f"{url}#{name}"))
    assert code == 0, err[-3000:]
    arc = SqlArchive.open(url, campaign=name, readonly=True)
    assert sorted(r.id for r in arc.records()) == ["g001-00", "g001-01", "seed-chain_of_thought"]
    study = optuna.load_study(study_name=f"metasearch-{name}", storage=own_schema(url))
    done_ = {t.user_attrs["candidate_id"]: t.state.name for t in study.get_trials()
             if "candidate_id" in t.user_attrs}
    assert done_ == {"g001-00": "COMPLETE", "g001-01": "COMPLETE"}
    assert json.loads((tmp_path / "o" / "optuna.json").read_text())["study"] == \
        f"metasearch-{name}"


KNOB_AGENT = ("def forward(self, taskInfo):\n"
              "    n = tunable('passes', 1, low=1, high=3)\n"
              "    a = LLMAgentBase(['thinking', 'answer'], 'Solver')\n"
              "    for k in range(n):\n"
              "        thinking, answer = a([taskInfo], 'Solve it (pass ' + str(k) + ').')\n"
              "    return answer\n")


def knob_respond(body: dict) -> Reply:
    if body.get("model") == "meta":
        return Reply(text="## thought\nPasses as a knob.\n\n## name\nPasses\n\n"
                          f"## code\n```python\n{KNOB_AGENT}```\n")
    return respond(body)


def test_two_hybrid_workers_through_the_cli_tune_in_the_campaigns_database(
        tmp_path: Path) -> None:
    """``search.strategy = "hybrid"`` with two ``--worker`` processes: one structure, its 2
    tuning trials, each once; the study in the campaign's database, named after it."""
    import optuna

    from metasearch.search.optuna.storage import own_schema

    url, name = postgres_url(), fresh_campaign("hycli")
    with FakeOpenAIServer(respond=knob_respond) as server:
        text = config_text(server.url).replace(
            "generations = 2", 'generations = 1\nstrategy = "hybrid"').replace(
            "[search.adas]\nreflexion_rounds = 0\nrepair_rounds = 0\ndebug_rounds = 0",
            "[search.hybrid]\nrepair_rounds = 0\ndebug_rounds = 0\ntrials = 2\nbatch = 2\n"
            'pruner = "none"\nidea_hints = false')
        (tmp_path / "c.toml").write_text(text, encoding="utf-8")
        procs = [cli("run", str(tmp_path / "c.toml"), "--out", str(tmp_path / w), "--worker",
                     "--storage", f"{url}#{name}") for w in "ab"]
        results = [done(p) for p in procs]
    for code, _out, err in results:
        assert code == 0, err[-3000:]
    arc = SqlArchive.open(url, campaign=name, readonly=True)
    assert sorted(r.id for r in arc.records()) == [
        "g001-00", "g001-01", "g001-02", "seed-chain_of_thought"]
    assert {r.id: r.status for r in arc.records()}["g001-00"] == "ok"
    study = optuna.load_study(study_name=f"metasearch-hybrid-{name}-g001-00",
                              storage=own_schema(url))
    cids = sorted(t.user_attrs["candidate_id"] for t in study.get_trials()
                  if "candidate_id" in t.user_attrs)
    assert cids == ["g001-00", "g001-01", "g001-02"]
    assert json.loads((tmp_path / "a" / "hybrid.json").read_text())["prefix"] == \
        f"metasearch-hybrid-{name}"
