"""The archive store contract: what every backend (JSONL, sqlite, PostgreSQL) must do.

Each check takes a ``StoreFactory``: ``open_(readonly=False)`` returns an
archive of one fresh campaign, the same campaign on every call. A test file
parametrises the checks over its backends (tests/test_postgres_store.py).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from metasearch.store.archive import ArchiveLockedError
from metasearch.store.records import (
    CampaignState,
    CandidateRecord,
    DuplicateRecordError,
    SplitScore,
    UnknownCandidateError,
    candidate_id,
)

StoreFactory = Callable[..., Any]
CODE = "def forward(self, taskInfo):\n    return 'x'\n"


def score(mean: float, n: int = 4) -> SplitScore:
    return SplitScore(mean, max(0.0, mean - 0.1), min(1.0, mean + 0.1), n,
                      {"t1": 1.0, "t2": mean}, median=mean)


def rec(cid: str, status: str = "ok", val: float | None = 0.5, **kw: Any) -> CandidateRecord:
    return CandidateRecord(id=cid, name=kw.pop("name", f"Agent {cid}"),
                           generation=kw.pop("generation", 1), status=status,  # type: ignore[arg-type]
                           val=score(val) if val is not None else None, **kw)


def check_round_trip(open_: StoreFactory) -> None:
    full = rec(candidate_id(2, 1), thought="why", parent_ids=("seed-a", "g001-00"),
               reason="", calls=7, tokens=99, cost_usd=0.25, wall_s=1.5, errors=1,
               fingerprint="fp", strategy="mcts", meta={"stages": ["ran"], "k": 1})
    seed = rec("seed-a", generation="initial", strategy="seed")
    bad = rec("g001-00", status="invalid", val=None, reason="syntax error on line 3")
    with open_() as arc:
        stored = [arc.add(seed, code=CODE), arc.add(bad), arc.add(full, code=CODE + "# 2\n")]
        assert stored[0].code_path == "agents/seed-a.py" and stored[1].code_path == ""
    again = open_(readonly=True)
    assert [r.id for r in again.records()] == ["seed-a", "g001-00", "g002-01"]
    assert again.get("g002-01") == stored[2] and again.get("g001-00") == bad
    assert again.get("g001-00").reason == "syntax error on line 3"
    assert again.read_agent("g002-01") == CODE + "# 2\n"
    assert len(again) == 3 and again.has("seed-a") and not again.has("g009-00")
    try:
        again.get("g009-00")
        raise AssertionError("an unknown id must raise")
    except UnknownCandidateError as exc:
        assert "g009-00" in str(exc)


def check_duplicates_refused(open_: StoreFactory) -> None:
    with open_() as arc:
        arc.add(rec("g001-00"))
        for second in (False, True):  # this handle, and a second one (another worker)
            try:
                again = open_() if second else arc
            except ArchiveLockedError:  # JSONL: one writer per directory, by design
                continue
            try:
                again.add(rec("g001-00", name="other"))
                raise AssertionError("a duplicate id must be refused")
            except DuplicateRecordError:
                pass
        assert open_(readonly=True).get("g001-00").name == "Agent g001-00"


def check_test_results(open_: StoreFactory) -> None:
    with open_() as arc:
        arc.add(rec("g001-00", val=0.5))
        updated = arc.add_test_result("g001-00", score(0.75, n=9))
        assert updated.test == score(0.75, n=9)
        try:
            arc.add_test_result("g001-00", score(0.1))
            raise AssertionError("a second test result must be refused")
        except DuplicateRecordError:
            pass
        try:
            arc.add_test_result("g005-00", score(0.1))
            raise AssertionError("a test result needs its candidate")
        except UnknownCandidateError:
            pass
    assert open_(readonly=True).get("g001-00").test == score(0.75, n=9)


def check_best_and_fingerprints(open_: StoreFactory) -> None:
    with open_() as arc:
        arc.add(rec("g001-00", val=0.6, fingerprint="a"))
        arc.add(rec("g001-01", val=0.9, status="pruned", fingerprint="a"))
        arc.add(rec("g001-02", val=0.6, fingerprint="b"))  # a tie: the older one wins
        arc.add(rec("g001-03", val=None, status="failed"))
        arc.add_test_result("g001-02", score(1.0))  # test never drives selection
        best = arc.best()
        assert best is not None and best.id == "g001-00"
        assert [r.id for r in arc.by_fingerprint("a")] == ["g001-00", "g001-01"]
        assert [p.best_val for p in arc.progress()] == [0.6, 0.6, 0.6, 0.6]


def check_checkpoint_last_wins(open_: StoreFactory) -> None:
    with open_() as arc:
        assert arc.state() is None
        arc.checkpoint(CampaignState(generation=0, step="seeds"))
        arc.checkpoint(CampaignState(generation=2, step="generation_done",
                                     meta={"spent": {"calls": 5}}))
    state = open_(readonly=True).state()
    assert state is not None and (state.generation, state.step) == (2, "generation_done")
    assert dict(state.meta) == {"spent": {"calls": 5}}


def check_side_files(open_: StoreFactory) -> None:
    with open_() as arc:
        arc.add(rec("g001-00"), code=CODE)
        arc.write_results("g001-00", {"results": [1, 2]})
        arc.write_results("g001-00", {"results": [3]}, split="test")
        arc.write_traces("g001-00", [{"task": "t1", "calls": []}])
        assert arc.write_traces("g001-00", [], split="test") is None
        arc.write_transcript("g001-00", "# meta agent\n")
        arc.write_agent("g001-00", CODE + "# rewritten\n")
    again = open_(readonly=True)
    assert again.read_results("g001-00") == {"results": [1, 2]}
    assert again.read_results("g001-00", split="test") == {"results": [3]}
    assert again.read_traces("g001-00") == [{"task": "t1", "calls": []}]
    assert again.read_traces("g001-00", split="test") is None
    assert again.read_transcript("g001-00") == "# meta agent\n"
    assert again.read_agent("g001-00") == CODE + "# rewritten\n"
    assert again.read_results("g002-00") is None and again.read_transcript("g002-00") is None


def check_many_threads(open_: StoreFactory, n_threads: int = 4, per_thread: int = 6) -> None:
    won: list[int] = []
    with open_() as arc:
        def work(t: int) -> None:
            for i in range(per_thread):
                cid = candidate_id(t + 1, i)
                arc.add(rec(cid, generation=t + 1), code=CODE + f"# {cid}\n")
                arc.checkpoint(CampaignState(generation=t, step=f"{cid}"))
            try:
                arc.add(rec("g000-00", name=f"thread {t}"))
                won.append(t)
            except DuplicateRecordError:
                pass

        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(work, range(n_threads)))
    again = open_(readonly=True)
    assert len(won) == 1 and again.get("g000-00").name == f"thread {won[0]}"
    ids = [r.id for r in again.records()]
    assert len(ids) == len(set(ids)) == n_threads * per_thread + 1
    for t in range(n_threads):
        mine = [i for i in ids if i.startswith(f"g{t + 1:03d}-")]
        assert mine == sorted(mine)  # one writer's records keep their order
        assert again.read_agent(mine[0]) == CODE + f"# {mine[0]}\n"


def check_readonly_refuses_writes(open_: StoreFactory) -> None:
    with open_() as arc:
        arc.add(rec("g001-00"))
    ro = open_(readonly=True)
    try:
        ro.add(rec("g001-01"))
        raise AssertionError("a read-only archive must refuse writes")
    except RuntimeError:
        pass


CHECKS = (check_round_trip, check_duplicates_refused, check_test_results,
          check_best_and_fingerprints, check_checkpoint_last_wins, check_side_files,
          check_many_threads, check_readonly_refuses_writes)
