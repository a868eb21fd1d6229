"""Reflective evolution on a per-task Pareto frontier (GEPA-like).

A generation has ``width`` slots. When generation g opens (every slot of
g-1 is archived), the frontier is computed from the fully validated records
of earlier generations (a candidate stays while it is the best on at least
one validation task), and each slot draws its parent from it, weighted by
the tasks each one wins, seeded by (seed, candidate id); every
``merge_every``-th slot instead pairs two frontier agents that win on
different tasks. So slots and parents are fixed in :meth:`ask` and do not
depend on how many candidates run at once.

A mutation shows the meta agent the parent's code, a sample of its
validation tasks (failed ones first, with the trace of its LLM calls when the
archive keeps traces) and the earlier edits of that parent; a merge shows
both parents and the tasks each gets right that the other does not.

**The acceptance gate** (:meth:`should_prune`, the loop's optional
``Pruner`` seam): a child is first evaluated on the campaign's first
``pruning.minibatch`` validation tasks; it gets the full validation only if
it beats its parent there (a parent already perfect on them must be matched).
Otherwise it is recorded as ``pruned`` with a reason that starts
``rejected:``. With ``pruning.enabled = false`` there is no gate.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import replace

from metasearch.search.adas.context import TaskBrief
from metasearch.search.adas.proposer import Proposer, ProposerResult
from metasearch.search.base import ArchiveView, Proposal, ProposalOutcome, Slot
from metasearch.search.evolve.frontier import complementary_pair, frontier, sample_parent
from metasearch.search.feedback import DebugFeedback
from metasearch.search.novelty import ArchiveDuplicates
from metasearch.search.reflect import (
    TaskCase,
    debug_edit,
    edit_messages,
    experience,
    sample_cases,
    task_cases,
)
from metasearch.store.archive import Archive
from metasearch.store.records import CandidateRecord, candidate_id

__all__ = ["EvolveStrategy", "gate"]

MUTATE_JOB = (
    "Read how this agent did on the tasks above, especially the wrong answers and its LLM "
    "calls, and find what made it fail: the reasoning, the arithmetic, the answer format, a "
    "lost value. Rewrite the agent so that it gets those tasks right and keeps what works: "
    "for example a sharper instruction, a check step, an exact computation with run_python, "
    "or a vote. Do not repeat an edit already tried. In ## thought, say in one or two "
    "sentences what you changed and why; give the complete agent in ## code."
)
MERGE_JOB = (
    "The two agents above are each right on tasks the other gets wrong (shown above). "
    "Combine them into one agent that keeps what each does well: for example run both "
    "approaches and let a final step or a vote decide, or use one to check the other. In "
    "## thought, say in one or two sentences how the merge works; give the complete agent in "
    "## code."
)


def gate(child: Sequence[float], parent: Sequence[float]) -> str | None:
    """``None`` when ``child`` passes: it beats ``parent`` on the same tasks (or matches a
    perfect parent); else why it is rejected."""
    n = len(child)
    if n == 0 or len(parent) < n:
        return None  # nothing to compare with: accept
    mine, theirs = sum(child), sum(parent[:n])
    if mine > theirs or (mine == theirs == n):
        return None
    return (f"rejected: {mine:g}/{n} on the first {n} validation tasks, not above its "
            f"parent's {theirs:g}/{n} on the same tasks")


class EvolveStrategy:
    name = "evolve"

    def __init__(
        self,
        *,
        proposer: Proposer,
        task: TaskBrief,
        questions: Mapping[str, str],
        generations: int,
        width: int = 1,
        merge_every: int = 0,
        max_metric_calls: int | None = None,
        failures: int = 3,
        trace_chars: int = 1200,
        debug_rounds: int = 0,
        seed: int = 0,
    ) -> None:
        self.proposer, self.task, self.questions = proposer, task, dict(questions)
        self.generations, self.width, self.merge_every = generations, max(1, width), merge_every
        self.max_metric_calls, self.failures, self.trace_chars = (
            max_metric_calls, failures, trace_chars)
        self.debug_rounds, self.seed = debug_rounds, seed
        self._asked: set[str] = set()
        self._plans: dict[int, list[Slot] | None] = {}
        self._first: dict[str, int] = {}  # candidate id -> tasks in its first minibatch
        self.stopped = ""  # why the evolution ended before search.generations ("" = it did not)

    # ------------------------------------------------------------------ ask

    def ask(self, free: int, archive: Archive) -> list[Slot]:
        for g in range(1, self.generations + 1):
            plan = self._plan(g, archive)
            if not plan:
                return []  # stopped: no frontier, or the metric-call budget is spent
            if all(archive.has(s.candidate_id) for s in plan):
                continue
            new = [s for s in plan if not archive.has(s.candidate_id)
                   and s.candidate_id not in self._asked][:max(0, free)]
            self._asked.update(s.candidate_id for s in new)
            return new  # [] while this generation is in flight
        return []

    def _plan(self, g: int, archive: Archive) -> list[Slot] | None:
        if g not in self._plans:
            records = [r for r in archive.records()
                       if not isinstance(r.generation, int) or r.generation < g]
            self._plans[g] = self._select(records, g)
        return self._plans[g]

    def _select(self, records: list[CandidateRecord], g: int) -> list[Slot] | None:
        if self.max_metric_calls is not None:
            used = sum(r.val.n for r in records if r.val is not None)
            if used >= self.max_metric_calls:
                self.stopped = (f"the metric-call budget is spent: {used} task evaluations of "
                                f"{self.max_metric_calls} (search.evolve.max_metric_calls)")
                return None
        scored = {r.id: r for r in records if r.status == "ok" and r.val and r.val.scores}
        front = frontier({cid: dict(r.val.scores) for cid, r in scored.items()})  # type: ignore[union-attr]
        if not front:
            self.stopped = "no frontier: no seed or child scored above 0 on any validation task"
            return None
        slots = []
        for i in range(self.width):
            cid = candidate_id(g, i)
            rng = random.Random(f"{self.seed}:parent:{cid}")
            pair = (complementary_pair(front, rng)
                    if self.merge_every and (i + 1) % self.merge_every == 0 else None)
            parents = list(pair) if pair else [sample_parent(front, rng)]
            slots.append(Slot(cid, g, i, meta={
                "parents": parents, "kind": "merge" if pair else "mutation",
                "gates": [list(scored[p].val.scores.values()) for p in parents]}))  # type: ignore[union-attr]
        return slots

    # -------------------------------------------------------------- propose

    def propose(self, slot: Slot, archive: ArchiveView) -> ProposalOutcome:
        parents = [archive.get(str(p)) for p in slot.meta["parents"]]
        rng = random.Random(f"{self.seed}:tasks:{slot.candidate_id}")
        if len(parents) == 1:
            parent = parents[0]
            cases = task_cases(archive, parent.id, self.questions, trace_chars=self.trace_chars)
            shown = _mostly_failed(cases, self.failures, rng)
            edits = experience(archive.records(), parent)
            job = MUTATE_JOB
        else:
            shown, edits, job = self._contrast(archive, parents, rng), [], MERGE_JOB
        messages = edit_messages(
            self.task, [(p, archive.read_agent(p.id)) for p in parents], shown, edits,
            self.proposer.output_format, job=job)
        result = self.proposer.propose_from(
            messages, generation=slot.generation, sample_index=slot.index,
            candidate=slot.candidate_id, is_duplicate=ArchiveDuplicates(archive, near=False))
        return self._outcome(result, slot)

    def _contrast(self, archive: ArchiveView, parents: list[CandidateRecord],
                  rng: random.Random) -> list[TaskCase]:
        """For a merge: tasks one parent gets right and the other wrong, from each side."""
        a, b = (task_cases(archive, p.id, self.questions, trace_chars=self.trace_chars)
                for p in parents)
        b_by = {c.task_id: c for c in b}
        a_only = [c for c in a if not c.failed and b_by.get(c.task_id, c).failed]
        a_by = {c.task_id: c for c in a}
        b_only = [c for c in b if not c.failed and a_by.get(c.task_id, c).failed]
        k = max(1, self.failures)
        return sample_cases(a_only, k, rng) + sample_cases(b_only, k, rng)

    def fix(self, slot: Slot, proposal: Proposal, feedback: DebugFeedback, debug_round: int,
            archive: ArchiveView) -> ProposalOutcome:
        result = debug_edit(self.proposer, self.task, slot, proposal, feedback, debug_round,
                            archive)
        return self._outcome(result, slot)

    def _outcome(self, result: ProposerResult, slot: Slot) -> ProposalOutcome:
        parents = tuple(str(p) for p in slot.meta["parents"])
        outcome = result.to_outcome(parents=parents)
        meta = {"kind": slot.meta["kind"], "parents": list(parents)}
        if outcome.proposal is None:
            return replace(outcome, proposal=Proposal(code="", name="(unparsed edit)",
                                                      parents=parents, meta=meta))
        return replace(outcome, proposal=replace(outcome.proposal, meta=meta))

    # ----------------------------------------------------------------- gate

    def should_prune(self, slot: Slot, scores: Sequence[float]) -> str | None:
        """The acceptance gate, on the first minibatch of each evaluation (a debugged
        version faces it again); later minibatches are never pruned."""
        first = self._first.setdefault(slot.candidate_id, len(scores))
        if len(scores) != first:
            return None
        gates = slot.meta.get("gates") or [[]]  # a merge must beat the better of its parents
        return gate(scores, max(gates, key=lambda g: sum(g[:len(scores)])))

    def tell(self, record: CandidateRecord) -> None:
        return None  # the frontier is recomputed from the archive when a generation opens


def _mostly_failed(cases: Sequence[TaskCase], k: int, rng: random.Random) -> list[TaskCase]:
    """Up to ``k`` failed cases and one it got right (a contrast), in task order."""
    failed = sample_cases([c for c in cases if c.failed], k, rng)
    right = sample_cases([c for c in cases if not c.failed], 1, rng)
    order = {c.task_id: i for i, c in enumerate(cases)}
    return sorted(failed + right, key=lambda c: order[c.task_id])
