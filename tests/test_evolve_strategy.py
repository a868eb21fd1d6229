"""The evolve strategy: the gate, parents and merges fixed in ask, the prompts, the budget, kill -9."""

from __future__ import annotations

from pathlib import Path

import pytest
from kill9_kit import kill_and_resume, run_to_end, starter, summary

from metasearch.search.adas.context import TaskBrief
from metasearch.search.base import Slot
from metasearch.search.evolve import EvolveStrategy, gate
from metasearch.search.registry import get_strategy
from metasearch.store.records import CandidateRecord, SplitScore
from metasearch.testing import TOY_SUITE
from metasearch.testing.campaigns import TOY_TASKS

KIT = Path(__file__).parent / "edit_kit.py"
child = starter(KIT, "evolve")


def rec(cid, scores, *, gen="initial", status="ok", parent=None, thought=""):
    val = None
    if scores is not None:
        mean = sum(scores.values()) / len(scores)
        val = SplitScore(mean, mean, mean, len(scores), scores=dict(scores))
    return CandidateRecord(id=cid, name=cid, generation=gen, status=status, val=val,
                           parent_ids=(parent,) if parent else (), thought=thought)


T = ["t00", "t01", "t02", "t03"]
A = rec("A", dict(zip(T, [1, 1, 0, 0], strict=True)))  # wins t00, t01 (ties with C on t00)
B = rec("B", dict(zip(T, [0, 0, 1, 1], strict=True)))  # wins t02, t03
C = rec("C", dict(zip(T, [1, 0, 0, 0], strict=True)))  # only ties A on t00
D = rec("D", dict(zip(T, [0, 0, 0, 0], strict=True)))  # wins nothing


class FakeArchive:
    def __init__(self, records):
        self._r = tuple(records)

    def records(self):
        return self._r

    def has(self, cid):
        return any(r.id == cid for r in self._r)


def strategy(**kw) -> EvolveStrategy:
    return EvolveStrategy(proposer=None, task=TaskBrief.from_suite(TOY_SUITE),  # type: ignore[arg-type]
                          questions={t.id: t.question for t in TOY_TASKS}, generations=4, **kw)


def test_the_gate_accepts_only_a_child_better_than_its_parent_on_the_same_tasks():
    assert gate([1, 1, 0], [1, 0, 0, 1]) is None  # 2/3 beats 1/3 (the parent's first 3)
    assert "rejected: 1/3 on the first 3 validation tasks, not above its parent's 1/3" in gate(
        [0, 1, 0], [1, 0, 0, 1])
    assert gate([1, 1], [1, 1, 0]) is None  # a perfect parent is matched, not beaten
    assert gate([1, 0], [1, 1, 0]).startswith("rejected: 1/2")
    assert gate([], [1]) is None and gate([1, 0], []) is None  # nothing to compare with


def test_should_prune_gates_the_first_minibatch_of_each_evaluation_only():
    s = strategy()
    slot = Slot("g001-00", 1, 0, meta={"parents": ["A"], "kind": "mutation",
                                       "gates": [[1, 1, 0, 0]]})
    assert s.should_prune(slot, [1, 0]).startswith("rejected:")
    assert s.should_prune(slot, [1, 0, 1, 1]) is None  # a later minibatch: never pruned
    assert s.should_prune(slot, [1, 0]).startswith("rejected:")  # a debugged version, again
    merge = Slot("g001-01", 1, 1, meta={"parents": ["A", "B"], "kind": "merge",
                                        "gates": [[1, 0, 0, 0], [0, 1, 1, 1]]})
    assert s.should_prune(merge, [1, 1, 0]).startswith("rejected: 2/3")  # B's 2/3 is the bar
    assert s.should_prune(Slot("g001-02", 1, 2, meta=merge.meta), [1, 1, 1]) is None


def test_parents_come_from_the_frontier_of_earlier_generations_and_merges_pair_complements():
    s = strategy(width=4, merge_every=2, seed=3)
    slots = s.ask(4, FakeArchive([A, B, C, D]))
    assert [x.candidate_id for x in slots] == ["g001-00", "g001-01", "g001-02", "g001-03"]
    for x in slots:
        assert set(x.meta["parents"]) <= {"A", "B", "C"}  # D wins no task: never a parent
    merges = [x for x in slots if x.meta["kind"] == "merge"]
    assert [x.index for x in merges] == [1, 3]  # every second slot
    for x in merges:
        assert sorted(x.meta["parents"]) == ["A", "B"]  # the only complementary pair
        gates = dict(zip(x.meta["parents"], x.meta["gates"], strict=True))
        assert gates == {"A": [1, 1, 0, 0], "B": [0, 0, 1, 1]}
    assert s.ask(4, FakeArchive([A, B, C, D])) == []  # nothing asked twice; gen 1 in flight
    # a same-generation record is not seen when the generation is planned
    late = strategy(width=4, merge_every=2, seed=3)
    best = rec("g001-00", dict.fromkeys(T, 1), gen=1)
    again = late.ask(4, FakeArchive([A, B, C, D, best]))
    assert [x.meta["parents"] for x in again] == [x.meta["parents"] for x in slots[1:]]


def test_the_metric_call_budget_and_an_empty_frontier_stop_the_search():
    s = strategy(width=2, max_metric_calls=16)
    assert s.ask(2, FakeArchive([A, B, C, D])) == []  # 4 agents x 4 tasks = 16 evaluations
    assert "metric-call budget is spent: 16 task evaluations of 16" in s.stopped
    none = strategy(width=2)
    assert none.ask(2, FakeArchive([D])) == [] and "no frontier" in none.stopped


class FakeView(FakeArchive):
    def __init__(self, records, results):
        super().__init__(records)
        self._results = results

    def get(self, cid):
        return next(r for r in self._r if r.id == cid)

    def read_agent(self, cid):
        return f"def forward(self, taskInfo):\n    return 'code of {cid}'\n"

    def read_results(self, cid):
        return self._results.get(cid)

    def by_fingerprint(self, fp):
        return ()


class Recorder:
    output_format = "sections"

    def propose_from(self, messages, **kw):
        self.messages, self.kw = messages, kw
        raise RuntimeError("stop here")


def results(r: CandidateRecord) -> dict:
    return {"results": [{"task_id": t, "score": s, "answer": f"{t}-{r.id}", "gold": f"g{t}",
                         "error": None} for t, s in r.val.scores.items()]}


def test_the_mutation_and_merge_prompts():
    view = FakeView([A, B, rec("g001-00", {"t00": 1}, gen=1, parent="A", thought="Voted.")],
                    {r.id: results(r) for r in (A, B)})
    s = strategy(failures=1)
    s.proposer = Recorder()  # type: ignore[assignment]
    with pytest.raises(RuntimeError, match="stop here"):
        s.propose(Slot("g002-00", 2, 0, meta={"parents": ["A"], "kind": "mutation"}), view)
    text = s.proposer.messages[-1]["content"]
    assert "# The agent to improve" in text and "code of A" in text
    assert "Its answer: t02-A" in text or "Its answer: t03-A" in text  # one failure shown
    assert "Its answer: t00-A" in text or "Its answer: t01-A" in text  # and one it got right
    assert "- g001-00: Voted." in text  # the earlier edit of A
    with pytest.raises(RuntimeError, match="stop here"):
        s.propose(Slot("g002-01", 2, 1, meta={"parents": ["A", "B"], "kind": "merge"}), view)
    text = s.proposer.messages[-1]["content"]
    assert "# The agents to combine" in text and "code of A" in text and "code of B" in text
    assert "each right on tasks the other gets wrong" in text
    assert "Its answer: t00-A" in text or "Its answer: t01-A" in text  # A right, B wrong
    assert "Its answer: t02-B" in text or "Its answer: t03-B" in text  # B right, A wrong


def test_registered_and_built_from_the_shipped_config():
    from metasearch.config import load_config
    from metasearch.search.registry import StrategyContext

    config = load_config(Path(__file__).parents[1] / "experiments" / "evolve-local.toml")
    assert config.search.strategy == "evolve"

    class Gateway:
        def complete(self, request):
            raise AssertionError("building calls no model")

        def resolve_protocol(self, model):
            return "sections"

    built = get_strategy("evolve").build(StrategyContext(
        settings=config.search.settings, config=config, gateway=Gateway(), suite=TOY_SUITE,
        val_tasks=TOY_TASKS[:3]))
    assert isinstance(built, EvolveStrategy) and built.merge_every == 2
    assert list(built.questions) == ["t00", "t01", "t02"]


# ------------------------------------------------------------------ kill -9


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = run_to_end(child, tmp_path_factory.mktemp("ref") / "c")
    rows = summary(d)
    assert any("rejected:" in str(r) for r in rows), "the gate rejected nothing in the reference"
    return d


@pytest.mark.parametrize(("at", "parallel"), [(0.3, 1), (0.7, 2)])
def test_resume_after_kill_9_replays_without_rebilling(tmp_path, reference, at, parallel):
    d = tmp_path / "c"
    kill_and_resume(child, d, reference, at=at, parallel=parallel)
