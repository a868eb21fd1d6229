"""The Pareto front (validation score against cost per task): pure, in report.md, in MLflow, in compare."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from test_export_helpers import fresh_db, make_campaign, shared_store
from typer.testing import CliRunner

from metasearch.reporting.compare import front_of_rows, load_campaigns, summarize
from metasearch.reporting.pareto import FrontPoint, front_of_records, pareto_front
from metasearch.reporting.report import write_report
from metasearch.store.archive import Archive
from metasearch.store.records import CandidateRecord, SplitScore
from metasearch.store.tracking import TAG_PARETO, Tracker

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

CODE = "def forward(self, taskInfo):\n    return 'x'\n"


def pt(pid: str, score: float, cost: float) -> FrontPoint:
    return FrontPoint(id=pid, name=pid, score=score, ci_low=score, ci_high=score, n=10, cost=cost)


def rec(cid: str, mean: float | None, *, calls: int = 10, usd: float = 0.0, n: int = 10,
        status: str = "ok") -> CandidateRecord:
    return CandidateRecord(
        id=cid, name=f"agent {cid}", generation=1, status=status,  # type: ignore[arg-type]
        val=SplitScore(mean, max(0.0, mean - 0.2), min(1.0, mean + 0.2), n)
        if mean is not None else None,
        calls=calls, cost_usd=usd)


def ids(points: tuple[FrontPoint, ...]) -> list[str]:
    return [p.id for p in points]


# --------------------------------------------------------------------------- pure


def test_dominated_points_are_dropped_and_the_front_is_cheapest_first() -> None:
    points = [pt("a", 0.5, 2.0), pt("b", 0.7, 4.0), pt("c", 0.6, 5.0),  # c: b is better, cheaper
              pt("d", 0.4, 3.0), pt("e", 0.9, 9.0), pt("f", 0.2, 1.0)]
    assert ids(pareto_front(points)) == ["f", "a", "b", "e"]


def test_ties() -> None:
    # exact ties are kept (neither dominates the other); a same-score point that costs more
    # is dominated, and so is a same-cost point that scores less
    points = [pt("a", 0.5, 2.0), pt("b", 0.5, 2.0), pt("c", 0.5, 3.0), pt("d", 0.4, 2.0)]
    assert ids(pareto_front(points)) == ["a", "b"]


def test_single_point_and_empty() -> None:
    assert ids(pareto_front([pt("a", 0.1, 7.0)])) == ["a"]
    assert pareto_front([]) == ()


def test_all_zero_cost_keeps_the_best_scores_only() -> None:
    points = [pt("a", 0.3, 0.0), pt("b", 0.6, 0.0), pt("c", 0.6, 0.0), pt("d", 0.1, 0.0)]
    assert ids(pareto_front(points)) == ["b", "c"]


def test_records_use_calls_per_task_when_nothing_cost_money() -> None:
    front = front_of_records([
        rec("seed-a", 0.5, calls=10),             # 1 call / task
        rec("g001-00", 0.7, calls=50),            # 5 calls / task
        rec("g001-01", 0.6, calls=60, n=10),      # dominated by g001-00
        rec("g001-02", 0.9, calls=2, n=4, status="pruned"),  # fewer tasks: left out
        rec("g001-03", None, status="invalid"),
        rec("g001-04", 0.0, calls=5, status="failed"),
    ])
    assert front.unit == "calls" and front.cost_label == "LLM calls per task"
    assert ids(front.points) == ["seed-a", "g001-00", "g001-01"]
    assert ids(front.front) == ["seed-a", "g001-00"]
    assert front.front[1].cost == 5.0 and front.pruned == 1
    assert front.ids == {"seed-a", "g001-00"}


def test_records_use_usd_per_task_when_any_record_cost_money() -> None:
    # the invalid proposal's $ (a meta agent call) is enough to switch the unit to USD
    front = front_of_records([
        rec("seed-a", 0.5, calls=10, usd=0.0),
        rec("g001-00", 0.7, calls=50, usd=0.02),
        rec("g001-01", 0.6, calls=5, usd=0.05),
        rec("g001-02", None, calls=1, usd=0.001, status="invalid"),
    ])
    assert front.unit == "usd"
    assert ids(front.front) == ["seed-a", "g001-00"]
    assert front.front[1].cost == pytest.approx(0.002)
    assert front.to_json()["cost"] == "USD per task"


# --------------------------------------------------------------------------- report


def test_report_has_the_front_plot_and_table(tmp_path: Path) -> None:
    records = [rec("seed-a", 0.5, calls=10), rec("g001-00", 0.7, calls=50),
               rec("g001-01", 0.6, calls=60), rec("g001-02", 0.2, calls=2, n=4, status="pruned")]
    text = write_report(tmp_path, records).read_text()
    png = tmp_path / "pareto.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert "## Validation score against cost" in text
    assert "![validation score against cost per task](pareto.png)" in text
    assert "LLM calls per validation task" in text
    assert "3 scored (`ok`) candidate(s) take part; 1 pruned candidate(s) are left out" in text
    section = text.split("## Validation score against cost")[1].split("## ")[0]
    assert "| `seed-a` | agent seed-a | 50.0 [30.0, 70.0] (n=10) | 1.0 |" in section
    assert "| `g001-00` | agent g001-00 | 70.0 [50.0, 90.0] (n=10) | 5.0 |" in section
    assert "`g001-01`" not in section and "`g001-02`" not in section
    doc = json.loads((tmp_path / "pareto.json").read_text())
    assert doc["unit"] == "calls" and [p["id"] for p in doc["front"]] == ["seed-a", "g001-00"]


def test_report_without_scored_candidates_has_no_front(tmp_path: Path) -> None:
    text = write_report(tmp_path, [rec("g001-00", None, status="invalid")]).read_text()
    assert "Validation score against cost" not in text
    assert not (tmp_path / "pareto.png").exists()


# --------------------------------------------------------------------------- MLflow


@pytest.mark.slow
def test_front_members_are_tagged_in_mlflow(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("tag") / f"camp-{uuid.uuid4().hex[:8]}"
    uri = fresh_db(tmp_path_factory, root)
    records = [rec("seed-a", 0.5, calls=10), rec("g001-00", 0.7, calls=50),
               rec("g001-01", 0.6, calls=60), rec("g001-02", None, status="invalid")]
    arc = Archive.open(root)
    for r in records:
        arc.add(r, code=CODE)
    tracker = Tracker(tracking_uri=uri, experiment_name=root.name,
                      artifact_location=(root / "mlartifacts").as_uri())
    tracker.start({})
    tracker.sync(arc)
    write_report(root, arc.records())
    tracker.log_report(root)  # as the campaign loop calls it: the front from pareto.json
    runs = tracker.client.search_runs([tracker.experiment_id or ""], max_results=100)
    tags = {r.data.tags.get("metasearch.candidate_id"): r.data.tags.get(TAG_PARETO)
            for r in runs if r.data.tags.get("metasearch.role") == "candidate"}
    assert tags == {"seed-a": "true", "g001-00": "true", "g001-01": "false", "g001-02": "false"}
    parent = tracker.client.list_artifacts(tracker.parent_run_id or "")
    assert {"report.md", "progress.png", "pareto.png", "pareto.json"} <= {a.path for a in parent}
    # the front moves as records arrive: a later, better and cheaper candidate retags
    arc.add(rec("g002-00", 0.8, calls=20), code=CODE)
    tracker.sync(arc)
    write_report(root, arc.records())
    tracker.log_report(root)
    run = tracker.client.get_run
    assert run(tracker._runs["g001-00"]).data.tags[TAG_PARETO] == "false"
    assert run(tracker._runs["g002-00"]).data.tags[TAG_PARETO] == "true"
    arc.close()


# --------------------------------------------------------------------------- compare


@pytest.mark.slow
def test_compare_shows_each_campaigns_front(tmp_path_factory: pytest.TempPathFactory) -> None:
    uri, _ = shared_store(tmp_path_factory)
    base = tmp_path_factory.mktemp("cmp-front")
    a = base / f"front-a-{uuid.uuid4().hex[:6]}"
    b = base / f"front-b-{uuid.uuid4().hex[:6]}"
    make_campaign(a, [(rec("seed-a", 0.5, calls=10), CODE), (rec("g001-00", 0.7, calls=50), CODE),
                      (rec("g001-01", 0.6, calls=60), CODE)], uri=uri)
    make_campaign(b, [(rec("seed-a", 0.4, usd=0.01), CODE),
                      (rec("g001-00", 0.3, usd=0.001), CODE),
                      (rec("g001-01", 0.9, calls=3, n=4, status="pruned"), CODE)], uri=uri)
    data = load_campaigns([a, b], tracking_uri=uri)
    fa, fb = (front_of_rows(d.candidates) for d in data)
    assert fa.unit == "calls" and ids(fa.front) == ["seed-a", "g001-00"]
    assert fb.unit == "usd" and ids(fb.front) == ["g001-00", "seed-a"] and fb.pruned == 1
    # the same front as the report's, computed from the records
    assert ids(fa.front) == ids(front_of_records(Archive.open(a, readonly=True).records()).front)
    assert summarize(data[0]).to_json()["pareto_front"]["front"][1]["id"] == "g001-00"

    from metasearch.cli.app import app

    res = CliRunner().invoke(app, ["compare", str(a), str(b), "--tracking-uri", uri],
                             env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert f"Pareto front of {a.name}" in res.output and "LLM calls per task" in res.output
    assert f"Pareto front of {b.name}" in res.output and "USD per task" in res.output
    assert "1 pruned left out" in res.output
    res = CliRunner().invoke(app, ["compare", str(a), str(b), "--tracking-uri", uri, "--json"])
    doc = json.loads(res.output)
    assert [p["id"] for p in doc["campaigns"][1]["pareto_front"]["front"]] == ["g001-00", "seed-a"]


# --------------------------------------------------------------------------- a whole campaign


@pytest.mark.slow
def test_a_random_campaign_reports_its_front_and_knobs_and_tags_mlflow(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    from metasearch.search.random import RandomStrategy
    from metasearch.search.spaces import load_space
    from metasearch.testing.campaigns import ScriptedModel, close_campaign, toy_campaign

    root = tmp_path_factory.mktemp("e2e") / "random-camp"
    uri = fresh_db(tmp_path_factory, root)
    space = load_space("search_spaces/reasoning.toml")
    campaign = toy_campaign(root, ScriptedModel(), lambda _gw, _n: RandomStrategy(
        space=space, generations=2, width=3, seed=0))
    campaign.tracker = Tracker(tracking_uri=uri, experiment_name=root.name,
                               artifact_location=(root / "mlartifacts").as_uri())
    campaign.tracker.start({})
    try:
        result = campaign.run()
    finally:
        close_campaign(campaign)
    text = (root / "report.md").read_text()
    front = front_of_records(result.records)
    assert front.points and "## Validation score against cost" in text
    assert "## Which knobs mattered" in text  # 6 trials: computed, or one line saying why
    runs = campaign.tracker.client.search_runs([campaign.tracker.experiment_id or ""],
                                               max_results=100)
    tags = {r.data.tags.get("metasearch.candidate_id"): r.data.tags.get(TAG_PARETO)
            for r in runs if r.data.tags.get("metasearch.role") == "candidate"}
    assert set(tags) == {r.id for r in result.records}
    assert {cid for cid, v in tags.items() if v == "true"} == set(front.ids)
