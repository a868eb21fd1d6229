"""A stopped campaign keeps what its unfinished candidates were billed.

SIGTERM (a scheduler's preemption) or Ctrl-C lands while candidates are in
flight. Their billed calls must reach the archive's last checkpoint: a
resumed run replays them from the cache for free, so a count that missed
them would let ``budget.max_search_calls`` buy those calls a second time.
Measured on 2026-12-02 before the fix: eight stops of one local campaign had
lost about 600 billed calls from its count.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import optuna_kit as kit
import pytest

from metasearch.cli._output import Terminated, sigterm_stops
from metasearch.llm.types import LLMRequest
from metasearch.store.archive import Archive


class StopsAt(kit.ColdModel):
    """Answers ``k`` task calls, then sends SIGTERM and fails every later call (unbilled)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k, self.n, self.release = k, 0, threading.Event()
        self._count = threading.Lock()

    def __call__(self, req: LLMRequest) -> str:
        with self._count:
            self.n += 1
            n = self.n
        if n <= self.k:
            return super().__call__(req)
        if n == self.k + 1:
            time.sleep(0.3)  # calls that started before this one finish and are billed
            os.kill(os.getpid(), signal.SIGTERM)
        self.release.wait(2)  # then closing the gateway need not wait long
        raise RuntimeError("the machine went away")


def spent_calls(d) -> int:
    with Archive.open(d, readonly=True) as archive:
        return int(archive.state().meta["spent"]["calls"])


def test_a_stop_mid_generation_keeps_the_calls_in_flight_and_the_resume_bills_none_twice(tmp_path):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("SIGTERM is handled in the main thread only")
    d = tmp_path / "run"
    stopping = StopsAt(k=30)  # the seed takes 12; the next 18 land inside generation 1's trials
    try:
        with sigterm_stops(), pytest.raises(Terminated):
            kit.run(d, stopping, parallel=3)
    finally:
        stopping.release.set()
    assert spent_calls(d) == 30  # every billed call, those of unfinished trials included
    resumed = kit.ColdModel()
    result, _ = kit.run(d, resumed, parallel=3)
    assert not result.stopped and result.best is not None
    assert spent_calls(d) == 30 + len(resumed.requests)  # the total billed over both runs
