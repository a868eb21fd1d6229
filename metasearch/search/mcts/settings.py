"""``[search.mcts]``: selection, expansion and stopping of the tree search, each in this one place."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from metasearch.search.reflect import EditSettings


class MctsSettings(EditSettings):
    selection: Literal["uct", "soft_mix"] = Field(
        "uct", description='"uct" (descend by Q + c * sqrt(ln N_parent / N)) or "soft_mix" '
        "(AFlow: sample among the top_k nodes from a softmax of their scores mixed with a "
        "uniform distribution)")
    exploration: float = Field(
        1.4, ge=0, le=100, description="the UCT constant c, a number >= 0 (0: greedy)")
    max_children: int = Field(
        3, ge=1, le=100, description="edits a node gets before UCT descends past it, 1 to 100")
    top_k: int = Field(
        3, ge=1, le=100, description="the nodes soft_mix samples from, and the best scores "
        "patience watches, 1 to 100")
    alpha: float = Field(
        0.2, ge=0, le=10, description="soft_mix's softmax weight per percentage point of score "
        "(AFlow's 0.2), a number >= 0")
    mix: float = Field(
        0.3, ge=0, le=1, description="soft_mix's share of the uniform distribution (AFlow's "
        "lambda 0.3), between 0 and 1")
    patience: int = Field(
        0, ge=0, le=1000, description="stop when the mean of the top_k validation scores has "
        "not improved for this many generations, an integer >= 0 (0: never)")
    width: int | None = Field(
        None, ge=1, le=64, description="edits per generation, 1 to 64 (omit: "
        "run.parallel_candidates)")
    debug_rounds: int = Field(1, ge=0, le=10, description="an integer from 0 to 10")
    seed: int = Field(0, ge=0, description="an integer >= 0: seeds soft_mix and the sample of "
                      "failed tasks, per candidate id")
