"""The Pareto front of validation score against cost per validation task. Pure functions.

A point is on the front when no other point scores at least as high for at
most the same cost per task and is strictly better in one of the two. Two
points with the same score and the same cost do not dominate each other, so
both stay on the front.

The cost of a candidate is everything its record says was spent on it (for
``adas`` that includes the meta agent's proposal and debug calls; a space
strategy spends only on evaluation) divided by the number of validation tasks
it was scored on. It is in USD when any record cost more than $0 (hosted
models priced by litellm, or per-model ``*_usd_per_mtok`` prices in the
config), else in LLM calls, cached ones included: a cached call is free to
replay but the agent still makes it.

Only ``ok`` records with a validation score take part. A ``pruned``
candidate was stopped after a minibatch, so its score and its spend cover
fewer tasks than the others': it is left out (and counted), as are the
invalid, failed and timed-out ones.

Example::

    front = front_of_records(archive.records())
    front.unit            # "usd" or "calls"
    [p.id for p in front.front]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from metasearch.store.records import CandidateRecord

__all__ = ["Front", "FrontPoint", "front_of_points", "front_of_records", "pareto_front"]

Unit = Literal["usd", "calls"]


@dataclass(frozen=True)
class FrontPoint:
    """One scored candidate: validation mean and 95% CI in [0, 1], and cost per task."""

    id: str
    name: str
    score: float
    ci_low: float
    ci_high: float
    n: int
    cost: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Front:
    """Every scored candidate, the non-dominated ones among them, and the cost unit."""

    unit: Unit
    points: tuple[FrontPoint, ...]  # every scored candidate, in archive order
    front: tuple[FrontPoint, ...]  # the non-dominated ones, cheapest first
    pruned: int = 0  # pruned candidates left out

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(p.id for p in self.front)

    @property
    def cost_label(self) -> str:
        return "USD per task" if self.unit == "usd" else "LLM calls per task"

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "cost": self.cost_label,
            "front": [p.to_json() for p in self.front],
            "scored": len(self.points),
            "pruned_left_out": self.pruned,
        }


def pareto_front(points: Iterable[FrontPoint]) -> tuple[FrontPoint, ...]:
    """The points no other point dominates (higher score is better, lower cost is better).

    Sorted by cost, then by score (highest first), then by input order; exact
    ties (same score, same cost) are all kept.
    """
    indexed = list(enumerate(points))
    indexed.sort(key=lambda ip: (ip[1].cost, -ip[1].score, ip[0]))
    out: list[FrontPoint] = []
    for _, p in indexed:
        if not out:
            out.append(p)
            continue
        last = out[-1]
        if p.score > last.score or (p.score == last.score and p.cost == last.cost):
            out.append(p)
    return tuple(out)


def front_of_records(records: Sequence[CandidateRecord]) -> Front:
    """The front of a campaign's ``ok`` records (see the module docstring for what counts)."""
    unit: Unit = "usd" if any(r.cost_usd > 0 for r in records) else "calls"
    points = []
    for r in records:
        if r.status != "ok" or r.val is None or r.val.n <= 0:
            continue
        spent = r.cost_usd if unit == "usd" else float(r.calls)
        points.append(FrontPoint(id=r.id, name=r.name, score=r.val.mean, ci_low=r.val.ci_low,
                                 ci_high=r.val.ci_high, n=r.val.n, cost=spent / r.val.n))
    pruned = sum(1 for r in records if r.status == "pruned")
    return Front(unit=unit, points=tuple(points), front=pareto_front(points), pruned=pruned)


def front_of_points(points: Sequence[FrontPoint], *, unit: Unit, pruned: int = 0) -> Front:
    """A :class:`Front` from points built elsewhere (e.g. from a tracking store's metrics)."""
    return Front(unit=unit, points=tuple(points), front=pareto_front(points), pruned=pruned)
