"""The evolve strategy's per-task Pareto frontier on a hand-made score matrix (not registered yet)."""

from __future__ import annotations

import random

from metasearch.search.evolve.frontier import complementary_pair, frontier, sample_parent

#            t1   t2   t3   t4   t5
MATRIX = {"a": {"t1": 1.0, "t2": 0.0, "t3": 0.5, "t4": 0.0, "t5": 0.0},
          "b": {"t1": 1.0, "t2": 1.0, "t3": 0.0, "t4": 0.0, "t5": 0.0},
          "c": {"t1": 0.0, "t2": 0.0, "t3": 0.5, "t4": 1.0, "t5": 0.0},
          "d": {"t1": 0.0, "t2": 0.0, "t3": 0.0, "t4": 0.0, "t5": 0.0}}


def test_a_candidate_stays_while_it_is_best_on_one_task():
    front = frontier(MATRIX)
    # t1: a and b tie; t2: b; t3: a and c tie at 0.5; t4: c; t5: nobody scores, nobody wins
    assert front == {"a": {"t1", "t3"}, "b": {"t1", "t2"}, "c": {"t3", "t4"}}
    assert "d" not in front
    worse = dict(MATRIX, c={"t1": 0, "t2": 0, "t3": 0.4, "t4": 0.9, "t5": 0})
    assert frontier(worse | {"e": {"t4": 1.0}}) == {"a": {"t1", "t3"}, "b": {"t1", "t2"},
                                                    "e": {"t4"}}


def test_parents_are_drawn_by_tasks_won():
    front = {"a": frozenset({"t1", "t2", "t3"}), "b": frozenset({"t4"})}
    draws = [sample_parent(front, random.Random(i)) for i in range(4000)]
    assert abs(draws.count("a") / len(draws) - 0.75) < 0.03
    assert sample_parent({}, random.Random(0)) is None


def test_merge_pairs_agents_that_win_different_tasks():
    front = frontier(MATRIX)
    for i in range(50):
        pair = complementary_pair(front, random.Random(i))
        assert pair is not None and pair[0] != pair[1]
        assert front[pair[0]] - front[pair[1]] and front[pair[1]] - front[pair[0]]
    same = {"a": frozenset({"t1"}), "b": frozenset({"t1"})}
    assert complementary_pair(same, random.Random(0)) is None
