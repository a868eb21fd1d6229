"""Jobs run N at a time and are committed in submission order, whatever finishes first."""

from __future__ import annotations

import threading
import time

import pytest

from metasearch.campaign.inorder import InOrder


def test_commits_follow_submission_order_and_at_most_limit_run():
    running, peak, lock = [0], [0], threading.Lock()

    def job(i: int, delay: float):
        def run() -> int:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(delay)
            with lock:
                running[0] -= 1
            return i
        return run

    committed: list[int] = []
    jobs: InOrder[int, int] = InOrder(2)
    jobs.map([(i, job(i, 0.05 if i % 2 == 0 else 0.0)) for i in range(6)],
             lambda k, v: committed.append(v))
    assert committed == list(range(6))
    assert peak[0] == 2


def test_a_failure_keeps_what_came_before_and_drops_what_came_after():
    committed: list[int] = []

    def boom() -> int:
        time.sleep(0.02)
        raise ValueError("budget")

    jobs: InOrder[int, int] = InOrder(3)
    with pytest.raises(ValueError, match="budget"):
        jobs.map([(0, lambda: 0), (1, boom), (2, lambda: 2), (3, lambda: 3)],
                 lambda k, v: committed.append(v))
    assert committed == [0]
    assert len(jobs) == 0
