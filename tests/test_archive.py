"""The archive: append-only, atomic, crash-tolerant, no duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from metasearch.errors import DataError
from metasearch.store.archive import Archive, ArchiveLockedError
from metasearch.store.records import (
    CampaignState,
    CandidateRecord,
    DuplicateRecordError,
    SplitScore,
    UnknownCandidateError,
    candidate_id,
    imported_id,
    progress_curve,
    seed_id,
)

CODE = "def forward(self, taskInfo):\n    return 'x'\n"


def score(mean: float, n: int = 4) -> SplitScore:
    return SplitScore(mean, max(0.0, mean - 0.1), min(1.0, mean + 0.1), n, {"t1": 1.0, "t2": mean})


def rec(cid: str, status: str = "ok", val: float | None = 0.5, **kw) -> CandidateRecord:
    return CandidateRecord(
        id=cid,
        name=kw.pop("name", f"Agent {cid}"),
        generation=kw.pop("generation", 1),
        status=status,  # type: ignore[arg-type]
        val=score(val) if val is not None else None,
        **kw,
    )


def test_ids_are_deterministic() -> None:
    assert candidate_id(3, 1) == "g003-01"
    assert seed_id("chain of thought") == "seed-chain_of_thought"
    assert imported_id(2, "LLM Debate") == "imp-002-LLM_Debate"
    with pytest.raises(ValueError):
        rec("../evil")
    with pytest.raises(ValueError):
        rec("g001-00", status="weird")


def test_round_trip_all_fields(tmp_path: Path) -> None:
    r = CandidateRecord(
        id="g002-03",
        name="Vote",
        thought="## Insights\nvote",
        generation=2,
        parent_ids=("seed-cot", "g001-00"),
        status="ok",
        val=score(0.75),
        calls=12,
        tokens=3400,
        cost_usd=0.01,
        wall_s=4.5,
        errors=1,
        fingerprint="abc",
        meta={"yield": {"parsed": True}},
    )
    with Archive.open(tmp_path) as arc:
        stored = arc.add(r, code=CODE)
    assert stored.code_path == "agents/g002-03.py"
    again = Archive.open(tmp_path, readonly=True).get("g002-03")
    assert again == stored
    assert again.parent_ids == ("seed-cot", "g001-00")
    assert again.val is not None and again.val.scores == {"t1": 1.0, "t2": 0.75}
    assert (tmp_path / "agents" / "g002-03.py").read_text() == CODE


def test_every_status_is_kept_with_reason(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as arc:
        arc.add(rec(seed_id("cot"), generation="initial"))
        for i, st in enumerate(["invalid", "failed", "timeout", "pruned", "budget"]):
            arc.add(rec(candidate_id(1, i), status=st, val=None, reason=f"because {st}"))
    got = Archive.open(tmp_path, readonly=True).records()
    assert [r.status for r in got] == ["ok", "invalid", "failed", "timeout", "pruned", "budget"]
    assert [r.reason for r in got[1:]] == [
        f"because {s}" for s in ["invalid", "failed", "timeout", "pruned", "budget"]
    ]


def test_duplicate_id_rejected_also_after_reopen(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as arc:
        arc.add(rec("g001-00"))
        with pytest.raises(DuplicateRecordError):
            arc.add(rec("g001-00", val=0.9))
    with Archive.open(tmp_path) as arc:
        with pytest.raises(DuplicateRecordError):
            arc.add(rec("g001-00"))
        assert len(arc) == 1
    lines = (tmp_path / "archive.jsonl").read_text().splitlines()
    assert len(lines) == 1


def test_test_results_fold_in(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as arc:
        arc.add(rec("g001-00"))
        assert arc.get("g001-00").test is None
        folded = arc.add_test_result("g001-00", score(0.4, n=16))
        assert folded.test is not None and folded.test.n == 16
        with pytest.raises(DuplicateRecordError):
            arc.add_test_result("g001-00", score(0.4))
        with pytest.raises(UnknownCandidateError):
            arc.add_test_result("g009-00", score(0.4))
    again = Archive.open(tmp_path, readonly=True)
    got = again.get("g001-00")
    assert got.test is not None and got.test.mean == 0.4
    kinds = [json.loads(line)["kind"] for line in again.path.read_text().splitlines()]
    assert kinds == ["candidate", "test_result"]  # append-only: nothing rewritten


def test_best_uses_validation_only(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as arc:
        assert arc.best() is None
        arc.add(rec("seed-a", val=0.5, generation="initial"))
        arc.add(rec("g001-00", val=0.6))
        arc.add(rec("g001-01", status="pruned", val=0.9))  # partial score: not eligible
        arc.add(rec("g001-02", status="failed", val=None))
        arc.add_test_result("seed-a", score(0.99))  # a great test score must not matter
        arc.add_test_result("g001-00", score(0.1))
        best = arc.best()
        assert best is not None and best.id == "g001-00"
        with pytest.raises(ValueError):
            arc.best("test")  # type: ignore[arg-type]


def test_best_tie_breaks_on_ci_low_then_age(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as arc:
        arc.add(replace(rec("g001-00"), val=SplitScore(0.5, 0.3, 0.7, 4)))
        arc.add(replace(rec("g001-01"), val=SplitScore(0.5, 0.4, 0.6, 4)))
        arc.add(replace(rec("g001-02"), val=SplitScore(0.5, 0.4, 0.6, 4)))
        assert arc.best().id == "g001-01"  # type: ignore[union-attr]


def test_by_fingerprint(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as arc:
        arc.add(rec("g001-00", fingerprint="f1"))
        arc.add(rec("g001-01", status="invalid", val=None, fingerprint="f1", reason="duplicate"))
        arc.add(rec("g001-02", fingerprint="f2"))
        assert [r.id for r in arc.by_fingerprint("f1")] == ["g001-00", "g001-01"]
        assert arc.by_fingerprint("zzz") == ()


def test_checkpoint_last_wins(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as arc:
        assert arc.state() is None
        arc.checkpoint(CampaignState(generation=-1, step="seeds"))
        arc.add(rec("g001-00"))
        arc.checkpoint(CampaignState(generation=1, step="generation", meta={"n": 1}))
    st = Archive.open(tmp_path, readonly=True).state()
    assert st is not None and st.generation == 1 and st.step == "generation" and st.meta == {"n": 1}


def test_torn_last_line_is_dropped_and_repaired(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as arc:
        arc.add(rec("g001-00"))
        arc.add(rec("g001-01"))
    path = tmp_path / "archive.jsonl"
    good = path.read_bytes()
    full = json.dumps({"kind": "candidate", **rec("g001-02").to_json()})
    path.write_bytes(good + full[: len(full) // 2].encode())  # crash mid-write
    # a reader neither fails nor repairs
    with pytest.warns(UserWarning, match="torn"):
        ro = Archive.open(tmp_path, readonly=True)
    assert [r.id for r in ro.records()] == ["g001-00", "g001-01"]
    assert path.read_bytes() != good
    # a writer repairs, and the lost record can be written again
    with pytest.warns(UserWarning, match="torn"):
        arc = Archive.open(tmp_path)
    assert path.read_bytes() == good
    arc.add(rec("g001-02"))
    arc.close()
    assert [r.id for r in Archive.open(tmp_path, readonly=True).records()] == [
        "g001-00",
        "g001-01",
        "g001-02",
    ]


def test_torn_line_of_nul_bytes_with_newline(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as arc:
        arc.add(rec("g001-00"))
    path = tmp_path / "archive.jsonl"
    good = path.read_bytes()
    path.write_bytes(good + b"\x00" * 40 + b"\n")
    with pytest.warns(UserWarning):
        Archive.open(tmp_path).close()
    assert path.read_bytes() == good


def test_garbage_in_the_middle_is_an_error(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as arc:
        arc.add(rec("g001-00"))
    path = tmp_path / "archive.jsonl"
    path.write_bytes(b"{not json\n" + path.read_bytes())
    with pytest.raises(DataError, match="line 1"):
        Archive.open(tmp_path, readonly=True)


def test_readonly_needs_an_archive(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a campaign directory"):
        Archive.open(tmp_path / "nothing", readonly=True)


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    arc = Archive.open(tmp_path)
    with pytest.raises(ArchiveLockedError):
        Archive.open(tmp_path)
    Archive.open(tmp_path, readonly=True)  # readers are fine
    arc.close()
    Archive.open(tmp_path).close()


def test_side_files_are_atomic(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as arc:
        arc.add(rec("g001-00"), code=CODE)
        arc.write_agent("g001-00", CODE + "# v2\n")
        arc.write_results("g001-00", [{"task": "t1", "score": 1.0}])
        arc.write_results("g001-00", {"t": 1}, split="test")
        arc.write_transcript("g001-00", "meta said hi")
        assert arc.read_agent("g001-00").endswith("# v2\n")
        assert arc.read_results("g001-00") == [{"task": "t1", "score": 1.0}]
        assert arc.read_results("g001-00", split="test") == {"t": 1}
        assert arc.read_transcript("g001-00") == "meta said hi"
        assert arc.read_results("g001-01") is None
        with pytest.raises(UnknownCandidateError, match="g001-01"):
            arc.get("g001-01")
    leftovers = [
        p for p in tmp_path.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")
    ]
    assert leftovers == []


def test_writes_from_many_threads(tmp_path: Path) -> None:
    """A campaign stores candidates from several threads: every write lands, each once."""
    n_threads, per_thread = 8, 25
    start = threading.Barrier(n_threads)
    won: list[str] = []  # threads that stored the one id all of them race for

    def work(t: int) -> None:
        start.wait()
        for i in range(per_thread):
            cid = candidate_id(t + 1, i)
            arc.add(rec(cid, generation=t + 1, fingerprint=f"fp{i}"), code=CODE + f"# {cid}\n")
            arc.add_test_result(cid, score(0.25, n=t + 1))
            arc.write_results(cid, {"thread": t, "i": i})
            arc.write_transcript(cid, f"transcript {cid}")
            arc.checkpoint(CampaignState(generation=t, step=f"t{t}-{i}"))
        try:
            arc.add(rec("g000-00", name=f"thread {t}"))
            won.append(str(t))
        except DuplicateRecordError:
            pass

    with Archive.open(tmp_path) as arc:
        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(work, range(n_threads)))  # re-raises a thread's error
        assert len(arc) == n_threads * per_thread + 1
    assert len(won) == 1

    again = Archive.open(tmp_path, readonly=True)
    lines = [json.loads(line) for line in again.path.read_text().splitlines()]
    kinds = [o["kind"] for o in lines]
    total = n_threads * per_thread
    assert (kinds.count("candidate"), kinds.count("test_result"), kinds.count("state")) == (
        total + 1, total, total
    )
    ids = [o["id"] for o in lines if o["kind"] == "candidate"]
    want = {candidate_id(t + 1, i) for t in range(n_threads) for i in range(per_thread)}
    assert len(ids) == len(set(ids)) and set(ids) == want | {"g000-00"}
    assert again.get("g000-00").name == f"thread {won[0]}"
    for cid in want:
        r = again.get(cid)
        assert r.test is not None and r.test.n == r.generation
        assert again.read_agent(cid) == CODE + f"# {cid}\n"
        assert again.read_results(cid) == {"thread": r.generation - 1, "i": int(cid[-2:])}
        assert again.read_transcript(cid) == f"transcript {cid}"
    assert len(again.by_fingerprint("fp0")) == n_threads
    last = [o for o in lines if o["kind"] == "state"][-1]
    assert again.state() == CampaignState(last["generation"], last["step"], last["at"], last["meta"])
    assert not list(tmp_path.rglob("*.tmp"))


def test_progress_curve() -> None:
    rs = [
        rec("seed-a", val=0.3, calls=5, cost_usd=0.1, tokens=10),
        rec("g001-00", status="invalid", val=None, calls=2, cost_usd=0.05),
        rec("g001-01", status="pruned", val=0.9, calls=3),
        rec("g001-02", val=0.5, calls=4),
    ]
    pts = progress_curve(rs)
    assert [p.best_val for p in pts] == [0.3, 0.3, 0.3, 0.5]
    assert [p.cum_calls for p in pts] == [5, 7, 10, 14]
    assert pts[1].cum_cost_usd == pytest.approx(0.15)


WRITER = textwrap.dedent(
    """
    import sys
    from metasearch.store.archive import Archive
    from metasearch.store.records import CandidateRecord, candidate_id
    arc = Archive.open(sys.argv[1])
    start = len(arc)
    print("ready", flush=True)
    for i in range(start, 100000):
        arc.add(CandidateRecord(id=candidate_id(i // 100, i % 100), name="x" * 2000,
                                generation=i // 100, status="invalid", reason="r" * 3000),
                code="def forward(self, taskInfo):\\n    return 1\\n" * 50)
    """
)


def test_kill_9_mid_stream_leaves_a_consistent_archive(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for _ in range(2):
        p = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, env=env
        )
        assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
        time.sleep(0.3)
        p.send_signal(signal.SIGKILL)
        p.wait()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the kill may or may not leave a torn line
            arc = Archive.open(tmp_path)
        ids = [r.id for r in arc.records()]
        assert ids == [
            candidate_id(i // 100, i % 100) for i in range(len(ids))
        ]  # a prefix, no dups
        assert ids, "the writer should have written something in 0.3 s"
        for r in arc.records():
            assert (tmp_path / r.code_path).is_file()
        arc.close()


def test_split_score_from_stats_fitness() -> None:
    from metasearch.evaluation.stats import bootstrap_ci

    fit = bootstrap_ci([1.0, 0.0, 1.0, 1.0])
    s = SplitScore.of(fit, scores={"a": 1.0, "b": 0.0, "c": 1.0, "d": 1.0})
    assert (s.mean, s.n) == (0.75, 4) and s.median is not None
    assert SplitScore.from_json(json.loads(json.dumps(s.to_json()))) == s
