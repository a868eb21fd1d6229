"""The guarantees every search strategy owes a campaign, as a pytest suite to inherit.

Subclass it in a test module (the class name must start with ``Test``) and
implement :meth:`StrategyContract.make_strategy`; give :meth:`meta_reply`
too if the strategy calls the meta model::

    from metasearch.testing import StrategyContract

    class TestMyStrategy(StrategyContract):
        def make_strategy(self, gateway, parallel):
            return MyStrategy(generations=2, width=3)

Each test runs small campaigns over the toy suite with the scripted model
(:mod:`metasearch.testing.campaigns`), in process, in a few seconds. A
strategy that keeps state beside the campaign (Optuna's study) finds the
directory of the run being built in ``self.campaign_dir``; a resumed run
builds its strategy again on the same directory.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

from metasearch.llm.types import LLMRequest
from metasearch.store.records import CandidateRecord
from metasearch.testing.campaigns import ScriptedModel, close_campaign, comparable, toy_campaign


class StrategyContract(abc.ABC):
    """Resume, budget, time limit, parents, and independence from ``parallel_candidates``."""

    #: How many candidates run at once in the "parallel" runs.
    parallel = 3
    #: The campaign directory of the run whose strategy is being made.
    campaign_dir: Path

    # ----------------------------------------------------------- to implement

    @abc.abstractmethod
    def make_strategy(self, gateway: Any, parallel: int) -> Any:
        """A fresh strategy for one campaign run (``gateway.complete`` reaches the meta model)."""

    def meta_reply(self, request: LLMRequest) -> str:
        """The scripted meta model's reply (a pure function of the request)."""
        raise AssertionError("this strategy called the meta model; override meta_reply")

    # ---------------------------------------------------------------- helpers

    def _run(self, directory: Path, *, parallel: int = 1, **kw: Any) -> tuple[Any, ScriptedModel]:
        model = ScriptedModel(self.meta_reply)
        self.campaign_dir = directory
        campaign = toy_campaign(directory, model, self.make_strategy, parallel=parallel, **kw)
        try:
            return campaign.run(), model
        finally:
            close_campaign(campaign)

    def _reference(self, tmp_path: Path) -> tuple[Any, ScriptedModel]:
        result, model = self._run(tmp_path / "reference")
        generated = [r for r in result.records if not r.is_seed]
        assert generated, "the strategy proposed nothing: the contract needs at least one slot"
        return result, model

    # ------------------------------------------------------------------ tests

    def test_records_do_not_depend_on_parallel_candidates(self, tmp_path: Path) -> None:
        one, _ = self._run(tmp_path / "one", parallel=1)
        many, _ = self._run(tmp_path / "many", parallel=self.parallel)
        assert comparable(many.records) == comparable(one.records)

    def test_resume_after_a_stop_at_any_point_replays_without_rebilling(
        self, tmp_path: Path
    ) -> None:
        reference, ref_model = self._reference(tmp_path)
        total = len(ref_model.requests)
        for k, cap in enumerate(sorted({max(1, total // 4), total // 2, total - 1})):
            d = tmp_path / f"stop-{k}"
            first, m1 = self._run(d, max_calls=cap, parallel=self.parallel)
            assert first.stopped, f"a cap of {cap} calls of {total} did not stop the campaign"
            resumed, m2 = self._run(d, parallel=self.parallel)
            assert not resumed.stopped
            assert comparable(resumed.records) == comparable(reference.records)
            assert len(m1.requests) + len(m2.requests) == total, "a call was billed twice"

    def test_a_budget_stop_keeps_only_finished_candidates(self, tmp_path: Path) -> None:
        reference, ref_model = self._reference(tmp_path)
        result, _ = self._run(tmp_path / "stopped", max_calls=len(ref_model.requests) // 2,
                              parallel=self.parallel)
        assert result.stopped, "a cap of half the calls did not stop the campaign"
        kept = comparable(result.records)
        ref = comparable(reference.records)
        # what was stored is the reference's beginning, minus test results not yet run
        assert [k[:-1] for k in kept] == [k[:-1] for k in ref[: len(kept)]]

    def test_nothing_is_asked_after_the_search_time(self, tmp_path: Path) -> None:
        clock = _Clock()
        asked: list[tuple[float, int]] = []
        make = self.make_strategy

        def make_spy(gateway: Any, parallel: int) -> Any:
            return _Spy(make(gateway, parallel), clock, asked)

        self.make_strategy = make_spy  # type: ignore[method-assign]
        try:
            result, _ = self._run(tmp_path / "timed", clock=clock, max_search_s=60.0,
                                  parallel=self.parallel)
        finally:
            del self.make_strategy
        assert asked and all(t < 60.0 for t, _ in asked), asked
        assert result.time_limit, "the time limit passed but the result does not say so"
        generated = [r for r in result.records if not r.is_seed]
        assert len(generated) == sum(n for _, n in asked)
        assert result.best is None or result.best.test is not None  # the final test still ran

    def test_parents_are_what_the_strategy_said_and_came_before(self, tmp_path: Path) -> None:
        result, _ = self._run(tmp_path / "parents", parallel=self.parallel)
        order = {r.id: i for i, r in enumerate(result.records)}
        for r in result.records:
            if r.is_seed:
                assert r.parent_ids == ()
                continue
            assert r.strategy, f"{r.id} does not say which strategy made it"
            for p in r.parent_ids:
                assert p in order and order[p] < order[r.id], f"{r.id}: parent {p} unknown or later"
                parent = result.records[order[p]]
                assert _earlier(parent, r), f"{r.id}: parent {p} is of the same or a later generation"


def _earlier(parent: CandidateRecord, child: CandidateRecord) -> bool:
    if not isinstance(parent.generation, int):
        return True
    return isinstance(child.generation, int) and parent.generation <= child.generation


class _Clock:
    """A fake monotonic clock: the first proposal makes 90 s pass."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Spy:
    """Wraps a strategy: records each non-empty ask with the time, and ages the clock."""

    def __init__(self, inner: Any, clock: _Clock, asked: list[tuple[float, int]]) -> None:
        self._inner, self._clock, self._asked = inner, clock, asked
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def ask(self, free: int, archive: Any) -> Any:
        slots = self._inner.ask(free, archive)
        if slots:
            self._asked.append((self._clock.now, len(slots)))
        return slots

    def propose(self, slot: Any, archive: Any) -> Any:
        out = self._inner.propose(slot, archive)
        self._clock.now = 90.0  # the limit passes while the first candidates run
        return out


__all__ = ["StrategyContract"]
