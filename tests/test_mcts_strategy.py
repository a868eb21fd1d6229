"""The mcts strategy: UCT and soft-mix selection on a hand-computed tree, patience, the edit
prompt, lineage, the shipped config, and resume after kill -9."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from kill9_kit import kill_and_resume, run_to_end, starter, summary

from metasearch.config import load_config
from metasearch.search.adas.context import TaskBrief
from metasearch.search.mcts import MctsStrategy
from metasearch.search.mcts.tree import (
    Tree,
    nodes_of,
    select_soft_mix,
    select_uct,
    soft_mix_probabilities,
    top_k_mean,
)
from metasearch.search.registry import StrategyContext, get_strategy
from metasearch.store.archive import Archive
from metasearch.store.records import CandidateRecord, SplitScore
from metasearch.testing import TOY_SUITE
from metasearch.testing.campaigns import TOY_TASKS

ROOT = Path(__file__).resolve().parents[1]
KIT = Path(__file__).parent / "edit_kit.py"
child = starter(KIT, "mcts")


def rec(cid, score=None, parent=None, status="ok", gen=1, name="", thought="", reason=""):
    val = None if score is None else SplitScore(score, score, score, 4)
    return CandidateRecord(id=cid, name=name or cid, generation=gen, status=status, val=val,
                           parent_ids=(parent,) if parent else (), reason=reason,
                           thought=thought, code_path=f"agents/{cid}.py" if status == "ok" else "")


#: root -> A (0.5), B (0.2); A -> c1 (0.9), c2 (invalid); c1 -> d1 (0.6)
TREE = [rec("A", 0.5, gen="initial"), rec("B", 0.2, gen="initial"), rec("c1", 0.9, "A"),
        rec("c2", None, "A", status="invalid"), rec("d1", 0.6, "c1", gen=2)]


def test_backpropagation_is_the_mean_reward_of_the_subtree():
    tree = Tree.of(nodes_of(TREE))
    assert tree.visits["A"] == 4 and tree.q("A") == pytest.approx((0.5 + 0.9 + 0 + 0.6) / 4)
    assert tree.visits["c1"] == 2 and tree.q("c1") == pytest.approx(0.75)
    assert tree.visits[None] == 5 and tree.q("B") == pytest.approx(0.2)
    assert tree.live_children("A") == ["c1"] and tree.n_children("A") == 2


def test_uct_on_a_hand_computed_tree():
    tree = Tree.of(nodes_of(TREE))
    # c = 1: A 0.5 + sqrt(ln 5 / 4) = 1.134 < B 0.2 + sqrt(ln 5 / 1) = 1.469; B has no edit yet
    assert tree.uct("A", 1.0) == pytest.approx(0.5 + math.sqrt(math.log(5) / 4))
    assert tree.uct("B", 1.0) == pytest.approx(0.2 + math.sqrt(math.log(5)))
    assert select_uct(tree, 1.0, max_children=2) == "B"
    # c = 0.1: A 0.563 > B 0.327; A has its 2 edits, so descend to its one live child c1
    assert select_uct(tree, 0.1, max_children=2) == "c1"
    assert select_uct(tree, 0.1, max_children=3) == "A"  # A may take a third edit
    # a pending edit of c1 (reward 0) fills it: the next slot descends to d1
    tree.visit("c1")
    assert tree.visits[None] == 6 and tree.q("A") == pytest.approx(2.0 / 5)
    assert select_uct(tree, 0.1, max_children=2) == "d1"


def test_uct_has_nothing_to_select_without_an_ok_agent():
    tree = Tree.of(nodes_of([rec("A", 0.0, gen="initial", status="failed")]))
    assert select_uct(tree, 1.0, 3) is None
    assert select_soft_mix(tree, 3, 0.2, 0.3, random.Random(0)) is None


def test_soft_mix_probabilities_by_hand():
    # AFlow: 0.3 / 3 + 0.7 * exp(0.2 * 100 * (s - 0.9)) / sum
    w = [1.0, math.exp(-6.0), math.exp(-8.0)]
    want = [0.1 + 0.7 * x / sum(w) for x in w]
    got = soft_mix_probabilities([0.9, 0.6, 0.5], alpha=0.2, mix=0.3)
    assert got == pytest.approx(want) and sum(got) == pytest.approx(1.0)
    assert got[0] == pytest.approx(0.79804, abs=1e-4)
    assert soft_mix_probabilities([0.4, 0.4], alpha=0.2, mix=0.0) == [0.5, 0.5]
    assert soft_mix_probabilities([0.9, 0.1], alpha=0.2, mix=1.0) == [0.5, 0.5]


def test_soft_mix_samples_the_top_k_by_own_score_seeded():
    tree = Tree.of(nodes_of(TREE))
    picks = [select_soft_mix(tree, 2, 0.2, 0.3, random.Random(f"s{i}")) for i in range(2000)]
    assert set(picks) == {"c1", "d1"}  # the top 2 by own score: A (0.5) is left out
    p = soft_mix_probabilities([0.9, 0.6], 0.2, 0.3)
    assert picks.count("c1") / len(picks) == pytest.approx(p[0], abs=0.03)
    assert select_soft_mix(tree, 2, 0.2, 0.3, random.Random("x")) == \
        select_soft_mix(tree, 2, 0.2, 0.3, random.Random("x"))


def test_top_k_mean():
    assert top_k_mean([0.2, 0.9, 0.5], 2) == pytest.approx(0.7)
    assert top_k_mean([], 3) == 0.0


def strategy(**kw) -> MctsStrategy:
    return MctsStrategy(proposer=None, task=TaskBrief.from_suite(TOY_SUITE),  # type: ignore[arg-type]
                        questions={t.id: t.question for t in TOY_TASKS}, generations=6, **kw)


class FakeArchive:
    def __init__(self, records):
        self._r = tuple(records)

    def records(self):
        return self._r

    def has(self, cid):
        return any(r.id == cid for r in self._r)


def test_patience_stops_when_the_top_k_did_not_improve():
    flat = [rec("A", 0.5, gen="initial"), rec("g001-00", 0.4, "A"), rec("g002-00", 0.3, "A", gen=2)]
    s = strategy(patience=2, top_k=1)
    assert s.ask(1, FakeArchive(flat)) == [] and "did not improve for 2" in s.stopped
    better = [*flat[:1], rec("g001-00", 0.6, "A"), flat[2]]
    slots = strategy(patience=2, top_k=1).ask(1, FakeArchive(better))
    assert [s.candidate_id for s in slots] == ["g003-00"]
    assert slots[0].meta["parent"] == "A"  # the only root, with 2 of its 3 edits


def test_slots_and_parents_are_fixed_in_ask_from_earlier_generations_only():
    s = strategy(width=3, max_children=5, exploration=0.0)
    slots = s.ask(2, FakeArchive(TREE[:2]))
    assert [x.candidate_id for x in slots] == ["g001-00", "g001-01"]
    assert s.ask(2, FakeArchive(TREE[:2]))[0].candidate_id == "g001-02"  # never asked twice
    # greedy: A twice (the virtual loss of a pending edit lowers its mean to 0.25, then B)
    assert [x.meta["parent"] for x in slots] == ["A", "A"]
    late = strategy(width=3, max_children=5, exploration=0.0)
    records = [*TREE[:2], rec("g001-00", 0.99, "A")]  # a record of the same generation
    again = late.ask(3, FakeArchive(records))
    assert [x.meta["parent"] for x in again] == ["A", "B"]  # g001-00 is not seen
    assert [x.candidate_id for x in again] == ["g001-01", "g001-02"]


class FakeView:
    def __init__(self, records, results, traces=None):
        self._r, self._results, self._traces = tuple(records), results, traces
        if traces is not None:
            self.read_traces = lambda cid: self._traces.get(cid)

    def records(self):
        return self._r

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


RESULTS = {"A": {"results": [
    {"task_id": "t00", "score": 1.0, "answer": "8", "gold": "8", "error": None},
    {"task_id": "t01", "score": 0.0, "answer": "12", "gold": "11", "error": None},
    {"task_id": "t02", "score": 0.0, "answer": None, "gold": "14",
     "error": {"kind": "exception", "type": "ValueError", "message": "bad literal"}}]}}
TRACES = {"A": {"t01": [{"agent": "Solver", "prompt": "p", "reply": "## answer\n12",
                         "events": ["no answer field"]}]}}


@pytest.mark.parametrize("traces", [TRACES, None])
def test_the_edit_prompt_shows_failures_traces_and_earlier_edits(traces):
    records = [rec("A", 0.5, gen="initial", thought="Think step by step."),
               rec("g001-00", 0.6, "A", thought="Added a check step.", name="Checked"),
               rec("g001-01", None, "A", status="invalid", reason="unparseable: no code")]
    s = strategy(failures=2)
    s.proposer = Recorder()  # type: ignore[assignment]
    from metasearch.search.base import Slot

    with pytest.raises(RuntimeError, match="stop here"):
        s.propose(Slot("g002-00", 2, 0, meta={"parent": "A"}), FakeView(records, RESULTS, traces))
    text = s.proposer.messages[-1]["content"]
    assert "code of A" in text and "validation score 50%" in text
    assert TOY_TASKS[1].question in text and "Its answer: 12" in text and "Correct answer: 11" in text
    assert "Error: ValueError: bad literal" in text
    assert TOY_TASKS[0].question not in text  # solved tasks are not shown
    assert "- Checked: Added a check step. -> validation 60%, +10 points" in text
    assert "invalid: unparseable: no code" in text
    assert ("1. Solver: ## answer 12 [no answer field]" in text) == (traces is not None)
    assert s.proposer.kw["candidate"] == "g002-00" and s.proposer.kw["generation"] == 2


def test_built_from_the_shipped_config():
    config = load_config(ROOT / "experiments" / "mcts-local.toml")
    assert config.search.strategy == "mcts" and config.suite.name == "arith"
    assert config.models.meta.model == "local/qwen2.5-coder-1.5b"
    assert config.models.task.model == "local/qwen2.5-coder-0.5b"

    class Gateway:
        def complete(self, request):
            raise AssertionError("building calls no model")

        def resolve_protocol(self, model):
            return "sections"

    ctx = StrategyContext(settings=config.search.settings, config=config, gateway=Gateway(),
                          suite=TOY_SUITE, val_tasks=TOY_TASKS[:3])
    built = get_strategy("mcts").build(ctx)
    assert isinstance(built, MctsStrategy)
    assert built.generations == config.search.generations
    assert built.selection == config.search.settings.selection
    assert list(built.questions) == ["t00", "t01", "t02"]


# ------------------------------------------------------------------ kill -9


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return run_to_end(child, tmp_path_factory.mktemp("ref") / "c")


@pytest.mark.parametrize(("at", "parallel"), [(0.3, 1), (0.7, 2)])
def test_resume_after_kill_9_replays_without_rebilling(tmp_path, reference, at, parallel):
    d = tmp_path / "c"
    kill_and_resume(child, d, reference, at=at, parallel=parallel)


def test_archive_show_prints_the_lineage(reference):
    from typer.testing import CliRunner

    from metasearch.cli.app import app

    deep = max((r for r in summary(reference) if r[5]), key=lambda r: r[2])  # latest edit
    with Archive.open(reference, readonly=True) as arc:
        from metasearch.cli.archive_view import lineage

        chain = lineage(arc, deep[0])
    assert len(chain) >= 3 and chain[-1].startswith("seed-")
    out = CliRunner().invoke(app, ["archive", "show", str(reference), deep[0]])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    start = lines.index("lineage (parent first, back to the root):")
    shown = lines[start + 1:start + len(chain)]
    assert [x.split()[1] for x in shown] == chain[1:] and all(x.startswith("  <- ") for x in shown)
    js = CliRunner().invoke(app, ["archive", "show", str(reference), deep[0], "--json"])
    assert json.loads(js.output)["lineage"] == chain
