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
