"""MLflow tracking against a real sqlite store (one database per test session)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from metasearch.store.archive import Archive
from metasearch.store.records import CandidateRecord, SplitScore, candidate_id, seed_id
from metasearch.store.tracking import Tracker, default_tracking_uri, read_campaign

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

CODE = "def forward(self, taskInfo):\n    return 'x'\n"


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A shared sqlite store: building its tables takes seconds, so only once."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=uri).search_experiments()  # creates the tables
    return uri, root


def tracker(store: tuple[str, Path], name: str) -> Tracker:
    uri, root = store
    return Tracker(
        tracking_uri=uri,
        experiment_name=name,
        artifact_location=(root / "artifacts" / name).as_uri(),
    )


def fill(arc: Archive) -> None:
    arc.add(
        CandidateRecord(
            id=seed_id("cot"),
            name="Chain-of-Thought",
            generation="initial",
            status="ok",
            thought="think step by step",
            val=SplitScore(0.4, 0.2, 0.6, 4, {"a": 1.0, "b": 0.0, "c": 0.6, "d": 0.0}),
            calls=4,
            tokens=400,
            cost_usd=0.001,
            wall_s=1.5,
        ),
        code=CODE,
    )
    arc.write_transcript(seed_id("cot"), "")
    arc.add(
        CandidateRecord(
            id=candidate_id(1, 0),
            name="Broken",
            generation=1,
            status="invalid",
            reason="no top-level forward",
            parent_ids=(seed_id("cot"),),
            calls=1,
            tokens=900,
            cost_usd=0.002,
        )
    )
    arc.add(
        CandidateRecord(
            id=candidate_id(1, 1),
            name="Vote | five",
            generation=1,
            status="ok",
            thought="vote",
            val=SplitScore(0.7, 0.5, 0.9, 4, {"a": 1.0, "b": 1.0, "c": 0.8, "d": 0.0}),
            parent_ids=(seed_id("cot"),),
            calls=21,
            tokens=4000,
            cost_usd=0.01,
            errors=2,
            meta={"params": {"blocks.ensemble": "self_consistency", "self_consistency.samples": 5}},
        ),
        code=CODE,
    )
    arc.write_transcript(candidate_id(1, 1), "## thought\nvote\n## code\n...")
    arc.write_results(candidate_id(1, 1), [{"task": "a", "score": 1.0}])


def runs_of(t: Tracker) -> list:
    return t.client.search_runs([t.experiment_id or ""], max_results=1000)


@pytest.mark.slow
def test_nested_runs_match_the_archive(store, tmp_path: Path) -> None:
    name = f"camp-{uuid.uuid4().hex[:8]}"
    arc = Archive.open(tmp_path)
    fill(arc)
    t = tracker(store, name)
    parent = t.start(
        {"search.generations": "1", "suite.name": "arith"}, models={"meta": "m", "task": "t"}
    )
    assert t.sync(arc) == 3
    t.finish()

    runs = runs_of(t)
    assert len(runs) == 4
    by_cid = {r.data.tags.get("metasearch.candidate_id"): r for r in runs}
    assert by_cid[None].info.run_id == parent
    assert by_cid[None].data.params["search.generations"] == "1"
    for rec in arc.records():
        run = by_cid[rec.id]
        assert run.data.tags["mlflow.parentRunId"] == parent
        assert run.data.tags["status"] == rec.status
        assert run.data.params["name"] == rec.name
        assert run.data.params["generation"] == str(rec.generation)
        assert run.data.params["parent"] == ",".join(rec.parent_ids)
        assert run.data.params["strategy"] == "adas"
        assert run.data.params["model.meta"] == "m" and run.data.params["model.task"] == "t"
        assert run.data.metrics["calls"] == rec.calls
        assert run.data.metrics["cost_usd"] == pytest.approx(rec.cost_usd)
        if rec.val is not None:
            assert run.data.metrics["val_score"] == rec.val.mean
            assert run.data.metrics["calls_per_task"] == pytest.approx(rec.calls / rec.val.n)
            assert run.data.metrics["tokens_per_task"] == pytest.approx(rec.tokens / rec.val.n)
            assert run.data.metrics["val_ci_low"] == rec.val.ci_low
            assert run.data.metrics["val_ci_high"] == rec.val.ci_high
        else:
            assert "val_score" not in run.data.metrics
            assert run.data.tags["reason"] == rec.reason
    assert by_cid["g001-01"].data.params["param.self_consistency.samples"] == "5"
    assert by_cid["g001-01"].data.params["param.blocks.ensemble"] == "self_consistency"
    assert not any(k.startswith("param.") for k in by_cid["g001-00"].data.params)
    assert by_cid["g001-00"].info.status == "FAILED"
    arts = {a.path for a in t.client.list_artifacts(by_cid["g001-01"].info.run_id)}
    assert {"agent.py", "thought.md", "transcript.md", "results.json", "scores.json"} <= arts
    hist = t.client.get_metric_history(parent, "best_val_score")
    assert [(m.step, m.value) for m in sorted(hist, key=lambda m: m.step)] == [
        (0, 0.4),
        (1, 0.4),
        (2, 0.7),
    ]
    calls = t.client.get_metric_history(parent, "cum_calls")
    assert sorted((m.step, m.value) for m in calls)[-1] == (2, 26)


@pytest.mark.slow
def test_resume_does_not_duplicate_runs(store, tmp_path: Path) -> None:
    name = f"camp-{uuid.uuid4().hex[:8]}"
    arc = Archive.open(tmp_path)
    fill(arc)
    first = tracker(store, name)
    parent = first.start({"budget.max_usd": "1.0"})
    first.log_candidate(arc.records()[0], step=0, code=CODE)
    # then a crash half-way through logging the next candidate
    half = first.client.create_run(
        first.experiment_id or "",
        tags={"metasearch.role": "candidate", "metasearch.candidate_id": "g001-00"},
    )

    second = tracker(store, name)  # a new process resuming
    assert second.start({"budget.max_usd": "5.0"}) == parent
    assert second.has_candidate(seed_id("cot"))
    assert not second.has_candidate("g001-00")  # the half-logged run is dropped and redone
    assert second.client.get_run(half.info.run_id).info.lifecycle_stage == "deleted"
    assert second.sync(arc) == 2
    assert second.sync(arc) == 0
    arc.add_test_result(candidate_id(1, 1), SplitScore(0.6, 0.4, 0.8, 8))
    assert second.sync(arc) == 0
    second.sync(arc)  # the test score is logged once
    runs = runs_of(second)
    assert len(runs) == 4
    ids = [r.data.tags.get("metasearch.candidate_id") for r in runs]
    assert len(set(ids)) == 4
    p = second.client.get_run(parent)
    assert p.data.params["budget.max_usd"] == "1.0"
    assert p.data.tags["resumed.budget.max_usd"] == "5.0"
    best = next(r for r in runs if r.data.tags.get("metasearch.candidate_id") == "g001-01")
    assert best.data.metrics["test_score"] == 0.6
    assert len(second.client.get_metric_history(best.info.run_id, "test_score")) == 1


@pytest.mark.slow
def test_read_campaign(store, tmp_path: Path) -> None:
    name = f"camp-{uuid.uuid4().hex[:8]}"
    arc = Archive.open(tmp_path)
    fill(arc)
    arc.add_test_result(candidate_id(1, 1), SplitScore(0.6, 0.4, 0.8, 8, {"x": 1.0}))
    t = tracker(store, name)
    t.start({"suite.name": "arith"})
    t.sync(arc)
    data = read_campaign(store[0], name)
    assert data.params["suite.name"] == "arith"
    assert [c.id for c in data.candidates] == [r.id for r in arc.records()]
    row = next(c for c in data.candidates if c.id == "g001-01")
    assert row.status == "ok" and row.metrics["test_score"] == 0.6 and row.name == "Vote | five"
    assert data.best_so_far[-1] == (2, 0.7)
    scores = data.candidate_scores("g001-01")
    assert scores["validation"]["scores"]["c"] == 0.8
    assert scores["test"]["scores"] == {"x": 1.0}
    from metasearch.errors import DataError

    with pytest.raises(DataError, match="no experiment"):
        read_campaign(store[0], "no-such-campaign")


def test_default_store_lives_in_the_campaign_dir(tmp_path: Path) -> None:
    t = Tracker.for_campaign(tmp_path / "quick")
    assert t.tracking_uri == default_tracking_uri(tmp_path / "quick")
    assert t.tracking_uri.endswith("/quick/mlflow.db") and t.tracking_uri.startswith("sqlite:///")
    assert t.artifact_location == (tmp_path / "quick" / "mlartifacts").resolve().as_uri()
    assert t.experiment_name == "quick"
    remote = Tracker.for_campaign(tmp_path / "quick", tracking_uri="http://127.0.0.1:5000")
    assert remote.tracking_uri == "http://127.0.0.1:5000" and remote.artifact_location is None


def test_heavy_imports_are_lazy() -> None:
    code = (
        "import sys, metasearch.config, metasearch.store.records, metasearch.store.archive, metasearch.store.tracking, metasearch.reporting.report\n"
        "bad = [m for m in ('mlflow', 'matplotlib', 'litellm') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
