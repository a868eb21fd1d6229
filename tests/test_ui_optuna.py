"""``metasearch ui CAMPAIGN --optuna``: optuna-dashboard on the campaign's study, on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metasearch.cli.app import app
from metasearch.search.optuna.storage import (
    StudyLocation,
    default_location,
    open_storage,
    write_location,
)

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_study(campaign: Path, name: str = "camp-study", storage: str | None = None) -> None:
    import optuna

    campaign.mkdir(parents=True, exist_ok=True)
    loc = StudyLocation(storage, name) if storage else default_location(campaign, name)
    study = optuna.create_study(storage=open_storage(loc.storage), study_name=name,
                                direction="maximize")
    for x in (0.2, 0.7):
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        study.tell(trial, x)
    write_location(campaign, loc)


def serve(campaign: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "metasearch.cli.app", "ui", str(campaign), "--optuna",
         "--port", str(port), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    return proc, port


def studies(proc: subprocess.Popen[str], port: int, timeout: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ui exited with {proc.returncode}: {proc.stdout.read()}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                return json.loads(r.read())["study_summaries"]
        except OSError:
            time.sleep(0.25)
    raise AssertionError("optuna-dashboard did not answer in time")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_ui_optuna_serves_the_campaigns_study(tmp_path: Path, kind: str) -> None:
    campaign = tmp_path / "camp"
    make_study(campaign, storage=f"sqlite:///{tmp_path / 'study.db'}" if kind == "sqlite" else None)
    proc, port = serve(campaign)
    try:
        got = studies(proc, port)
        assert [s["study_name"] for s in got] == ["camp-study"]
        sid = got[0]["study_id"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{sid}", timeout=5) as r:
            detail = json.loads(r.read())
        assert len(detail["trials"]) == 2
    finally:
        out = stop(proc)
    assert f"http://127.0.0.1:{port}/dashboard/studies/" in out


def test_a_moved_campaign_finds_its_journal_beside_optuna_json(tmp_path: Path) -> None:
    make_study(tmp_path / "camp")
    shutil.move(tmp_path / "camp", tmp_path / "moved")
    proc, port = serve(tmp_path / "moved")
    try:
        assert [s["study_name"] for s in studies(proc, port)] == ["camp-study"]
    finally:
        stop(proc)


def test_no_study_is_one_clear_paragraph(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["ui", str(tmp_path), "--optuna"])
    assert res.exit_code != 0
    text = " ".join(res.output.split())
    assert "has no Optuna study (optuna.json is missing)" in text
    assert "opens the MLflow UI" in text and "Traceback" not in text


def test_a_storage_without_the_study(tmp_path: Path) -> None:
    make_study(tmp_path / "camp")
    other = f"sqlite:///{tmp_path / 'other.db'}"
    res = CliRunner().invoke(app, ["ui", str(tmp_path / "camp"), "--optuna", "--storage", other])
    assert res.exit_code != 0
    assert "has no study named 'camp-study'" in " ".join(res.output.split())
