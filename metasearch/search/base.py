"""The seam between a campaign and a search strategy.

A strategy decides *what to try next* and turns it into code; the campaign
runner evaluates, archives and tracks. Optuna-style ask/tell:

- :meth:`SearchStrategy.ask` fills one candidate slot with a proposal (or a
  recorded reason why there is none);
- :meth:`SearchStrategy.fix` answers evaluation feedback (debug rounds);
- :meth:`SearchStrategy.tell` reports the archived record back.

Strategies read the archive; only the runner writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from metasearch.store.archive import Archive, CandidateRecord
from metasearch.search.adas.prompts import DebugFeedback
from metasearch.search.adas.parse import Proposal
from metasearch.search.adas.proposer import ProposalOutcome


@dataclass(frozen=True)
class Slot:
    """One place for a new candidate: its id is fixed before anything is spent."""

    candidate_id: str
    generation: int
    index: int


class SearchStrategy(Protocol):
    name: str

    def ask(self, slot: Slot, archive: Archive) -> ProposalOutcome:
        """Propose code for ``slot``, conditioned on the archive (validation scores only)."""
        ...

    def fix(
        self, slot: Slot, proposal: Proposal, feedback: DebugFeedback, debug_round: int
    ) -> ProposalOutcome:
        """Revise ``proposal`` after its evaluation failed or scored zero."""
        ...

    def tell(self, record: CandidateRecord) -> None:
        """Learn from an archived candidate (a no-op for stateless strategies)."""
        ...
