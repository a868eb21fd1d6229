"""Random search over a declarative space: the reference strategy and the baseline.

Each slot's parameters are drawn with a ``random.Random`` seeded by (seed,
candidate id), so a trial depends on nothing but its id: a resumed campaign,
or one with more candidates in flight, proposes exactly the same agents. A
draw conditions on no record, so its parents are ``()`` (the seeds are not
parents: nothing of theirs is used). Generations are only ids here
(``g001-00`` ... ``g001-<width-1>``); slots of a later generation open while
earlier ones still run.
"""

from __future__ import annotations

from metasearch.search.base import ArchiveView, ProposalOutcome, Slot
from metasearch.search.spaces import RandomDraw, Space, seeded_random
from metasearch.search.spaces.trial import propose_trial
from metasearch.store.archive import Archive
from metasearch.store.records import CandidateRecord, candidate_id


class RandomStrategy:
    name = "random"

    def __init__(self, *, space: Space, generations: int, width: int = 4, seed: int = 0) -> None:
        self.space, self.generations, self.width, self.seed = space, generations, width, seed
        self._asked: set[str] = set()

    def ask(self, free: int, archive: Archive) -> list[Slot]:
        slots: list[Slot] = []
        for g in range(1, self.generations + 1):
            for i in range(self.width):
                cid = candidate_id(g, i)
                if len(slots) >= free:
                    return slots
                if not archive.has(cid) and cid not in self._asked:
                    self._asked.add(cid)
                    slots.append(Slot(cid, g, i))
        return slots

    def propose(self, slot: Slot, archive: ArchiveView) -> ProposalOutcome:
        values = self.space.sample(RandomDraw(seeded_random(self.seed, slot.candidate_id)))
        return propose_trial(self.space, values, {"seed": self.seed})

    def tell(self, record: CandidateRecord) -> None:
        return None
