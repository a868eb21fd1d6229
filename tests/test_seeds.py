"""The seed agents in archive/ (ADAS's seven, then program-of-thought): structure and
end-to-end runs on a fake model."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from test_runtime_fakes import FakeTransport, always, requested_fields, settings, well_formed

from metasearch.errors import AgentCodeError
from metasearch.runtime import list_seeds, load_agent, load_seed, run_tasks_inprocess
from metasearch.suites.task import Task

ARCHIVE = Path(__file__).resolve().parents[1] / "archive"
SEEDS = list_seeds(ARCHIVE)
SAFE_IMPORTS = {"collections", "itertools", "math", "re", "statistics", "random", "functools", "json", "string"}


def test_the_seven_adas_seeds_in_order_then_the_others():
    assert [s.name for s in SEEDS] == [
        "Chain-of-Thought",
        "Self-Consistency with Chain-of-Thought",
        "Self-Refine (Reflexion)",
        "LLM Debate",
        "Step-back Abstraction",
        "Quality-Diversity",
        "Dynamic Assignment of Roles",
        "Program-of-Thought",
    ]


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: s.name)
def test_seed_structure(seed):
    for part in ("**Insights:**", "**Overall Idea:**", "**Implementation:**"):
        assert part in seed.thought
    assert seed.code.startswith("def forward(self, taskInfo):")
    file_tree = ast.parse(Path(seed.path).read_text())
    top = file_tree.body
    assert isinstance(top[0], ast.Expr) and isinstance(top[0].value, ast.Constant)  # the docstring
    assert [type(n) for n in top[1:]] == [ast.FunctionDef] and top[1].name == "forward"
    code_tree = ast.parse(seed.code)
    assert len(code_tree.body) == 1
    for node in ast.walk(code_tree):
        if isinstance(node, ast.Import):
            assert {a.name.split(".")[0] for a in node.names} <= SAFE_IMPORTS
        if isinstance(node, ast.ImportFrom):
            assert node.module.split(".")[0] in SAFE_IMPORTS
        if isinstance(node, ast.Name):
            assert node.id not in ("exec", "eval", "open", "__import__", "globals")


@pytest.mark.parametrize("protocol", ["json", "sections"])
@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: s.name)
def test_seed_runs_end_to_end_and_answers_42(seed, protocol):
    t = FakeTransport(always("42"))
    outs = run_tasks_inprocess(seed.code, [Task("t1", "What is 6*7?", "42")], settings(protocol, threads=1), t)
    assert outs[0].ok, outs[0].error
    assert outs[0].answer == "42"
    # no reply-protocol events; program-of-thought ran its program ("42" prints nothing)
    assert t.notes == ({"python_ok": 1} if seed.name == "Program-of-Thought" else {})
    assert all(r.role == "task" and r.candidate == "cand-1" for r in t.requests)


def _count_calls(seed_name, fn=None):
    seed = next(s for s in SEEDS if s.name == seed_name)
    t = FakeTransport(fn or always("42"))
    agent = load_agent(seed.code, settings(), t)
    return agent("What is 6*7?"), t.requests


def test_self_consistency_five_samples_majority():
    replies = iter(["7", "42", "42", "8", "42 "])
    answer, reqs = _count_calls(
        "Self-Consistency with Chain-of-Thought", lambda r: well_formed(r, {"answer": next(replies)}))
    assert answer == "42"
    assert [r.temperature for r in reqs] == [0.8] * 5
    assert [r.sample_index for r in reqs] == [0, 1, 2, 3, 4]


def test_self_refine_stops_when_critic_says_correct():
    answer, reqs = _count_calls("Self-Refine (Reflexion)")  # critic never says True
    assert answer == "42" and len(reqs) == 1 + 5 * 2

    def fn(req):
        return well_formed(req, {"correct": "True", "answer": "42"})

    _, reqs = _count_calls("Self-Refine (Reflexion)", fn)
    assert len(reqs) == 2


def test_debate_three_debaters_two_rounds_final():
    _, reqs = _count_calls("LLM Debate")
    assert len(reqs) == 3 * 2 + 1
    roles = {r.messages[0]["content"].split("\n")[0] for r in reqs[:3]}
    assert len(roles) == 3
    assert reqs[-1].temperature == pytest.approx(0.1)
    assert reqs[-1].messages[1]["content"].count("### answer #2 by Debate Agent") == 3


def test_quality_diversity_three_attempts_then_judge():
    _, reqs = _count_calls("Quality-Diversity")
    assert len(reqs) == 4
    assert reqs[-1].messages[1]["content"].count("### answer #") == 3


def test_step_back_passes_principles():
    _, reqs = _count_calls("Step-back Abstraction")
    assert len(reqs) == 2 and requested_fields(reqs[0]) == ["thinking", "principle"]
    assert "### principle by Principle Agent" in reqs[1].messages[1]["content"]


def test_role_assignment_routes_to_expert():
    def fn(req):
        return well_formed(req, {"choice": "Math.", "answer": "42"})

    answer, reqs = _count_calls("Dynamic Assignment of Roles", fn)
    assert answer == "42" and len(reqs) == 2
    assert reqs[1].messages[0]["content"].startswith("You are a mathematician")
    _, reqs = _count_calls("Dynamic Assignment of Roles")  # "42" matches nobody
    assert reqs[1].messages[0]["content"].startswith("You are a helpful generalist")


def test_load_seed_errors(tmp_path):
    p = tmp_path / "bad.py"
    p.write_text("def forward(self, taskInfo):\n    return 'x'\n")
    with pytest.raises(AgentCodeError, match="no module docstring"):
        load_seed(p)
    p.write_text('"""Name\n\nthought"""\n\ndef helper():\n    pass\n')
    with pytest.raises(AgentCodeError, match="exactly one top-level `def forward`"):
        load_seed(p)
    p.write_text('"""My Agent\n\nThe thought."""\n\n\ndef forward(self, taskInfo):\n    return "x"\n')
    seed = load_seed(p)
    assert (seed.name, seed.thought, seed.code) == ("My Agent", "The thought.", 'def forward(self, taskInfo):\n    return "x"\n')


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: s.name)
def test_seed_passes_strict_validator(seed):
    from metasearch.candidate.validate import ValidationPolicy, format_findings, validate_code

    strict = ValidationPolicy(allow_helpers=False)
    for source in (seed.code, Path(seed.path).read_text()):
        findings = validate_code(source, strict)
        assert findings == [], format_findings(findings)


def _pot(fn):
    return _count_calls("Program-of-Thought", fn)


def test_program_of_thought_runs_the_program_and_answers_its_last_line():
    def fn(req):
        return well_formed(req, {"code": "```python\nprint('working')\nprint(6 * 7)\n```"})

    answer, reqs = _pot(fn)
    assert answer == "42" and len(reqs) == 1
    assert requested_fields(reqs[0]) == ["thinking", "code"]


@pytest.mark.parametrize("program", ["print(1 / 0)", "x = 6 * 7", "while True:\n    pass"])
def test_program_of_thought_falls_back_to_reasoning_shown_the_failure(program):
    def fn(req):
        return well_formed(req, {"code": program, "answer": "41"})

    seed = next(s for s in SEEDS if s.name == "Program-of-Thought")
    t = FakeTransport(fn)
    agent = load_agent(seed.code, settings(python_timeout_s=0.5), t)
    assert agent("What is 6*7?") == "41"
    assert [requested_fields(r) for r in t.requests] == [["thinking", "code"], ["thinking", "answer"]]
    shown = t.requests[1].messages[1]["content"]
    assert "### program_output by Python:" in shown and program.splitlines()[0] in shown
    if program == "x = 6 * 7":
        assert "(the program printed nothing)" in shown
    else:
        assert "Error: the program" in shown
