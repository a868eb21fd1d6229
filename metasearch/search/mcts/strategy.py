"""Tree search over code edits (AFlow-like): select a node, edit it, evaluate, back up the mean.

A generation has ``width`` slots. When generation g opens (every slot of
g-1 is archived), the tree is built from the records of earlier generations
only and each slot selects its parent on it (UCT with a virtual loss per
pending edit, or AFlow's soft mix seeded by (seed, candidate id)), so slots
and parents are fixed in :meth:`ask` and do not depend on how many
candidates run at once. Expansion asks the meta agent for one targeted edit
of the parent, shown its code, a sample of its failed validation tasks
(question, wrong answer, gold answer and, when the archive keeps them, the
trace of its LLM calls) and the log of earlier edits of that parent with
their score change. The search stops after ``search.generations``, when the
budget runs out, or when the top-k mean has not improved for ``patience``
generations.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import replace
from typing import Literal

from metasearch.search.adas.context import TaskBrief
from metasearch.search.adas.proposer import Proposer, ProposerResult
from metasearch.search.base import ArchiveView, Proposal, ProposalOutcome, Slot
from metasearch.search.feedback import DebugFeedback
from metasearch.search.mcts.tree import Tree, nodes_of, select_soft_mix, select_uct, top_k_mean
from metasearch.search.novelty import ArchiveDuplicates
from metasearch.search.reflect import (
    debug_edit,
    edit_messages,
    experience,
    sample_cases,
    task_cases,
)
from metasearch.store.archive import Archive
from metasearch.store.records import CandidateRecord, candidate_id

EDIT_JOB = (
    "Make ONE targeted change to this agent so that it answers the failed tasks above "
    "correctly, and keep what already works. Look at where its answers go wrong (the "
    "reasoning, the arithmetic, the answer format, a lost value) and change the part of the "
    "code or the instruction responsible: for example a clearer instruction, a check step, "
    "an exact computation with run_python, or a vote. Do not repeat an edit already tried. "
    "In ## thought, say in one or two sentences what you changed and why; give the complete "
    "agent in ## code."
)


class MctsStrategy:
    name = "mcts"

    def __init__(
        self,
        *,
        proposer: Proposer,
        task: TaskBrief,
        questions: Mapping[str, str],
        generations: int,
        width: int = 1,
        selection: Literal["uct", "soft_mix"] = "uct",
        exploration: float = 1.4,
        max_children: int = 3,
        top_k: int = 3,
        alpha: float = 0.2,
        mix: float = 0.3,
        patience: int = 0,
        failures: int = 3,
        trace_chars: int = 1200,
        debug_rounds: int = 1,
        seed: int = 0,
    ) -> None:
        self.proposer, self.task, self.questions = proposer, task, dict(questions)
        self.generations, self.width = generations, max(1, width)
        self.selection, self.exploration, self.max_children = selection, exploration, max_children
        self.top_k, self.alpha, self.mix, self.patience = top_k, alpha, mix, patience
        self.failures, self.trace_chars = failures, trace_chars
        self.debug_rounds, self.seed = debug_rounds, seed
        self._asked: set[str] = set()
        self._plans: dict[int, list[Slot] | None] = {}
        self.stopped = ""  # why the tree search ended before search.generations ("" = it did not)

    # ------------------------------------------------------------------ ask

    def ask(self, free: int, archive: Archive) -> list[Slot]:
        for g in range(1, self.generations + 1):
            plan = self._plan(g, archive)
            if not plan:
                return []  # stopped (patience, or nothing left to edit)
            if all(archive.has(s.candidate_id) for s in plan):
                continue  # settled
            new = [s for s in plan if not archive.has(s.candidate_id)
                   and s.candidate_id not in self._asked][:max(0, free)]
            self._asked.update(s.candidate_id for s in new)
            return new  # [] while this generation's edits are in flight
        return []

    def _plan(self, g: int, archive: Archive) -> list[Slot] | None:
        """Generation ``g``'s slots and parents, from the records of earlier generations only."""
        if g not in self._plans:
            records = [r for r in archive.records()
                       if not isinstance(r.generation, int) or r.generation < g]
            self._plans[g] = None if self._converged(records, g) else self._select(records, g)
        return self._plans[g]

    def _converged(self, records: list[CandidateRecord], g: int) -> bool:
        if not self.patience or g - 1 < self.patience:
            return False

        def best_by(h: int) -> float:
            return top_k_mean([r.val.mean for r in records if r.status == "ok" and r.val
                               and (not isinstance(r.generation, int) or r.generation <= h)],
                              self.top_k)

        if best_by(g - 1) > best_by(g - 1 - self.patience):
            return False
        self.stopped = (f"the mean of the top {self.top_k} validation scores did not improve "
                        f"for {self.patience} generations (before generation {g})")
        return True

    def _select(self, records: list[CandidateRecord], g: int) -> list[Slot] | None:
        tree = Tree.of(nodes_of(records))
        slots = []
        for i in range(self.width):
            cid = candidate_id(g, i)
            if self.selection == "uct":
                parent = select_uct(tree, self.exploration, self.max_children)
            else:
                parent = select_soft_mix(tree, self.top_k, self.alpha, self.mix,
                                         random.Random(f"{self.seed}:select:{cid}"))
            if parent is None:
                break
            slots.append(Slot(cid, g, i, meta={"parent": parent,
                                               "parent_q": round(tree.q(parent), 6)}))
            tree.visit(parent)
        if not slots:
            self.stopped = "no agent left to edit (no seed or edit scored ok)"
        return slots or None

    # -------------------------------------------------------------- propose

    def propose(self, slot: Slot, archive: ArchiveView) -> ProposalOutcome:
        parent = archive.get(str(slot.meta["parent"]))
        cases = task_cases(archive, parent.id, self.questions, trace_chars=self.trace_chars)
        failed = [c for c in cases if c.failed]
        shown = sample_cases(failed, self.failures,
                             random.Random(f"{self.seed}:tasks:{slot.candidate_id}"))
        messages = edit_messages(
            self.task, [(parent, archive.read_agent(parent.id))], shown,
            experience(archive.records(), parent), self.proposer.output_format, job=EDIT_JOB)
        result = self.proposer.propose_from(
            messages, generation=slot.generation, sample_index=slot.index,
            candidate=slot.candidate_id, is_duplicate=ArchiveDuplicates(archive, near=False))
        return self._outcome(result, slot, parent.id)

    def fix(self, slot: Slot, proposal: Proposal, feedback: DebugFeedback, debug_round: int,
            archive: ArchiveView) -> ProposalOutcome:
        result = debug_edit(self.proposer, self.task, slot, proposal, feedback, debug_round,
                            archive)
        return self._outcome(result, slot, str(slot.meta["parent"]))

    def _outcome(self, result: ProposerResult, slot: Slot, parent: str) -> ProposalOutcome:
        outcome = result.to_outcome(parents=(parent,))
        if outcome.proposal is None:  # unparsed: still an edit of the parent, for the tree
            return replace(outcome, proposal=Proposal(code="", name="(unparsed edit)",
                                                      parents=(parent,)))
        meta = {"parent": parent, "selection": self.selection,
                "parent_q": slot.meta.get("parent_q")}
        return replace(outcome, proposal=replace(outcome.proposal, meta=meta))

    def tell(self, record: CandidateRecord) -> None:
        return None  # the tree is rebuilt from the archive when a generation opens
