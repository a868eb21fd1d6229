"""GEPA's per-task Pareto frontier, as pure functions of a score matrix.

A candidate stays on the frontier while it is the best on at least one
validation task (ties count for every candidate that reaches the best; a
task nobody scores on is won by no one). Parents are sampled from the
frontier with weights = the number of tasks each one wins; a merge pairs two
frontier agents that win on different tasks.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

__all__ = ["complementary_pair", "frontier", "sample_parent"]

Scores = Mapping[str, Mapping[str, float]]  # candidate id -> task id -> score


def frontier(scores: Scores) -> dict[str, frozenset[str]]:
    """Each frontier candidate -> the tasks it wins, in the order of ``scores``."""
    tasks = sorted({t for row in scores.values() for t in row})
    wins: dict[str, set[str]] = {cid: set() for cid in scores}
    for t in tasks:
        best = max((row.get(t, 0.0) for row in scores.values()), default=0.0)
        if best <= 0.0:
            continue
        for cid, row in scores.items():
            if row.get(t, 0.0) == best:
                wins[cid].add(t)
    return {cid: frozenset(w) for cid, w in wins.items() if w}


def sample_parent(front: Mapping[str, frozenset[str]], rng: random.Random) -> str | None:
    """A frontier candidate, drawn with probability proportional to the tasks it wins."""
    if not front:
        return None
    ids = list(front)
    return rng.choices(ids, weights=[len(front[c]) for c in ids], k=1)[0]


def complementary_pair(front: Mapping[str, frozenset[str]],
                       rng: random.Random) -> tuple[str, str] | None:
    """Two frontier candidates that each win a task the other does not; None if there are none.

    The first is drawn by tasks won; the second among those winning a task the
    first does not, weighted by how many such tasks.
    """
    first = sample_parent(front, rng)
    if first is None:
        return None
    others = {c: len(w - front[first]) for c, w in front.items()
              if c != first and w - front[first] and front[first] - w}
    if not others:
        return None
    ids = list(others)
    return first, rng.choices(ids, weights=[others[c] for c in ids], k=1)[0]
