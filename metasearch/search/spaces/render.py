"""A trial's values -> a plain ADAS-compatible ``def forward(self, taskInfo):``, built with libcst.

Each block is a small template of ordinary Python (below) whose holes are
filled with CST nodes (:mod:`._cst`); the statements are then put into the
body of a ``forward`` function node. Nothing is formatted as a whole program,
so every trial is syntactically sound by construction, and the output is
what a person would write: instructions in named variables at the top, one
agent per role, ``[taskInfo, principle]`` rather than ``[taskInfo] + [principle]``.

A rendered agent uses only ``LLMAgentBase`` and ``Info``'s API. A role's
``model=`` (ADAS's own keyword) appears when a trial chooses a model for it;
two keywords go beyond ADAS and appear only when a trial chooses them:
``protocol=`` (a role's reply protocol, when not the campaign's) and ``max_tokens=``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import libcst as cst

from metasearch.search.spaces._cst import (
    WrapLongCalls,
    keyword,
    literal,
    names,
    statements,
    text_literal,
)
from metasearch.search.spaces.blocks import ANSWERERS, ENSEMBLES, ROLE_ASSIGNMENTS, ROLES
from metasearch.search.spaces.space import Space

__all__ = ["RenderedAgent", "render"]

ROUTER = """
router = LLMAgentBase(["choice"], "Routing Agent", **ROUTER)
experts = EXPERTS
choice = router([taskInfo], router_instruction)[0]
expert = next((e for e in experts if e.lower() in str(choice.content).lower()), experts[0])
"""
PRINCIPLE = """
principle_agent = LLMAgentBase(["thinking", "principle"], "Principle Agent", **PRINCIPLE)
thinking, principle = principle_agent([taskInfo], principle_instruction)
"""
SINGLE = """
solver = LLMAgentBase(["thinking", "answer"], "Chain-of-Thought Agent", **SOLVER)
thinking, answer = solver(INPUTS, cot_instruction)
"""
SELF_CONSISTENCY = """
solver = LLMAgentBase(["thinking", "answer"], "Chain-of-Thought Agent", **SOLVER)
n_samples = N_SAMPLES
samples = []
for _ in range(n_samples):
    thinking, answer = solver(INPUTS, cot_instruction)
    samples.append((thinking, answer))
"""
VOTE = """
votes = Counter(str(answer.content).strip() for _, answer in samples)
top = votes.most_common(1)[0][0]
thinking, answer = next(pair for pair in samples if str(pair[1].content).strip() == top)
"""
# program-of-thought: the program's last printed line is the answer; reasoning is the fallback
PROGRAM = """
coder = LLMAgentBase(["thinking", "code"], "Program-of-Thought Agent", **CODER)
solver = LLMAgentBase(["thinking", "answer"], "Chain-of-Thought Agent", **SOLVER)
thinking, code = coder(INPUTS, code_instruction)
output = run_python(code.content)
lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
if lines and not output.startswith("Error:"):
    answer = Info("answer", "Python", lines[-1], -1)
else:
    result = Info("program_output", "Python", output or "(the program printed nothing)", -1)
    thinking, answer = solver(INPUTS + [code, result], cot_instruction)
"""
PROGRAM_SAMPLES = """
coder = LLMAgentBase(["thinking", "code"], "Program-of-Thought Agent", **CODER)
solver = LLMAgentBase(["thinking", "answer"], "Chain-of-Thought Agent", **SOLVER)
n_samples = N_SAMPLES
samples = []
for _ in range(n_samples):
    thinking, code = coder(INPUTS, code_instruction)
    output = run_python(code.content)
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    if lines and not output.startswith("Error:"):
        samples.append((thinking, Info("answer", "Python", lines[-1], -1)))
if not samples:
    thinking, answer = solver(INPUTS, cot_instruction)
    samples.append((thinking, answer))
"""
# in a debate, one program's run is evidence every debater sees
PROGRAM_EVIDENCE = """
coder = LLMAgentBase(["thinking", "code"], "Program-of-Thought Agent", **CODER)
thinking, code = coder([taskInfo], code_instruction)
output = run_python(code.content)
result = Info("program_output", "Python", output or "(the program printed nothing)", -1)
"""
DEBATE = """
roles = PERSONAS
debaters = [
    LLMAgentBase(["thinking", "answer"], "Debate Agent", role=role, **SOLVER)
    for role in roles
]
judge = LLMAgentBase(["thinking", "answer"], "Final Decision Agent", **JUDGE)
transcript = []
for debater in debaters:
    thinking, answer = debater(INPUTS, cot_instruction)
    transcript.extend([thinking, answer])
"""
DEBATE_ROUNDS = """
max_rounds = ROUNDS
for r in range(1, max_rounds):
    this_round = []
    for debater in debaters:
        thinking, answer = debater(INPUTS + transcript, debate_instruction, r)
        this_round.extend([thinking, answer])
    transcript = this_round
"""
JUDGE = """
thinking, answer = judge(INPUTS + transcript, final_instruction)
"""
CRITIC = """
critic = LLMAgentBase(["feedback", "correct"], "Critic Agent", **CRITIC)
refiner = LLMAgentBase(["thinking", "answer"], "Refine Agent", **REFINER)
"""
REFINE_ONCE = """
feedback, correct = critic(INPUTS + [thinking, answer], critic_instruction)
if not str(correct.content).strip().lower().startswith("true"):
    thinking, answer = refiner(INPUTS + [thinking, answer, feedback], refine_instruction)
"""
REFINE_LOOP = """
max_refine_rounds = ROUNDS
for i in range(max_refine_rounds):
    feedback, correct = critic(INPUTS + [thinking, answer], critic_instruction, i)
    if str(correct.content).strip().lower().startswith("true"):
        break
    thinking, answer = refiner(INPUTS + [thinking, answer, feedback], refine_instruction, i + 1)
"""


@dataclass(frozen=True)
class RenderedAgent:
    """A trial as a candidate: its code, a short name and the thought stored with it."""

    code: str
    name: str
    thought: str


class _Trial:
    """Reads one trial's values: the blocks it chose and each active role's settings."""

    def __init__(self, space: Space, values: Mapping[str, Any]) -> None:
        self.space, self.values = space, values
        self.answerer = values["blocks.answerer"]
        self.ensemble = values["blocks.ensemble"]
        self.refine_rounds = int(values["blocks.refine_rounds"])
        self.routing = values.get("blocks.role_assignment", "none")

    def roles(self) -> list[str]:
        """The roles this trial instantiates, in the order their agents appear."""
        used = [*ROLE_ASSIGNMENTS[self.routing], *ANSWERERS[self.answerer], "solver",
                *ENSEMBLES[self.ensemble]]
        return used + (["critic", "refiner"] if self.refine_rounds else [])

    def role_args(self, role: str, *first: cst.Arg) -> list[cst.Arg]:
        v = self.values
        args = [*first, keyword("temperature", v[f"roles.{role}.temperature"])]
        if v[f"roles.{role}.protocol"] != "campaign":
            args.append(keyword("protocol", v[f"roles.{role}.protocol"]))
        if f"roles.{role}.max_tokens" in v:
            args.append(keyword("max_tokens", v[f"roles.{role}.max_tokens"]))
        if v.get(f"roles.{role}.model", "campaign") != "campaign":
            args.append(keyword("model", v[f"roles.{role}.model"]))
        return args

    def instruction(self, role: str) -> str:
        variant = self.values[f"roles.{role}.instruction"]
        table = getattr(self.space.spec.roles, role).instructions
        text = table.get(variant) or ROLES[role].instruction
        if role == "router":
            experts = self.space.spec.router.experts
            text += f" Choose one of: {', '.join(experts[:-1])} or {experts[-1]}."
        return text


def render(space: Space, values: Mapping[str, Any]) -> RenderedAgent:
    """The agent of one trial (``values`` as :meth:`Space.sample` returns them)."""
    t = _Trial(space, values)
    roles = t.roles()
    role_args = {name.upper(): t.role_args(name) for name in roles}
    if t.routing == "router":
        for role in {"solver", "coder"} & set(roles):  # the router's expert answers
            role_args[role.upper()] = t.role_args(role, keyword("role", cst.Name("expert")))
    inputs = {"step_back": ["taskInfo", "principle"],
              "program_of_thought": ["taskInfo", "code", "result"] if t.ensemble == "debate"
              else ["taskInfo"]}.get(t.answerer, ["taskInfo"])
    holes: dict[str, cst.BaseExpression] = {"INPUTS": names(inputs)}

    body: list[cst.BaseStatement] = []
    if t.ensemble == "self_consistency":
        body += statements("from collections import Counter", blank_line=False)
    texts = [(ROLES[r].instruction_variable, t.instruction(r)) for r in roles]
    if t.ensemble == "debate" and int(values["debate.rounds"]) > 1:
        texts.insert(roles.index("judge"), ("debate_instruction", space.spec.debate.rebuttal))
    for i, (var, text) in enumerate(texts):
        body += statements("VAR = TEXT", {"VAR": cst.Name(var), "TEXT": text_literal(text)},
                           blank_line=bool(body) and i == 0)
    if t.routing == "router":
        body += statements(ROUTER, {"EXPERTS": literal(list(space.spec.router.experts))},
                           role_args)
    if t.answerer == "step_back":
        body += statements(PRINCIPLE, holes, role_args)
    body += _ensemble(t, holes, role_args)
    if t.refine_rounds:
        body += statements(CRITIC, holes, role_args)
        loop = REFINE_ONCE if t.refine_rounds == 1 else REFINE_LOOP
        body += statements(loop, {**holes, "ROUNDS": literal(t.refine_rounds)}, role_args,
                           blank_line=False)
    body += statements("return answer", blank_line=False)

    template = cst.parse_module("def forward(self, taskInfo):\n    return answer\n")
    fn = template.body[0]
    assert isinstance(fn, cst.FunctionDef) and isinstance(fn.body, cst.IndentedBlock)
    module = template.with_changes(body=[fn.with_changes(body=fn.body.with_changes(body=body))])
    module = module.visit(WrapLongCalls())
    return RenderedAgent(code=module.code, name=_name(t), thought=_thought(t))


def _ensemble(t: _Trial, holes: dict[str, cst.BaseExpression],
              role_args: dict[str, list[cst.Arg]]) -> list[cst.BaseStatement]:
    v, spec = t.values, t.space.spec
    program = t.answerer == "program_of_thought"
    if t.ensemble == "self_consistency":
        sampling = PROGRAM_SAMPLES if program else SELF_CONSISTENCY
        return statements(sampling, {**holes, "N_SAMPLES": literal(
            v["self_consistency.samples"])}, role_args) + statements(VOTE, blank_line=False)
    if t.ensemble != "debate":
        return statements(PROGRAM if program else SINGLE, holes, role_args)
    personas = list(spec.debate.personas[: int(v["debate.agents"])])
    out = statements(PROGRAM_EVIDENCE, holes, role_args) if program else []
    out += statements(DEBATE, {**holes, "PERSONAS": literal(personas)}, role_args)
    if int(v["debate.rounds"]) > 1:
        out += statements(DEBATE_ROUNDS, {**holes, "ROUNDS": literal(v["debate.rounds"])})
    return out + statements(JUDGE, holes, blank_line=False)


_LABELS = {"chain_of_thought": "Chain-of-Thought", "step_back": "Step-back",
           "program_of_thought": "Program-of-Thought"}


def _name(t: _Trial) -> str:
    parts = [_LABELS.get(t.answerer, t.answerer)]
    if t.routing == "router":
        parts.insert(0, "Routed")
    if t.ensemble == "self_consistency":
        parts.append(f"Self-Consistency x{t.values['self_consistency.samples']}")
    elif t.ensemble == "debate":
        parts.append(f"Debate {t.values['debate.agents']}x{t.values['debate.rounds']}")
    if t.refine_rounds:
        parts.append(f"Refine x{t.refine_rounds}")
    return " + ".join(parts)


def _thought(t: _Trial) -> str:
    v = t.values
    settings = "; ".join(
        f"{r}: temperature {v[f'roles.{r}.temperature']}, protocol {v[f'roles.{r}.protocol']}"
        + (f", max_tokens {v[f'roles.{r}.max_tokens']}" if f"roles.{r}.max_tokens" in v else "")
        + (f", model {v[f'roles.{r}.model']}" if f"roles.{r}.model" in v else "")
        + f", instruction {v[f'roles.{r}.instruction']!r}" for r in t.roles())
    return (f"A trial of the search space {t.space.name!r} ({t.space.source}), rendered from "
            f"its parameters. Blocks: answerer {t.answerer}, ensemble {t.ensemble}, "
            f"{t.refine_rounds} refine round(s), role assignment {t.routing}. Roles: {settings}.")
