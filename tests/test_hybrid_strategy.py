"""The hybrid strategy: the meta agent writes structures with knobs, Optuna tunes them.

Contract suite, a scripted campaign where a knob decides the score (so the
test fails if tuning does nothing), the baked export of its best, the
prompt, the repair round for a malformed knob, pruning, the shipped config.
"""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest

from metasearch.llm.types import LLMRequest
from metasearch.search.adas.context import TaskBrief
from metasearch.search.adas.proposer import Proposer
from metasearch.search.hybrid import HybridStrategy, knob_validator, open_studies
from metasearch.search.hybrid.prompt import KNOBS_SECTION
from metasearch.store.archive import Archive
from metasearch.testing import TOY_SUITE, StrategyContract
from metasearch.testing.campaigns import (
    META_MODEL,
    TOY_TASKS,
    ScriptedModel,
    close_campaign,
    toy_campaign,
)

RAISES = ("def forward(self, taskInfo):\n"
          "    n = tunable('passes', 1, low=1, high=2)\n"
          "    a = LLMAgentBase(['thinking', 'answer'], 'Broken')\n"
          "    thinking, answer = a([taskInfo], 'Solve it.')\n"
          "    return answer.content + n\n")


def sections(code: str, name: str, thought: str = "An idea.") -> str:
    return f"## thought\n{thought}\n\n## name\n{name}\n\n## code\n```python\n{code}```\n"


def passes_agent(tag: str) -> str:
    """A toy agent with two knobs: 3 x 2 = 6 configurations."""
    return ("def forward(self, taskInfo):\n"
            "    n = tunable('passes', 1, low=1, high=3)\n"
            "    style = tunable('style', 'step by step', choices=['step by step', 'briefly'])\n"
            f"    a = LLMAgentBase(['thinking', 'answer'], 'Solver {tag}')\n"
            "    for k in range(n):\n"
            "        thinking, answer = a([taskInfo], 'Solve it ' + style + ' (pass ' + str(k) + ')')\n"
            "    return answer\n")


def two_agents(tag: str) -> str:
    return ("def forward(self, taskInfo):\n"
            "    t = tunable('temperature', 0.5, low=0.1, high=1.0)\n"
            f"    a = LLMAgentBase(['thinking', 'answer'], 'Drafter {tag}', temperature=t)\n"
            "    b = LLMAgentBase(['thinking', 'answer'], 'Checker')\n"
            "    thinking, answer = a([taskInfo], 'Draft an answer.')\n"
            "    thinking, answer = b([taskInfo, answer], 'Check it and answer.')\n"
            "    return answer\n")


def hybrid_reply(request: LLMRequest) -> str:
    """g001-00: two knobs; g002-00 raises (debugged into two agents); g003-00 no code."""
    cid = request.candidate or ""
    last = request.messages[-1]["content"]
    if "We ran your agent on" in last:
        return sections(two_agents(cid), f"Fixed {cid}")
    if cid.startswith("g002"):
        return sections(RAISES, "Broken")
    if cid.startswith("g003"):
        return "no code here"
    return sections(passes_agent(cid), f"Passes {cid}")


def proposer(gateway, repair_rounds: int = 0) -> Proposer:
    return Proposer(complete=gateway.complete, model=META_MODEL, reflexion_rounds=0,
                    repair_rounds=repair_rounds, validate=knob_validator(6))


def hybrid(directory: Path, gateway, **kw) -> HybridStrategy:
    repair_rounds = kw.pop("repair_rounds", 0)
    studies = kw.pop("studies", None) or open_studies(directory)
    args = dict(generations=3, width=1, trials=3, batch=2, startup_trials=1, seed=0,
                debug_rounds=1, idea_hints=False) | kw
    return HybridStrategy(proposer=proposer(gateway, repair_rounds),
                          task=TaskBrief.from_suite(TOY_SUITE), studies=studies, **args)


class TestHybridContract(StrategyContract):
    """Three structures: one tuned (3 trials in batches of 2), one debugged and tuned, one invalid."""

    def make_strategy(self, gateway, parallel):
        return hybrid(self.campaign_dir, gateway)

    def meta_reply(self, request: LLMRequest) -> str:
        return hybrid_reply(request)


# ------------------------------------------------------------ tuning matters


class SamplesModel(ScriptedModel):
    """A task model whose first sample of a prompt is wrong and every later one right.

    So a majority vote over n samples is right only when n >= 3 (n = 2 ties,
    and the tie goes to the first answer): tuning ``samples`` is the only way
    up from 0%.
    """

    def __call__(self, req: LLMRequest) -> str:
        if req.role == "meta":
            return super().__call__(req)
        with self._lock:
            self.requests.append(req)
        text = "\n".join(m["content"] for m in req.messages)
        task = next(t for t in TOY_TASKS if t.question in text)
        gold = int(task.answer)
        return f"## thinking\nI add them.\n\n## answer\n{gold if req.sample_index else gold + 1}"


VOTE = ("def forward(self, taskInfo):\n"
        "    from collections import Counter\n"
        "    n = tunable('samples', 1, low=1, high=6)\n"
        "    solver = LLMAgentBase(['thinking', 'answer'], 'Solver', temperature=0.8)\n"
        "    answers = []\n"
        "    for _ in range(n):\n"
        "        thinking, answer = solver([taskInfo], 'Solve the task.')\n"
        "        answers.append(str(answer.content).strip())\n"
        "    return Counter(answers).most_common(1)[0][0]\n")


def vote_reply(request: LLMRequest) -> str:
    return sections(VOTE, "Vote", "Vote over samples; how many is a knob.")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    d = tmp_path_factory.mktemp("tuned") / "c"
    model = SamplesModel(vote_reply)
    campaign = toy_campaign(d, model, lambda gw, _n: hybrid(d, gw, generations=1, trials=4,
                                                            startup_trials=4, debug_rounds=0),
                            seeds=[], pruning=False)
    try:
        result = campaign.run()
    finally:
        close_campaign(campaign)
    return d, result, model


def test_tuning_a_knob_changes_the_score(tuned):
    d, result, _ = tuned
    records = {r.id: r for r in result.records}
    structure = records["g001-00"]
    assert structure.meta["params"] == {"samples": 1} and structure.val.mean == 0.0
    trials = [r for r in result.records if r.id != "g001-00"]
    assert [r.id for r in trials] == ["g001-01", "g001-02", "g001-03", "g001-04"]
    assert all(r.parent_ids == ("g001-00",) and r.strategy == "hybrid" for r in trials)
    for r in trials:  # each trial is the structure with its values written in, and scored so
        n = r.meta["params"]["samples"]
        assert f"tunable('samples', {n}, low=1, high=6)" in Archive.open(d, readonly=True) \
            .read_agent(r.id)
        assert r.val.mean == (1.0 if n >= 3 else 0.0), (r.id, n)
    best = result.best
    assert best is not None and best.id != "g001-00" and best.val.mean == 1.0
    assert best.meta["params"]["samples"] >= 3 and best.test is not None and best.test.mean == 1.0
    study = open_studies(d).open("g001-00")
    kept = [t for t in study.trials if t.state.name != "FAIL"]
    assert len(kept) == 5 and study.best_value == 1.0
    assert kept[0].params == {"samples": 1} and kept[0].value == 0.0
    values = [tuple(t.params.items()) for t in kept]
    assert len(set(values)) == len(values)  # a repeated draw is redrawn, not evaluated again
    assert all(t.user_attrs.get("candidate_id") is None for t in study.trials if t not in kept)


def test_the_exported_best_has_its_tuned_value_baked_in(tuned, tmp_path):
    from test_export import load_module
    from test_export_helpers import FakeOpenAI, sections_reply

    from metasearch.interop.export import export_py

    d, result, _ = tuned
    n = result.best.meta["params"]["samples"]
    path, rec, _ = export_py(d, tmp_path / "agent.py", best=True, protocol="sections")
    text = path.read_text()
    assert rec.id == result.best.id
    assert "tunable" not in text.split("# </export>")[0].split("AGENT_SOURCE")[1]
    assert f"\n    n = {n}\n" in text and f"# Tuned knobs, baked in as literals: samples={n}" in text
    module = load_module(path)
    with FakeOpenAI(sections_reply("5")) as server:
        answer = module.solve("What is 2+3?", model="openai/fake", api_base=server.url,
                              api_key="x")
    assert answer == "5" and len(server.requests) == n  # the baked value is what ran


def test_the_meta_agent_is_told_about_knobs_and_sees_each_structure_once(tuned):
    _, _, model = tuned
    meta = model.calls("meta")
    assert len(meta) == 1  # one structure; the trials call no meta model
    prompt = meta[0].messages[-1]["content"]
    head = KNOBS_SECTION.split("\n")[0]
    assert head in prompt and "tunable('samples', 3, low=1, high=7)" in prompt
    assert prompt.index(head) < prompt.index("# A correct example") < prompt.index("# The archive")


def test_later_structures_see_the_tuned_best_not_every_trial(tmp_path):
    d = tmp_path / "c"
    model = SamplesModel(lambda r: vote_reply(r) if r.candidate == "g001-00"
                         else sections(two_agents("x"), "Two"))
    campaign = toy_campaign(d, model, lambda gw, _n: hybrid(d, gw, generations=2, trials=4,
                                                            startup_trials=4, debug_rounds=0),
                            seeds=[])
    try:
        result = campaign.run()
    finally:
        close_campaign(campaign)
    second = [r for r in model.calls("meta") if r.candidate == "g002-00"][0]
    archive_text = second.messages[-1]["content"].split("# The archive")[1].split("# Rules")[0]
    best = max((r for r in result.records if r.generation == 1), key=lambda r: r.val.mean)
    assert archive_text.count("### ") == 1 and f"### {best.name} " in archive_text
    assert result.records[-1].parent_ids == ("g002-00",)


def test_a_malformed_knob_goes_back_to_the_meta_agent_as_a_finding(tmp_path):
    d = tmp_path / "c"
    bad = VOTE.replace("low=1, high=6", "low=4, high=6")  # default 1 outside [4, 6]

    def reply(request: LLMRequest) -> str:
        return sections(VOTE if "Fix" in request.messages[-1]["content"] else bad, "Vote")

    model = SamplesModel(reply)
    campaign = toy_campaign(d, model, lambda gw, _n: hybrid(d, gw, generations=1, trials=0,
                                                            debug_rounds=0, repair_rounds=1),
                            seeds=[])
    try:
        result = campaign.run()
    finally:
        close_campaign(campaign)
    meta = model.calls("meta")
    assert len(meta) == 2
    repair = meta[1].messages[-1]["content"]
    assert "The default 1 of knob 'samples' is outside [4, 6]. Fix: Choose a default" in repair
    assert result.records[0].status == "ok" and result.records[0].meta["params"] == {"samples": 1}


def test_a_structure_without_knobs_gets_no_trials(tmp_path):
    d = tmp_path / "c"
    plain = re.sub(r"tunable\('samples', 1, low=1, high=6\)", "3", VOTE)
    model = SamplesModel(lambda r: sections(plain, "Plain vote"))
    campaign = toy_campaign(d, model, lambda gw, _n: hybrid(d, gw, generations=1),
                            seeds=[])
    try:
        result = campaign.run()
    finally:
        close_campaign(campaign)
    assert [r.id for r in result.records] == ["g001-00"] and result.records[0].val.mean == 1.0
    assert not optuna.get_all_study_names(open_studies(d).storage)


def test_trials_are_pruned_against_the_best_earlier_trial(tmp_path):
    d = tmp_path / "c"
    model = SamplesModel(lambda r: sections(VOTE.replace("'samples', 1", "'samples', 3"), "Vote"))
    campaign = toy_campaign(d, model, lambda gw, _n: hybrid(d, gw, generations=1, trials=5,
                                                            startup_trials=5, debug_rounds=0,
                                                            min_tasks=2, p_threshold=0.2),
                            seeds=[], pruning=True, val=8)
    try:
        result = campaign.run()
    finally:
        close_campaign(campaign)
    pruned = [r for r in result.records if r.status == "pruned"]
    assert pruned, [(r.id, r.meta["params"], r.status) for r in result.records]
    for r in pruned:
        assert r.meta["params"]["samples"] < 3
        assert "Wilcoxon signed-rank test against trial 0 (g001-00) of structure g001-00" in r.reason
        assert r.meta["calls_saved_by_pruning"] > 0
    assert all(r.val.mean == 1.0 for r in result.records if r.meta["params"]["samples"] >= 3)
