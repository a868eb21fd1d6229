"""A toy search strategy: each slot rewrites the best agent it may see with more passes.

It calls no meta model. It exists to prove that a strategy is one module plus
one entry point (``metasearch.strategies``), and it is the smallest reference
implementation of the seam, as Optuna's RandomSampler is of its samplers.
"""

from __future__ import annotations

import random

from pydantic import Field

from metasearch.search.base import Proposal, ProposalOutcome, Slot
from metasearch.search.registry import StrategyContext, StrategySettings, StrategySpec
from metasearch.store.records import candidate_id


class ToySettings(StrategySettings):
    width: int = Field(2, ge=1, le=16, description="slots per generation, 1 to 16")
    max_passes: int = Field(3, ge=1, le=8, description="the most LLM calls per task, 1 to 8")


class ToyStrategy:
    name = "toy"

    def __init__(self, *, generations: int, width: int = 2, max_passes: int = 3) -> None:
        self.generations, self.width, self.max_passes = generations, width, max_passes
        self._asked: set[str] = set()

    def ask(self, free, archive):
        for g in range(1, self.generations + 1):
            ids = [candidate_id(g, i) for i in range(self.width)]
            if all(archive.has(c) for c in ids):
                continue
            new = [Slot(c, g, i) for i, c in enumerate(ids)
                   if not archive.has(c) and c not in self._asked][:free]
            self._asked.update(s.candidate_id for s in new)
            return new
        return []

    def propose(self, slot, archive):
        parent = archive.best()
        rng = random.Random(slot.candidate_id)  # the same slot always proposes the same agent
        passes = rng.randint(1, self.max_passes)
        word = rng.choice(["carefully", "slowly", "twice", "in your head"])
        body = "".join(
            f"    thinking, answer = a([taskInfo], 'Add the numbers {word}, pass {k}.')\n"
            for k in range(passes))
        code = ("def forward(self, taskInfo):\n"
                "    a = LLMAgentBase(['thinking', 'answer'], 'Adder')\n" + body
                + "    return answer\n")
        parents = (parent.id,) if parent is not None else ()
        return ProposalOutcome(
            status="valid", stages=("parsed", "normalised", "valid"),
            proposal=Proposal(code=code, name=f"Toy {passes}x {word}", thought="More passes.",
                              parents=parents, params={"passes": passes, "word": word}))

    def tell(self, record):
        return None


def build(ctx: StrategyContext) -> ToyStrategy:
    s: ToySettings = ctx.settings
    return ToyStrategy(generations=ctx.config.search.generations, width=s.width,
                       max_passes=s.max_passes)


SPEC = StrategySpec(name="toy", settings=ToySettings, build=build,
                    summary="a toy: more passes of the best agent it may see")
