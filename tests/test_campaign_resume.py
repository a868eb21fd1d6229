"""Resume after ``kill -9``: nothing complete is recomputed or re-billed, no duplicate records.

Each test runs the campaign of ``test_campaign_kit.child`` in a subprocess
(2 seeds, 2 generations with a debug round and pruning, the final test),
kills it with SIGKILL at one point, resumes it, and compares the result with
an uninterrupted run. The scripted backend logs the cache key of every real
call to ``calls.log``; the response cache is on disk in the campaign
directory, so a key that appears again after the resume was billed twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_campaign_kit import archive_lines, candidate_runs, mlflow_store

from metasearch.store.archive import Archive

KIT = Path(__file__).with_name("test_campaign_kit.py")
EXPECTED = ["seed-chain_of_thought", "seed-self_consistency", "g001-00", "g002-00"]


def child(d: Path, kill: str, *, tracked: bool = False, delay_s: float = 0.0,
          wait: bool = True, parallel: int = 1, width: int = 1) -> subprocess.Popen:
    env = os.environ | {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    args = [sys.executable, str(KIT), str(d), kill, mlflow_store() if tracked else "", str(delay_s),
            str(parallel), str(width)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    if wait:
        proc.wait(timeout=300)
    return proc


def calls(d: Path) -> list[dict]:
    log = d / "calls.log"
    return [json.loads(x) for x in log.read_text().splitlines()] if log.is_file() else []


def keys(d: Path) -> list[str]:
    return [x["key"] for x in calls(d)]


def summary(d: Path) -> list[tuple]:
    with Archive.open(d, readonly=True) as arc:
        return [
            (r.id, r.name, r.status, r.calls, r.val and (r.val.mean, r.val.n),
             r.test and r.test.mean, r.reason)
            for r in arc.records()
        ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[tuple]:
    d = tmp_path_factory.mktemp("reference")
    proc = child(d, "none")
    assert proc.returncode == 0, proc.stderr.read()
    out = summary(d)
    assert [r[0] for r in out] == EXPECTED
    statuses = {r[0]: r[2] for r in out}
    assert statuses == {"seed-chain_of_thought": "ok", "seed-self_consistency": "ok",
                        "g001-00": "ok", "g002-00": "ok"}
    assert len(set(keys(d))) == len(keys(d))  # the cache answers repeats within a run
    return out


def check_resumed(d: Path, reference: list[tuple], before: list[str], *, killed_in_call: bool,
                  tracked: bool) -> None:
    after = keys(d)[len(before):]
    # answered before the kill -> in the cache -> never sent again. Only a call cut off
    # inside the backend (by an external kill) may be repeated.
    answered = before[:-1] if killed_in_call else before
    rebilled = set(after) & set(answered)
    assert not rebilled, f"{len(rebilled)} calls were billed twice"
    # and the meta agent is not asked again what it already answered, even in other
    # words (a prompt rebuilt differently on resume would get a new key, and a new agent)
    log = calls(d)
    asked = {(x["candidate"], x["stage"]) for x in log[:len(answered)] if x["role"] == "meta"}
    again = {(x["candidate"], x["stage"]) for x in log[len(before):] if x["role"] == "meta"}
    assert not asked & again, asked & again
    lines = archive_lines(d)
    ids = [x["id"] for x in lines if x["kind"] == "candidate"]
    assert ids == EXPECTED  # every candidate once, in order
    tests = [x["id"] for x in lines if x["kind"] == "test_result"]
    assert len(tests) == len(set(tests)) == 3
    assert summary(d) == reference
    if not killed_in_call:  # every call the model was sent was billed once: all counted,
        # those a kill cut off after the last checkpoint too (the log of billed calls)
        with Archive.open(d, readonly=True) as arc:
            assert arc.state().meta["spent"]["calls"] == len(keys(d))
    assert sorted(p.name for p in (d / "agents").iterdir()) == sorted(f"{i}.py" for i in EXPECTED)
    if tracked:
        runs = candidate_runs(mlflow_store(), d.name)
        by_id = {}
        for run in runs:
            if run.info.lifecycle_stage == "active":
                by_id.setdefault(run.data.tags["metasearch.candidate_id"], []).append(run)
        assert sorted(by_id) == sorted(EXPECTED)
        assert all(len(v) == 1 for v in by_id.values())
        status = {r[0]: r[2] for r in reference}
        for cid, (run,) in by_id.items():
            assert run.data.tags["status"] == status[cid]
        tested = {r[0] for r in reference if r[5] is not None}
        assert {c for c, (run,) in by_id.items() if "test_score" in run.data.metrics} == tested


@pytest.mark.parametrize(
    ("kill", "tracked", "done_before"),
    [
        ("after_first_seed", False, 1),
        ("mid_generation", True, 2),
        ("mid_debug", False, 2),
        ("after_append", True, 3),
        ("during_test", True, 4),
    ],
)
def test_resume_after_sigkill(tmp_path, reference, kill, tracked, done_before):
    d = tmp_path / f"campaign-{kill}"
    d.mkdir()
    proc = child(d, kill, tracked=tracked)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    before = keys(d)
    with Archive.open(d, readonly=True) as arc:
        assert len(arc) == done_before
    if kill == "during_test":
        assert len([x for x in archive_lines(d) if x["kind"] == "test_result"]) >= 1
    proc = child(d, "none", tracked=tracked)
    assert proc.returncode == 0, proc.stderr.read()
    check_resumed(d, reference, before, killed_in_call=False, tracked=tracked)
    assert (d / "report.md").is_file()


@pytest.mark.parametrize("at_call", [23, 75])
def test_resume_after_an_external_kill_9_at_any_moment(tmp_path, reference, at_call):
    """kill -9 from outside, while calls are being made (it may land inside one).

    Call 75 is inside g002-00's evaluation: its meta prompt, built from records
    held in memory, must be rebuilt byte for byte from the archive on disk.
    """
    d = tmp_path / f"campaign-ext-{at_call}"
    d.mkdir()
    proc = child(d, "none", delay_s=0.01, wait=False)
    deadline = time.monotonic() + 120
    while len(keys(d)) < at_call and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    before = keys(d)
    assert len(before) >= at_call
    if at_call == 75:
        assert any(x["candidate"] == "g002-00" and x["role"] == "meta" for x in calls(d)[:-1])
    proc = child(d, "none")
    assert proc.returncode == 0, proc.stderr.read()
    check_resumed(d, reference, before, killed_in_call=True, tracked=False)


# ------------------------------------------------- three candidates in flight

PAR_EXPECTED = ["seed-chain_of_thought", "seed-self_consistency",
                *(f"g00{g}-0{i}" for g in (1, 2) for i in range(3))]


@pytest.fixture(scope="module")
def par_reference(tmp_path_factory: pytest.TempPathFactory) -> list[tuple]:
    """The same campaign run one candidate at a time: what N = 3 must reproduce."""
    d = tmp_path_factory.mktemp("par-reference")
    proc = child(d, "none", parallel=1, width=3)
    assert proc.returncode == 0, proc.stderr.read()
    serial = summary(d)
    d3 = tmp_path_factory.mktemp("par-reference-3")
    proc = child(d3, "none", parallel=3, width=3)
    assert proc.returncode == 0, proc.stderr.read()
    assert summary(d3) == serial  # records do not depend on parallel_candidates
    assert [r[0] for r in serial] == PAR_EXPECTED
    return serial


def check_par_resumed(d: Path, reference: list[tuple], before: list[str]) -> None:
    after = keys(d)[len(before):]
    # Each candidate makes one call at a time (threads=1), so the calls a kill can cut
    # off are at most each candidate's last logged one; every other call was answered,
    # so it is in the cache and must never be sent again.
    log = calls(d)[:len(before)]
    last = {x["candidate"]: i for i, x in enumerate(log)}
    answered = [x["key"] for i, x in enumerate(log) if last[x["candidate"]] != i]
    rebilled = set(after) & set(answered)
    assert not rebilled, f"{len(rebilled)} calls were billed twice"
    ids = [x["id"] for x in archive_lines(d) if x["kind"] == "candidate"]
    assert ids == PAR_EXPECTED  # every candidate once, in ask order
    assert summary(d) == reference
    tests = [x["id"] for x in archive_lines(d) if x["kind"] == "test_result"]
    assert len(tests) == len(set(tests))


@pytest.mark.parametrize("kill", ["par_gen1", "par_debug", "par_gen2"])
def test_resume_after_sigkill_with_three_candidates_in_flight(tmp_path, par_reference, kill):
    d = tmp_path / f"campaign-{kill}"
    d.mkdir()
    proc = child(d, kill, parallel=3, width=3)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    before = keys(d)
    gen = "g002-" if kill == "par_gen2" else "g001-"
    in_flight = {x["candidate"] for x in calls(d) if (x["candidate"] or "").startswith(gen)}
    assert len(in_flight) == 3, in_flight  # all three had started when the kill landed
    with Archive.open(d, readonly=True) as arc:
        assert not any(r.id.startswith(gen) for r in arc.records())
    proc = child(d, "none", parallel=3, width=3)
    assert proc.returncode == 0, proc.stderr.read()
    check_par_resumed(d, par_reference, before)


@pytest.mark.parametrize("at_call", [30, 60])
def test_resume_after_an_external_kill_9_with_three_in_flight(tmp_path, par_reference, at_call):
    d = tmp_path / f"campaign-par-ext-{at_call}"
    d.mkdir()
    proc = child(d, "none", delay_s=0.01, wait=False, parallel=3, width=3)
    deadline = time.monotonic() + 120
    while len(keys(d)) < at_call and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    before = keys(d)
    proc = child(d, "none", parallel=3, width=3)
    assert proc.returncode == 0, proc.stderr.read()
    check_par_resumed(d, par_reference, before)
