"""Design skeletons: what counts as the same agent for near-duplicate checks and yield."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

from metasearch.candidate.skeleton import structure_fingerprint

ARCHIVE = Path(__file__).resolve().parents[1] / "archive"

BASE = (
    "def forward(self, taskInfo):\n"
    "    a = LLMAgentBase(['thinking', 'answer'], 'A', temperature=0.8)\n"
    "    thinking, answer = a([taskInfo], 'Solve.')\n"
    "    return answer\n"
)

# Measured (arith-local g001-01): the Self-Refine seed with its instructions
# inlined, a temperature added, the critic renamed and the round index dropped.
SELF_REFINE_COPY = '''def forward(self, taskInfo):
    solver = LLMAgentBase(['thinking', 'answer'], 'Solver', temperature=0.7)
    verifier = LLMAgentBase(['feedback', 'correct'], 'Verifier', role='careful and strict reviewer')

    max_rounds = 5
    thinking, answer = solver([taskInfo], "Think through the task step by step, then answer.")
    history = [taskInfo]
    for i in range(max_rounds):
        feedback, correct = verifier([taskInfo, thinking, answer], "Check the answer.")
        if str(correct.content).strip().lower().startswith("true"):
            break
        history.extend([thinking, answer, feedback])
        thinking, answer = solver(history, "Use the feedback and answer again.")
    return answer
'''


def test_prompts_constants_names_and_literal_arguments_do_not_make_a_new_design():
    variants = [
        BASE.replace("'A'", "'Careful Solver'").replace("Solve.", "Think step by step.") + "# note\n",
        BASE.replace(", temperature=0.8", "").replace("'A'", "'A', role='math expert'"),
        BASE.replace("a = ", "solver = ").replace("= a(", "= solver("),
        BASE.replace("    a = LLMAgentBase", "    prompt = 'Solve.'\n    a = LLMAgentBase")
        .replace("'Solve.')", "prompt)"),
        BASE.replace("def forward(self, taskInfo):\n",
                     'def forward(self, taskInfo):\n    """Chain of thought, renamed."""\n'),
        BASE.replace("a([taskInfo], 'Solve.')", "a([taskInfo], 'Solve.', 0)"),
    ]
    for v in variants:
        assert structure_fingerprint(v) == structure_fingerprint(BASE), v


def test_changes_to_the_flow_of_calls_are_a_new_design():
    two_calls = BASE.replace(
        "    return answer\n",
        "    thinking, answer = a([taskInfo, thinking, answer], 'Check.')\n    return answer\n",
    )
    loop = BASE.replace("    thinking, answer = a(", "    for i in range(3):\n        thinking, answer = a(")
    reassigned = BASE.replace("    a = LLMAgentBase", "    p = 'x'\n    p = p + taskInfo.content\n"
                              "    a = LLMAgentBase").replace("'Solve.')", "p)")
    for v in (two_calls, loop, reassigned):
        assert structure_fingerprint(v) != structure_fingerprint(BASE), v


def test_the_measured_self_refine_copy_is_a_near_duplicate_of_the_seed():
    seed = (ARCHIVE / "self_refine.py").read_text()
    assert structure_fingerprint(SELF_REFINE_COPY) == structure_fingerprint(seed)


def test_the_seeds_are_distinct_designs():
    prints = {p.stem: structure_fingerprint(p.read_text()) for p in ARCHIVE.glob("*.py")}
    assert len(prints) == 8  # ADAS's seven and program-of-thought
    for (a, fa), (b, fb) in combinations(prints.items(), 2):
        assert fa != fb, f"{a} and {b} share a skeleton"


def test_code_that_does_not_parse_is_its_own_design():
    assert structure_fingerprint("def forward(:") != structure_fingerprint("def forward(::")
