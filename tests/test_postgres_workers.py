"""Several search workers on one campaign in PostgreSQL, each its own process (scripted model).

- one worker SIGKILLed midway: the other takes over its claimed slot once the
  lease expires and finishes; no record is lost or duplicated, and no reply
  is paid for twice (each worker logs the replies it was billed for);
- the survivor runs the final test (that the worker finishing last runs it, and only
  it, is shown through the CLI in test_postgres_cli.py);
- the global call cap holds exactly across two workers;
- a reply one gateway paid for is a cache hit for another.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from postgres_kit import fresh_campaign, postgres_url

from metasearch.llm.settings import BudgetSettings
from metasearch.llm.shared import SqlBudget, SqlResponseCache
from metasearch.llm.types import BudgetExceeded, LLMRequest
from metasearch.store import db
from metasearch.store.sql_archive import SqlArchive

KIT = Path(__file__).parent / "postgres_worker_kit.py"
EXPECTED = {"seed-toy_seed", "g001-00", "g001-01", "g001-02"}


@pytest.fixture(scope="module")
def pg_url() -> str:
    return postgres_url()


def start(url: str, campaign: str, d: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(KIT), url, campaign, str(d), "--generations", "1", "--width", "3",
         *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])})


def finish(p: subprocess.Popen[bytes], timeout: float = 240) -> str:
    out, _ = p.communicate(timeout=timeout)
    text = out.decode(errors="replace")
    assert p.returncode == 0, text[-3000:]
    return text


def paid(d: Path) -> list[str]:
    log = d / "paid.log"
    return log.read_text().split() if log.exists() else []


def rows(url: str, table: sa.Table, campaign: str) -> list[Any]:
    with db.open_engine(url).connect() as conn:
        return conn.execute(sa.select(table).where(table.c.campaign == campaign)).all()


def worker_id(d: Path) -> str | None:
    f = d / "worker.json"
    return json.loads(f.read_text())["worker"] if f.exists() else None


@pytest.mark.parametrize("strategy", ["random", "optuna", "hybrid"])
def test_a_killed_worker_loses_nothing_and_is_billed_once(pg_url: str, tmp_path: Path,
                                                          strategy: str) -> None:
    name = fresh_campaign("kill")
    dirs = [tmp_path / "a", tmp_path / "b"]
    procs = [start(pg_url, name, d, "--delay", "0.1", "--lease", "2", "--strategy", strategy)
             for d in dirs]
    deadline = time.monotonic() + 150
    victim = None
    while victim is None and time.monotonic() < deadline:
        # SIGKILL a worker once a record is committed and it holds a claim it has not
        # finished, having paid for replies (those the other worker must get from the cache)
        committed = {r.cid for r in rows(pg_url, db.records, name)}
        open_claims = {r.worker: r.cid for r in rows(pg_url, db.claims, name)
                       if r.cid not in committed and not r.cid.startswith("~")}
        for i, d in enumerate(dirs):
            if committed and worker_id(d) in open_claims and len(paid(d)) >= 5:
                victim, held = i, open_claims[worker_id(d)]
                break
        else:
            time.sleep(0.05)
    assert victim is not None, "no worker ever held a claim next to a committed record"
    os.kill(procs[victim].pid, signal.SIGKILL)
    procs[victim].wait(timeout=30)
    dead, alive = dirs[victim], dirs[1 - victim]
    finish(procs[1 - victim])

    arc = SqlArchive.open(pg_url, campaign=name, readonly=True)
    ids = [r.id for r in arc.records()]
    expected = EXPECTED if strategy != "hybrid" else {  # 3 structures, 3 trials each
        "seed-toy_seed", *(f"g001-{i:02d}" for i in range(12))}
    assert sorted(ids) == sorted(expected)  # nothing lost, nothing twice
    assert held in ids  # the dead worker's slot was taken over
    got = json.loads((alive / "result.json").read_text())
    assert got["tester"] == worker_id(alive) and got["tested"]  # the survivor ran the test
    assert all(arc.read_agent(i) for i in ids if arc.get(i).code_path)
    dead_paid, alive_paid = paid(dead), paid(alive)
    assert dead_paid and alive_paid
    assert not set(dead_paid) & set(alive_paid), "a reply was paid for by both workers"
    assert len(alive_paid) == len(set(alive_paid)) and len(dead_paid) == len(set(dead_paid))
    usage = SqlBudget(url=pg_url, campaign=name).usage()
    # the dead worker may have been killed with calls reserved but unanswered (never paid)
    assert len(dead_paid) + len(alive_paid) <= usage.calls <= len(dead_paid + alive_paid) + 16
    if strategy == "optuna":  # one shared study: each slot one trial, every trial told
        assert_one_study(pg_url, name, {i for i in ids if not i.startswith("seed-")})
        claimed = {r.cid for r in rows(pg_url, db.claims, name)}
        assert {"~optuna-study", "~optuna-g001"} <= claimed  # created and asked once
    if strategy == "hybrid":  # each structure's study: its defaults and trials once, all told
        import optuna

        from metasearch.search.optuna.storage import own_schema

        for s in ("g001-00", "g001-04", "g001-08"):
            study = optuna.load_study(study_name=f"metasearch-hybrid-{name}-{s}",
                                      storage=own_schema(pg_url))
            cids = [t.user_attrs["candidate_id"] for t in study.trials
                    if "candidate_id" in t.user_attrs]
            first = int(s[-2:])
            assert sorted(cids) == [f"g001-{first + k:02d}" for k in range(4)]
            assert all(t.state.is_finished() for t in study.trials)


def assert_one_study(url: str, campaign: str, slots: set[str]) -> None:
    """The campaign's study holds one finished trial per slot, and nothing else unfinished."""
    import optuna

    from metasearch.search.optuna.storage import own_schema

    study = optuna.load_study(study_name=f"metasearch-{campaign}", storage=own_schema(url))
    trials = study.get_trials(deepcopy=False)
    by_cid = [t.user_attrs["candidate_id"] for t in trials if "candidate_id" in t.user_attrs]
    assert sorted(by_cid) == sorted(slots)  # no slot asked twice, none left out
    assert all(t.state.is_finished() for t in trials if "candidate_id" in t.user_attrs)
    # a cid-less trial is one cut off inside ask (a killed asker): failed, never running
    assert all(t.state == optuna.trial.TrialState.FAIL for t in trials
               if "candidate_id" not in t.user_attrs and t.state != optuna.trial.TrialState.WAITING)


def two_workers(url: str, tmp_path: Path, *args: str) -> tuple[str, list[str]]:
    """Two worker processes of a new campaign run to their end: its name and record ids."""
    name = fresh_campaign("two")
    procs = [start(url, name, tmp_path / x, *args) for x in "ab"]
    for p in procs:
        finish(p)
    arc = SqlArchive.open(url, campaign=name, readonly=True)
    return name, sorted(r.id for r in arc.records())


def test_two_hybrid_workers_share_the_structures_and_their_studies(
        pg_url: str, tmp_path: Path) -> None:
    """Two processes: every structure and trial slot once, each study's defaults and batches
    asked once (one trial per slot, nothing left running), no reply paid twice."""
    import optuna

    from metasearch.search.optuna.storage import own_schema

    name, ids = two_workers(pg_url, tmp_path, "--strategy", "hybrid", "--generations", "2",
                            "--width", "1", "--delay", "0.05")
    arc = SqlArchive.open(pg_url, campaign=name, readonly=True)
    # g001-00 is tuned by 3 trials; g002-00 raises, is debugged into two agents and tuned
    assert ids == sorted({"seed-toy_seed", "g001-00", "g001-01", "g001-02", "g001-03",
                          "g002-00", "g002-01", "g002-02", "g002-03"})
    storage = own_schema(pg_url)
    for structure in ("g001-00", "g002-00"):
        study = optuna.load_study(study_name=f"metasearch-hybrid-{name}-{structure}",
                                  storage=storage)
        cids = [t.user_attrs["candidate_id"] for t in study.trials
                if "candidate_id" in t.user_attrs]
        g = structure[:4]
        assert sorted(cids) == [structure, f"{g}-01", f"{g}-02", f"{g}-03"]
        assert all(t.state.is_finished() for t in study.trials)
    assert not set(paid(tmp_path / "a")) & set(paid(tmp_path / "b"))
    assert {r.id for r in arc.records() if r.parent_ids == ("g001-00",)} == {
        "g001-01", "g001-02", "g001-03"}


def test_the_global_call_cap_is_exact_across_workers(pg_url: str, tmp_path: Path) -> None:
    name, cap = fresh_campaign("cap"), 37
    procs = [start(pg_url, name, tmp_path / x, "--max-calls", str(cap), "--parallel", "2")
             for x in "ab"]
    for p in procs:
        finish(p)
    billed = paid(tmp_path / "a") + paid(tmp_path / "b")
    assert len(billed) == cap and len(set(billed)) == cap
    assert SqlBudget(url=pg_url, campaign=name).usage().calls == cap
    assert all(json.loads((tmp_path / x / "result.json").read_text())["stopped"] for x in "ab")


def test_the_search_call_budget_counts_every_workers_calls(pg_url: str, tmp_path: Path) -> None:
    """budget.max_search_calls = 1: once the seed is billed, no worker starts a slot (each
    worker counting only its own calls, the one that did not run the seed would)."""
    name = fresh_campaign("msc")
    procs = [start(pg_url, name, tmp_path / x, "--max-search-calls", "1") for x in "ab"]
    for p in procs:
        finish(p)
    arc = SqlArchive.open(pg_url, campaign=name, readonly=True)
    assert [r.id for r in arc.records()] == ["seed-toy_seed"]


def test_reserve_refuses_at_the_cap_and_release_gives_back(pg_url: str) -> None:
    name = fresh_campaign("res")
    one = SqlBudget(BudgetSettings(max_calls=2), url=pg_url, campaign=name)
    two = SqlBudget(BudgetSettings(max_calls=2), url=pg_url, campaign=name)  # another worker
    one.reserve()
    two.reserve()
    with pytest.raises(BudgetExceeded, match="max_calls = 2"):
        one.reserve()
    two.release()
    one.reserve()
    one.charge(usd=0.5, tokens=10)
    assert two.usage().calls == 2 and two.usage().usd == 0.5 and two.usage().tokens == 10


def test_a_reply_paid_by_one_gateway_is_a_hit_for_another(pg_url: str) -> None:
    from metasearch.llm.scripted import scripted_gateway

    name = fresh_campaign("hit")
    served: list[str] = []

    def model(req: LLMRequest) -> str:
        served.append(req.candidate)
        return "## answer\n4"

    gws = [scripted_gateway(model, cache=SqlResponseCache(url=pg_url, campaign=name),
                            budget=SqlBudget(url=pg_url, campaign=name)) for _ in range(2)]
    try:
        req = LLMRequest(model="local/task-scripted", messages=({"role": "user",
                                                                 "content": "2+2?"},),
                         role="task", candidate="first")
        first = gws[0].complete(req)
        second = gws[1].complete(dataclasses.replace(req, candidate="second"))
    finally:
        for gw in gws:
            gw.close()
    assert (first.cached, second.cached) == (False, True)
    assert second.text == first.text and served == ["first"]
    assert SqlBudget(url=pg_url, campaign=name).usage().calls == 1
