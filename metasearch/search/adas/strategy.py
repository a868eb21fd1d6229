"""Meta Agent Search as a strategy: generations of proposals, attempts, debug rounds.

A generation has ``width`` lanes (ADAS has one; with ``run.parallel_candidates
= N`` there are N, all conditioned on the same archive view: a documented
extension). A lane makes up to ``attempts`` fresh proposals until one runs;
slot ``index = attempt * width + lane``, so one lane keeps ADAS's ids
(``g001-00``, ``g001-01``, ...). Generation g+1 opens once every lane of g is
settled. The archive shown to the meta agent carries validation fitness only;
everything stochastic is keyed by (generation, slot, round), so a resumed
campaign replays the same requests from the cache.
"""

from __future__ import annotations

from metasearch.search.adas.context import (
    MetaContext,
    TaskBrief,
    archive_entries,
    idea_for,
    select_archive_context,
)
from metasearch.search.adas.parse import Draft
from metasearch.search.adas.proposer import Proposer
from metasearch.search.adas.text import EXAMPLE_CODE
from metasearch.search.base import ArchiveView, Proposal, ProposalOutcome, Slot
from metasearch.search.feedback import DebugFeedback
from metasearch.search.novelty import ArchiveDuplicates
from metasearch.store.archive import Archive
from metasearch.store.records import CandidateRecord, candidate_id

#: Candidate statuses after which a lane makes its next attempt.
RETRY = frozenset({"invalid", "failed"})


class AdasStrategy:
    """The meta agent proposes; a lane that ends invalid or failing every task tries again."""

    name = "adas"
    #: Code the prompts show as an example: resubmitting it is not a new structure.
    reference_code: tuple[str, ...] = (EXAMPLE_CODE,)

    def __init__(
        self,
        *,
        proposer: Proposer,
        task: TaskBrief,
        generations: int,
        attempts: int = 1,
        width: int = 1,
        debug_rounds: int = 1,
        archive_context: int = 8,
        archive_chars: int = 6000,
        idea_hints: bool = False,
        near_duplicates: bool = True,
    ) -> None:
        self.proposer = proposer
        self.task = task
        self.generations = generations
        self.attempts = max(1, attempts)
        self.width = max(1, width)
        self.debug_rounds = debug_rounds
        self.archive_context = archive_context
        self.archive_chars = archive_chars
        self.idea_hints = idea_hints
        self.near_duplicates = near_duplicates
        self._asked: set[str] = set()
        self._structures: dict[str, str] = {}  # record id -> design skeleton, shared by views

    # ------------------------------------------------------------------ ask

    def ask(self, free: int, archive: Archive) -> list[Slot]:
        state = archive.state()
        closed = state.generation if state is not None else 0
        for g in range(max(1, closed + 1), self.generations + 1):
            open_slots = self._open_slots(g, archive)
            if open_slots is None:
                continue  # settled: every lane ran, or used its attempts
            new = [s for s in open_slots if s.candidate_id not in self._asked][:max(0, free)]
            self._asked.update(s.candidate_id for s in new)
            return new  # [] while this generation's slots are in flight
        return []

    def _open_slots(self, g: int, archive: Archive) -> list[Slot] | None:
        """The next slot of each unsettled lane of generation ``g``; None when all settled."""
        slots = []
        for lane in range(self.width):
            earlier: list[str] = []
            for attempt in range(self.attempts):
                index = attempt * self.width + lane
                cid = candidate_id(g, index)
                if not archive.has(cid):
                    slots.append(Slot(cid, g, index, sees=tuple(earlier),
                                      meta={"lane": lane, "attempt": attempt}))
                    break
                if archive.get(cid).status not in RETRY:
                    break
                earlier.append(cid)
        return sorted(slots, key=lambda s: s.index) if slots else None

    # -------------------------------------------------------------- propose

    def propose(self, slot: Slot, archive: ArchiveView) -> ProposalOutcome:
        entries = archive_entries(
            archive.records(), lambda r: archive.read_agent(r.id) if r.code_path else "")
        shown = select_archive_context(
            entries, max_entries=self.archive_context, max_chars=self.archive_chars)
        context = MetaContext(
            task=self.task, archive=shown,
            idea=idea_for(slot.generation, slot.index) if self.idea_hints else "",
        )
        result = self.proposer.propose(
            context, generation=slot.generation, sample_index=slot.index,
            candidate=slot.candidate_id, is_duplicate=self._duplicates(archive),
        )
        # the parents are the archive the meta agent was shown
        return result.to_outcome(parents=tuple(e.id for e in shown.entries if e.id))

    def fix(self, slot: Slot, proposal: Proposal, feedback: DebugFeedback, debug_round: int,
            archive: ArchiveView) -> ProposalOutcome:
        draft = Draft(thought=proposal.thought, name=proposal.name, code=proposal.code)
        result = self.proposer.debug(
            draft, feedback, task=self.task, generation=slot.generation,
            sample_index=slot.index, debug_round=debug_round, candidate=slot.candidate_id,
            is_duplicate=self._duplicates(archive),
        )
        return result.to_outcome(parents=proposal.parents)

    def tell(self, record: CandidateRecord) -> None:
        return None

    def _duplicates(self, archive: ArchiveView) -> ArchiveDuplicates:
        return ArchiveDuplicates(archive, near=self.near_duplicates, structures=self._structures)

