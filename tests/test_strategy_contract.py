"""Every registered strategy passes the shipped contract suite (metasearch.testing)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from metasearch.candidate.validate import validate_code
from metasearch.llm.types import LLMRequest
from metasearch.search.adas.context import TaskBrief
from metasearch.search.adas.proposer import Proposer
from metasearch.search.adas.strategy import AdasStrategy
from metasearch.search.evolve import EvolveStrategy
from metasearch.search.mcts import MctsStrategy
from metasearch.search.optuna import OptunaSettings, OptunaStrategy, open_study
from metasearch.search.random import RandomStrategy
from metasearch.search.spaces import load_space
from metasearch.testing import TOY_SUITE, StrategyContract, toy_agent
from metasearch.testing.campaigns import META_MODEL, TOY_TASKS

sys.path.insert(0, str(Path(__file__).parent / "toy_strategy"))
from toy_strategy import ToyStrategy  # noqa: E402

RAISES = ("def forward(self, taskInfo):\n"
          "    a = LLMAgentBase(['thinking', 'answer'], 'Broken')\n"
          "    thinking, answer = a([taskInfo], 'Solve it.')\n"
          "    return answer.content + 1\n")


def sections(code: str, name: str) -> str:
    return f"## thought\nAn idea.\n\n## name\n{name}\n\n## code\n```python\n{code}```\n"


class TestAdasContract(StrategyContract):
    """ADAS with three lanes, two attempts and a debug round: every path of the strategy."""

    def make_strategy(self, gateway, parallel):
        proposer = Proposer(complete=gateway.complete, model=META_MODEL, reflexion_rounds=0,
                            repair_rounds=0, validate=validate_code)
        # the width is fixed, so the records must not depend on parallel_candidates
        return AdasStrategy(proposer=proposer, task=TaskBrief.from_suite(TOY_SUITE),
                            generations=2, attempts=2, width=3, debug_rounds=1)

    def meta_reply(self, request: LLMRequest) -> str:
        cid = request.candidate or ""
        last = request.messages[-1]["content"]
        n = int(re.sub(r"\D", "", cid) or 0)
        if "We ran your agent on" in last:  # a debug round: the fixed agent
            return sections(toy_agent(2, "Fixed."), f"Fixed {cid}")
        if cid == "g001-01":
            return "no code here"  # invalid: the lane's second attempt is g001-04
        if cid == "g001-02":
            return sections(RAISES, "Broken")  # fails every task: debugged
        return sections(toy_agent(1 + n % 3, f"Solve it, variant {n}."), f"Agent {cid}")


class TestToyContract(StrategyContract):
    """The third-party toy strategy: no meta model at all."""

    def make_strategy(self, gateway, parallel):
        return ToyStrategy(generations=3, width=2)


class TestRandomContract(StrategyContract):
    """Random trials of the shipped reasoning space; seed 2's six trials use every block."""

    def make_strategy(self, gateway, parallel):
        return RandomStrategy(space=load_space("search_spaces/reasoning.toml"), generations=2,
                              width=3, seed=2)


class TestOptunaContract(StrategyContract):
    """TPE over the shipped reasoning space, its study in a journal file beside the campaign."""

    def make_strategy(self, gateway, parallel):
        space = load_space("search_spaces/reasoning.toml")
        settings = OptunaSettings(width=3, seed=2, startup_trials=2)
        return OptunaStrategy(space=space, study=open_study(self.campaign_dir, settings, space),
                              settings=settings, generations=2)


class TestOptunaParetoContract(StrategyContract):
    """Two objectives (score, calls per task) with NSGA-II in an RDB (sqlite URL) storage."""

    def make_strategy(self, gateway, parallel):
        space = load_space("search_spaces/reasoning.toml")
        url = f"sqlite:///{self.campaign_dir.parent / (self.campaign_dir.name + '.db')}"
        settings = OptunaSettings(width=3, seed=1, objectives=["score", "cost"], cost="calls",
                                  sampler="nsga2", storage=url)
        return OptunaStrategy(space=space, study=open_study(self.campaign_dir, settings, space),
                              settings=settings, generations=2)


def edit_reply(request: LLMRequest) -> str:
    """A scripted meta model for the edit strategies: one new agent per candidate id.

    g001-01 replies without code (invalid), g002-00 with an agent that raises (debugged).
    """
    cid = request.candidate or ""
    last = request.messages[-1]["content"]
    n = int(re.sub(r"\D", "", cid) or 0)
    if "We ran your agent on" in last:
        return sections(toy_agent(2, f"Fixed {cid}."), f"Fixed {cid}")
    if cid == "g001-01":
        return "no code here"
    if cid == "g002-00":
        return sections(RAISES, "Broken")
    return sections(toy_agent(1 + n % 2, f"Edit {cid}: check the sum."), f"Edit {cid}")


def edit_proposer(gateway) -> Proposer:
    return Proposer(complete=gateway.complete, model=META_MODEL, reflexion_rounds=0,
                    repair_rounds=0, validate=validate_code)


def mcts(gateway, parallel) -> MctsStrategy:
    return MctsStrategy(proposer=edit_proposer(gateway), task=TaskBrief.from_suite(TOY_SUITE),
                        questions={t.id: t.question for t in TOY_TASKS}, generations=3,
                        width=2, max_children=2, debug_rounds=1)


def evolve(gateway, parallel) -> EvolveStrategy:
    return EvolveStrategy(proposer=edit_proposer(gateway), task=TaskBrief.from_suite(TOY_SUITE),
                          questions={t.id: t.question for t in TOY_TASKS}, generations=3,
                          width=2, merge_every=2, debug_rounds=1, seed=1)


#: The edit strategies as the contract runs them (tests/edit_kit.py runs them in a child).
EDIT_STRATEGIES = {"mcts": mcts, "evolve": evolve}


class TestMctsContract(StrategyContract):
    """UCT tree search, two edits per generation, an invalid edit and a debugged one."""

    def make_strategy(self, gateway, parallel):
        return mcts(gateway, parallel)

    def meta_reply(self, request: LLMRequest) -> str:
        return edit_reply(request)


class TestEvolveContract(StrategyContract):
    """Frontier parents, a merge in every generation, an invalid child and a debugged one."""

    def make_strategy(self, gateway, parallel):
        return evolve(gateway, parallel)

    def meta_reply(self, request: LLMRequest) -> str:
        return edit_reply(request)


class TestMctsSoftMixContract(TestMctsContract):
    """AFlow's soft-mix selection, seeded by candidate id."""

    def make_strategy(self, gateway, parallel):
        return MctsStrategy(proposer=edit_proposer(gateway), task=TaskBrief.from_suite(TOY_SUITE),
                            questions={t.id: t.question for t in TOY_TASKS}, generations=3,
                            width=2, selection="soft_mix", top_k=2, seed=1)
