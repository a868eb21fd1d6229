"""Slot claims, leases and the final-test election, in one process with a hand-moved clock.

Run on sqlite and on PostgreSQL (``METASEARCH_TEST_POSTGRES``, else that half skips).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from postgres_kit import fresh_campaign, postgres_url

from metasearch.store import db
from metasearch.store.coordinator import FINAL_TEST, Coordinator


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def pair(request: Any, tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path / 's.db'}" if request.param == "sqlite" else postgres_url()
    engine, name, clock = db.open_engine(url), fresh_campaign("co"), Clock()
    committed: set[str] = set()
    made = [Coordinator(engine, name, has=committed.__contains__, lease_s=10, poll_s=0.01,
                        worker=w, clock=clock) for w in ("A", "B")]
    for c in made:  # registered, without the heartbeat thread: the test beats by hand
        with engine.begin() as conn:
            conn.execute(db.workers.insert().values(campaign=name, worker=c.worker,
                                                    heartbeat=clock(), finished_at=None))
    return made[0], made[1], clock, committed


def test_one_claim_wins_and_an_expired_lease_is_taken_over(pair: Any) -> None:
    a, b, clock, committed = pair
    assert a.claim("g001-00") and not b.claim("g001-00")
    assert a.claim("g001-00")  # its own claim again (a restarted loop): still its
    clock.now += 5
    a.beat()  # renewed to now + 10
    clock.now += 8
    assert not b.claim("g001-00")  # 13 s after the claim, but 8 s after the beat
    clock.now += 3
    assert b.claim("g001-00") and b.holder("g001-00").worker == "B"  # A stopped beating
    assert not a.claim("g001-00")


def test_a_committed_record_is_never_claimed_again(pair: Any) -> None:
    a, b, clock, committed = pair
    assert a.claim("g001-01")
    committed.add("g001-01")
    a.release("g001-01")
    assert not b.claim("g001-01") and b.holder("g001-01") is None
    assert not b.wait_for("g001-01")  # the record is there: nothing to run


def test_the_last_worker_to_finish_runs_the_final_test(pair: Any) -> None:
    a, b, clock, committed = pair
    got: dict[str, bool] = {}
    t = threading.Thread(target=lambda: got.setdefault("A", a.take_final_test()))
    t.start()  # A finished first: it waits while B (alive) still searches
    time.sleep(0.3)
    assert t.is_alive() and a.tester() is None
    clock.now += 1
    assert b.take_final_test() and b.tester() == "B"  # B finished last
    time.sleep(0.2)
    assert t.is_alive()  # A waits for the test to be done ...
    b.final_test_done()
    t.join(timeout=10)
    assert got == {"A": False}  # ... and then leaves it to B
    assert b.holder(FINAL_TEST).lease_until >= 1e18


def test_a_dead_tester_is_replaced_by_a_waiting_worker(pair: Any) -> None:
    a, b, clock, committed = pair
    with a.engine.begin() as conn:  # A finished first
        conn.execute(db.workers.update().where(db.workers.c.worker == "A",
                                               db.workers.c.campaign == a.campaign)
                     .values(finished_at=clock()))
    clock.now += 1
    assert b.take_final_test()  # B is last: it claims the test, then dies (no more beats)
    got: dict[str, bool] = {}
    t = threading.Thread(target=lambda: got.setdefault("A", a.take_final_test()))
    t.start()
    time.sleep(0.2)
    assert t.is_alive()
    clock.now += 11  # B's lease expires
    t.join(timeout=10)
    assert got == {"A": True} and a.tester() == "A"


def test_once_runs_in_one_worker_and_a_dead_runners_work_is_taken_over(pair: Any) -> None:
    a, b, clock, _ = pair
    ran: list[str] = []
    assert a.once("~job", lambda: ran.append("A")) is True
    assert b.once("~job", lambda: ran.append("B")) is False  # done: B never runs it
    assert ran == ["A"]
    assert a.claim("~stuck")  # A "dies" holding ~stuck, its work unfinished
    clock.now += 11  # the lease expires
    assert b.once("~stuck", lambda: ran.append("B")) is True
    assert ran == ["A", "B"]
    with pytest.raises(ValueError, match="start with '~'"):
        a.once("g001-00", lambda: None)


def test_a_failed_once_lets_another_worker_run_it(pair: Any) -> None:
    a, b, _, _ = pair

    def boom() -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        a.once("~job", boom)
    assert b.once("~job", lambda: None) is True  # released, not left to its lease


def test_two_optuna_workers_ask_each_generation_once_and_adopt_the_same_trials(
        pair: Any, tmp_path: Path) -> None:
    """In one process, deterministic: B queues exactly the slots and parameters A asked."""
    import optuna

    from metasearch.search.optuna import OptunaSettings, OptunaStrategy
    from metasearch.search.spaces import load_space
    from metasearch.store.archive import Archive

    a, b, _, _ = pair
    root = Path(__file__).resolve().parents[1] / "search_spaces/reasoning.toml"
    space, settings = load_space(root), OptunaSettings(space=str(root), width=3, seed=0)
    study = optuna.create_study(study_name=fresh_campaign("st"), direction="maximize",
                                storage=f"sqlite:///{tmp_path / 'study.db'}")
    one, two = (OptunaStrategy(space=space, study=study, settings=settings, generations=2,
                               claims=c) for c in (a, b))
    archive = Archive.open(tmp_path / "arc")
    first = one.ask(3, archive)
    second = two.ask(3, archive)
    assert [s.candidate_id for s in first] == [s.candidate_id for s in second] == [
        "g001-00", "g001-01", "g001-02"]
    assert all(one._values[s.candidate_id] == two._values[s.candidate_id] for s in first)
    assert len(study.trials) == 3  # asked once, not once per worker
    assert a.holder("~optuna-g001").worker == "A"  # the one that asked it
    assert two.ask(3, archive) == []  # its slots are in flight: nothing new until they are told
    archive.close()


def test_two_hybrid_workers_add_defaults_and_ask_each_batch_once_and_adopt_the_same_trials(
        pair: Any, tmp_path: Path) -> None:
    """Shared studies: B queues exactly A's trial slots and values; the study holds each once."""
    from types import SimpleNamespace

    import optuna
    from test_hybrid_strategy import VOTE, hybrid

    from metasearch.search.hybrid import open_shared_studies
    from metasearch.store.archive import Archive
    from metasearch.store.records import CandidateRecord, SplitScore

    a, b, _, _ = pair
    archive = Archive.open(tmp_path / "arc")
    scores = {f"t{i}": float(i % 2) for i in range(6)}
    archive.add(CandidateRecord(id="g001-00", name="Vote", generation=1, status="ok",
                                strategy="hybrid", val=SplitScore(0.5, 0.1, 0.9, 6, scores)),
                code=VOTE)
    shared = SimpleNamespace(name=fresh_campaign("hy"), url=f"sqlite:///{tmp_path / 'h.db'}")
    no_meta = SimpleNamespace(complete=None)  # the structure is archived: no proposal here
    one, two = (hybrid(tmp_path / w, no_meta, generations=1, trials=4, batch=2,
                       studies=open_shared_studies(SimpleNamespace(**vars(shared),
                                                                   coordinator=c),
                                                   tmp_path / w), claims=c)
                for w, c in (("a", a), ("b", b)))
    first, second = one.ask(4, archive), two.ask(4, archive)
    assert [s.candidate_id for s in first] == [s.candidate_id for s in second] == [
        "g001-01", "g001-02"]  # the first batch of 2
    assert all(one._values[s.candidate_id] == two._values[s.candidate_id] for s in first)
    study = optuna.load_study(study_name=f"metasearch-hybrid-{shared.name}-g001-00",
                              storage=shared.url)
    ids = [t.user_attrs.get("candidate_id") for t in study.trials if t.user_attrs.get(
        "candidate_id")]
    assert ids == ["g001-00", "g001-01", "g001-02"]  # the defaults once, the batch once
    assert a.holder("~hybrid-g001-00").worker == "A"
    assert a.holder("~hybrid-g001-00-b0").worker == "A"
    assert two.ask(4, archive) == []  # in flight: the next batch waits for these
    archive.close()


def test_a_slot_whose_work_fails_is_given_up_at_once_not_at_the_end_of_its_lease(
        pair: Any) -> None:
    """Two workers stopping at a shared budget cap each wait for the slot the other held:
    kept to its lease by a live worker, neither claim would ever free (a hang, seen in
    test_postgres_workers' cap test). A failed slot is released when its work fails."""
    from types import SimpleNamespace

    from metasearch.campaign.loop import Campaign, NullReporter
    from metasearch.llm.types import BudgetExceeded

    a, b, _, _ = pair
    loop = SimpleNamespace(coordinator=a, reporter=NullReporter())
    loop._holding = lambda cid, work: Campaign._holding(loop, cid, work)  # type: ignore[attr-defined]

    def stopped() -> Any:
        raise BudgetExceeded("max_calls reached")

    with pytest.raises(BudgetExceeded):
        Campaign._claimed(loop, "g001-00", stopped)  # type: ignore[arg-type]
    assert b.claim("g001-00")  # free now, though A is alive and its lease has not run out
