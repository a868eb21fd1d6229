"""The per-user template of an empty MLflow store (metasearch/store/mlflow_store.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from metasearch.store.mlflow_store import seed_sqlite_store, template_path
from metasearch.store.tracking import Tracker


def test_a_seeded_store_is_a_working_mlflow_store(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    root = tmp_path / "camp"
    root.mkdir()
    assert seed_sqlite_store(root / "mlflow.db", root / "mlartifacts", cache_dir=cache)
    assert template_path(cache).is_file()
    assert not seed_sqlite_store(root / "mlflow.db", root / "mlartifacts", cache_dir=cache)

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    (default,) = client.search_experiments()
    assert default.name == "Default"
    assert default.artifact_location == str(root / "mlartifacts" / "0")
    exp = client.create_experiment("camp", artifact_location=(root / "mlartifacts").as_uri())
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "val_score", 0.5)
    assert client.get_run(run.info.run_id).data.metrics == {"val_score": 0.5}

    # a second campaign copies the template: same schema, none of the first one's rows
    other = tmp_path / "other"
    other.mkdir()
    assert seed_sqlite_store(other / "mlflow.db", other / "mlartifacts", cache_dir=cache)
    with sqlite3.connect(other / "mlflow.db") as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)
        assert con.execute("SELECT name FROM experiments").fetchall() == [("Default",)]


def test_an_unusable_cache_falls_back_to_mlflow_creating_the_store(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    root = tmp_path / "camp"
    root.mkdir()
    assert not seed_sqlite_store(root / "mlflow.db", root / "mlartifacts", cache_dir=blocker)
    assert not (root / "mlflow.db").exists()
    assert list(root.iterdir()) == []  # no partial copy left behind


def test_the_tracker_seeds_its_campaign_store(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("METASEARCH_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "camp"
    root.mkdir()
    tracker = Tracker.for_campaign(root)
    assert tracker.client.search_experiments()
    assert template_path(tmp_path / "cache").is_file()
    assert (root / "mlflow.db").is_file()
