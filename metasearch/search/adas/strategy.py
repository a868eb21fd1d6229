"""Meta Agent Search (ADAS): the meta agent writes each new agent, conditioned on the archive.

The archive shown to the meta agent carries validation fitness only; test
scores never reach it. Everything stochastic is keyed by (generation, slot,
round), so a resumed campaign replays the same requests from the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from metasearch.store.archive import Archive, CandidateRecord
from metasearch.search.base import Slot
from metasearch.search.adas.prompts import (
    ArchiveEntry,
    DebugFeedback,
    MetaContext,
    TaskBrief,
    idea_for,
    select_archive_context,
)
from metasearch.search.adas.parse import Proposal
from metasearch.search.adas.proposer import ProposalOutcome, Proposer
from metasearch.evaluation.stats import Fitness, adas_fitness_string


class AdasStrategy:
    """One proposal per slot from the meta agent, plus debug rounds on failure.

    With ``idea_hints`` each slot's prompt also suggests a concrete design
    (``prompts.IDEAS``, rotating): an addition to ADAS for small meta agents.
    """

    name = "adas"

    def __init__(
        self,
        *,
        proposer: Proposer,
        task: TaskBrief,
        archive_context: int = 8,
        archive_chars: int = 6000,
        read_code: Callable[[CandidateRecord], str] | None = None,
        idea_hints: bool = False,
    ) -> None:
        self.proposer = proposer
        self.idea_hints = idea_hints
        self.task = task
        self.archive_context = archive_context
        self.archive_chars = archive_chars
        self._read_code = read_code

    def ask(self, slot: Slot, archive: Archive) -> ProposalOutcome:
        entries = archive_entries(archive.records(), self._code_reader(archive))
        context = MetaContext(
            task=self.task,
            archive=select_archive_context(
                entries, max_entries=self.archive_context, max_chars=self.archive_chars
            ),
            idea=idea_for(slot.generation, slot.index) if self.idea_hints else "",
        )
        return self.proposer.propose(
            context, generation=slot.generation, sample_index=slot.index,
            candidate=slot.candidate_id,
        )

    def fix(
        self, slot: Slot, proposal: Proposal, feedback: DebugFeedback, debug_round: int
    ) -> ProposalOutcome:
        return self.proposer.debug(
            proposal, feedback, task=self.task, generation=slot.generation,
            sample_index=slot.index, debug_round=debug_round, candidate=slot.candidate_id,
        )

    def tell(self, record: CandidateRecord) -> None:
        return None

    def _code_reader(self, archive: Archive) -> Callable[[CandidateRecord], str]:
        if self._read_code is not None:
            return self._read_code
        return lambda r: archive.read_agent(r.id) if r.code_path else ""


def archive_entries(
    records: Sequence[CandidateRecord], read_code: Callable[[CandidateRecord], str]
) -> list[ArchiveEntry]:
    """The evaluated agents as the meta agent sees them: validation fitness, never test."""
    out = []
    for r in records:
        if r.status != "ok" or r.val is None:
            continue
        fitness = Fitness(
            mean=r.val.mean, ci_low=r.val.ci_low, ci_high=r.val.ci_high,
            median=r.val.median if r.val.median is not None else r.val.mean, n=r.val.n,
        )
        out.append(ArchiveEntry(
            name=r.name, thought=r.thought, code=read_code(r),
            fitness=adas_fitness_string(fitness), score=r.val.mean,
            generation=r.generation, fingerprint=r.fingerprint,
        ))
    return out


def seed_paths(archive_dir: Path, seeds: Sequence[str] | str) -> list[Path]:
    """The seed files a config names (``"all"`` = every ``.py`` in ``archive/``, ADAS order)."""
    from metasearch.runtime.seeds import list_seeds

    if seeds == "all":
        return [Path(s.path) for s in list_seeds(archive_dir)]
    return [archive_dir / f"{name}.py" for name in seeds]
