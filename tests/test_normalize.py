"""Normalisation of meta-agent proposals, on the failures measured with the 1.5B model."""

from __future__ import annotations

import ast

from metasearch.candidate.normalize import normalize_proposal


def top_level_names(code: str) -> list[str]:
    return [
        n.name
        for n in ast.parse(code).body
        if isinstance(n, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
    ]


def codes(result) -> list[str]:
    return [f.code for f in result.findings]


FORWARD_IN_CLASS = '''
class DebateAgent:
    def __init__(self):
        self.debaters = [LLMAgentBase(['thinking', 'answer'], 'Debater', temperature=0.8) for _ in range(2)]
        self.judge = LLMAgentBase(['thinking', 'answer'], 'Judge')

    def forward(self, taskInfo):
        answers = []
        for d in self.debaters:
            thinking, answer = d([taskInfo], "Solve it.")
            answers.append(answer)
        return self.decide(taskInfo, answers)

    def decide(self, taskInfo, answers):
        thinking, answer = self.judge([taskInfo] + answers, "Pick the best answer.")
        return answer
'''


def test_forward_inside_class_is_lifted_with_helpers_and_init_attributes():
    r = normalize_proposal(FORWARD_IN_CLASS)
    assert r.ok, r.findings
    assert top_level_names(r.code) == ["forward", "decide"]
    assert "self.debaters" not in r.code and "self.judge" not in r.code
    assert "decide(self, taskInfo, answers)" in r.code
    tree = ast.parse(r.code)
    fwd = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "forward")
    first = ast.unparse(fwd.body[0])
    assert first.startswith("debaters = [LLMAgentBase(")
    assert any("moved forward out of class DebateAgent" in c for c in r.changes)
    assert any("decide" in c for c in r.changes)


def test_lifted_code_runs_with_the_real_runtime_names():
    r = normalize_proposal(FORWARD_IN_CLASS)
    from collections import namedtuple

    Info = namedtuple("Info", ["name", "author", "content", "iteration_idx"])

    class FakeAgent:
        def __init__(self, fields, name, **kw):
            self.fields = fields

        def __call__(self, infos, instruction):
            return [Info(f, "x", "42", -1) for f in self.fields]

    ns = {"LLMAgentBase": FakeAgent, "Info": Info}
    exec(compile(r.code, "<agent>", "exec"), ns)
    assert ns["forward"](None, Info("task", "User", "q", -1)).content == "42"


REDEFINED_RUNTIME = """
from collections import namedtuple
from agents import LLMAgentBase, Info

Info = namedtuple('Info', ['name', 'author', 'content', 'iteration_idx'])

class LLMAgentBase:
    def __init__(self, output_fields, agent_name, role='assistant', temperature=0.5):
        self.output_fields = output_fields

    def __call__(self, input_infos, instruction):
        return [Info(f, 'me', 'fake', -1) for f in self.output_fields]

def forward(self, taskInfo):
    cot = LLMAgentBase(['thinking', 'answer'], 'CoT')
    thinking, answer = cot([taskInfo], "Solve step by step.")
    return answer
"""


def test_redefined_info_and_llmagentbase_with_fake_bodies_are_dropped():
    r = normalize_proposal(REDEFINED_RUNTIME)
    assert r.ok
    assert top_level_names(r.code) == ["forward"]
    assert "namedtuple" not in r.code and "import" not in r.code
    assert any("Info" in c for c in r.changes)
    assert any("class LLMAgentBase" in c for c in r.changes)


def test_agent_system_class_and_redefinition_by_function_dropped():
    code = """
def Info(name, author, content, idx):
    return (name, author, content, idx)

class AgentSystem:
    def forward(self, taskInfo):
        a = LLMAgentBase(['answer'], 'A')
        (answer,) = a([taskInfo], "Answer.")
        return answer
"""
    r = normalize_proposal(code)
    assert r.ok
    assert top_level_names(r.code) == ["forward"]
    assert any("removed function Info" in c for c in r.changes)


def test_a_redefined_run_python_is_dropped_and_the_runtime_one_is_no_undefined_name():
    code = """
def run_python(code):
    return ''

def forward(self, taskInfo):
    coder = LLMAgentBase(['code'], 'Coder')
    (code,) = coder([taskInfo], "Write a program that prints the answer.")
    return run_python(code.content)
"""
    r = normalize_proposal(code)
    assert r.ok, r.findings
    assert top_level_names(r.code) == ["forward"]
    assert any("removed function run_python" in c for c in r.changes)
    plain = normalize_proposal(code.split("\n\n", 1)[1])
    assert plain.ok and plain.findings == []


PLACEHOLDER_HELPERS = """
def verify(answer):
    \"\"\"Check whether the answer is right.\"\"\"
    pass

def unused_stub(x):
    ...

def forward(self, taskInfo):
    cot = LLMAgentBase(['thinking', 'answer'], 'CoT')
    thinking, answer = cot([taskInfo], "Solve.")
    if verify(answer):
        return answer
    return answer
"""


def test_placeholder_helpers_are_findings_with_line_numbers_or_dropped_if_unused():
    r = normalize_proposal(PLACEHOLDER_HELPERS)
    assert codes(r) == ["placeholder-body"]
    f = r.findings[0]
    assert r.code.splitlines()[f.line - 1].startswith("def verify")
    assert "verify" in f.message and f.hint
    assert "unused_stub" not in r.code
    assert any("unused placeholder helper unused_stub" in c for c in r.changes)


def test_placeholder_forward_is_a_finding():
    r = normalize_proposal("def forward(self, taskInfo):\n    pass\n")
    assert codes(r) == ["placeholder-body"]
    assert r.findings[0].line == 1


def test_driver_code_and_main_guard_are_stripped():
    code = """
import json

def forward(self, taskInfo):
    cot = LLMAgentBase(['thinking', 'answer'], 'CoT')
    thinking, answer = cot([taskInfo], "Solve.")
    return answer

agent = AgentSystem()
task = Info('task', 'User', 'What is 2 + 3?', -1)
print(forward(agent, task))
for i in range(3):
    print(i)

if __name__ == "__main__":
    print(forward(None, task))
"""
    r = normalize_proposal(code)
    assert r.ok
    assert ast.unparse(ast.parse(r.code)).startswith("def forward")
    assert "print" not in r.code and "__main__" not in r.code and "json" not in r.code
    assert any("__main__" in c for c in r.changes)
    assert sum("outside functions" in c for c in r.changes) >= 3


def test_used_module_constants_and_imports_move_into_the_functions_that_use_them():
    code = """
from collections import Counter
ROLES = ['Math Professor', 'Grade School Teacher']

def forward(self, taskInfo):
    agents = [LLMAgentBase(['thinking', 'answer'], 'Expert', role=r) for r in ROLES]
    answers = []
    for a in agents:
        thinking, answer = a([taskInfo], "Solve.")
        answers.append(answer.content)
    return Counter(answers).most_common(1)[0][0]
"""
    r = normalize_proposal(code)
    assert r.ok
    assert top_level_names(r.code) == ["forward"]
    assert len(ast.parse(r.code).body) == 1
    assert "from collections import Counter" in r.code and "ROLES = [" in r.code


def test_forward_signature_fixed_or_reported():
    r = normalize_proposal("def forward(task):\n    return LLMAgentBase(['answer'], 'A')([task], 'Solve.')[0]\n")
    assert r.ok
    assert r.code.startswith("def forward(self, taskInfo):")
    assert "([taskInfo], 'Solve.')" in r.code
    r = normalize_proposal("def forward(self, question, context):\n    return LLMAgentBase\n")
    assert codes(r) == ["forward-signature"]
    assert "(self, question, context)" in r.findings[0].message


def test_no_forward_at_all_is_a_finding():
    r = normalize_proposal("def solve(x):\n    return x\n")
    assert codes(r) == ["no-forward"]


def test_single_function_taking_taskinfo_is_renamed_to_forward():
    r = normalize_proposal("def my_agent(self, taskInfo):\n    return LLMAgentBase(['a'], 'A')\n")
    assert r.ok and r.code.startswith("def forward(self, taskInfo)")


def test_syntax_error_is_a_finding_not_an_exception():
    r = normalize_proposal("def forward(self, taskInfo)\n    return 1\n")
    assert codes(r) == ["syntax-error"]
    assert r.findings[0].line >= 1


def test_info_with_missing_fields_is_completed():
    r = normalize_proposal("def forward(self, taskInfo):\n    return Info(content='7')\n")
    assert codes(r) == ["no-llm-call"]
    assert "Info(\"answer\", \"forward\", '7', -1)" in r.code


def test_fences_and_common_indentation_removed():
    code = "```python\n    def forward(self, taskInfo):\n        return LLMAgentBase\n```\n"
    r = normalize_proposal(code)
    assert r.ok and r.code == "def forward(self, taskInfo):\n    return LLMAgentBase\n"


def test_clean_code_is_unchanged():
    code = (
        "def forward(self, taskInfo):\n"
        "    cot = LLMAgentBase(['thinking', 'answer'], 'CoT')\n"
        "    thinking, answer = cot([taskInfo], 'Solve.')\n"
        "    return answer\n"
    )
    r = normalize_proposal(code)
    assert r.code == code and r.changes == [] and r.findings == []


def test_seed_agents_normalise_to_themselves():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "archive"
    for path in sorted(root.glob("*.py")):
        src = path.read_text()
        tree = ast.parse(src)
        fwd = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "forward")
        code = ast.get_source_segment(src, fwd) + "\n"
        r = normalize_proposal(code)
        assert r.findings == [], (path.name, r.findings)
        assert r.code == code, (path.name, r.changes)


def test_forward_without_any_llm_call_is_a_finding():
    # measured: the 1.5B model hard-coded the example question's numbers
    code = "def forward(self, taskInfo):\n    current = 12\n    current -= 5\n    return str(current)\n"
    r = normalize_proposal(code)
    assert codes(r) == ["no-llm-call"] and "hard-code" in r.findings[0].hint


def test_forward_of_a_fake_llmagentbase_is_not_taken_for_the_agent():
    # measured: the 1.5B model wrote `class LLMAgentBase` with a `forward(self, taskInfo, instruction)`
    code = """
class LLMAgentBase:
    def __init__(self, output_fields, agent_name):
        self.output_fields = output_fields

    def forward(self, taskInfo, instruction):
        return [Info('answer', 'forward', '7', -1)]
"""
    r = normalize_proposal(code)
    assert codes(r) == ["no-forward"]
    assert "class" not in r.code
    assert any("removed class LLMAgentBase" in c for c in r.changes)


def test_constructing_an_agent_with_its_inputs_is_explained():
    """Measured: the 1.5B meta agent wrote this, and a misleading finding made it drop the LLM."""
    code = (
        "def forward(self, taskInfo):\n"
        "    answer = taskInfo.content\n"
        "    thinking, answer = LLMAgentBase(['thinking', 'answer'], 'CoT', input=answer)\n"
        "    return answer\n"
    )
    found = {f.code: f for f in normalize_proposal(code).findings}
    assert set(found) == {"agent-not-called", "agent-arguments"}
    assert found["agent-arguments"].line == 3 and "`input=`" in found["agent-arguments"].message
    assert "agent([taskInfo" in found["agent-not-called"].hint


def test_well_formed_agent_constructors_raise_nothing():
    code = (
        "def forward(self, taskInfo):\n"
        "    a = LLMAgentBase(['answer'], 'A', role='critic', model='x', temperature=0.2)\n"
        "    b = LLMAgentBase(output_fields=['answer'], agent_name='B')\n"
        "    agents = [LLMAgentBase(['answer'], f'C{i}') for i in range(2)]\n"
        "    (answer,) = a([taskInfo], 'Solve.')\n"
        "    return answer\n"
    )
    assert normalize_proposal(code).findings == []


def test_undefined_names_are_found_before_anything_runs():
    """Measured: g003-00 of the arith-local campaign failed every task with this NameError."""
    code = (
        "def forward(self, taskInfo) -> List[Info]:\n"
        "    from collections import Counter\n"
        "    principle_agent = LLMAgentBase(['thinking', 'principle'], 'Principle Agent')\n"
        "    thinking, principle = principle_agent([taskInfo], 'Principles?')\n"
        "    votes = Counter(x for x in [principle.content])\n"
        "    thinking, answer = cot_agent([taskInfo, thinking, principle], 'Solve.')\n"
        "    return answer if votes and len(votes) else helper(answer)\n"
        "\n"
        "def helper(a):\n"
        "    return a\n"
    )
    found = [(f.code, f.line, f.message.split("`")[1]) for f in normalize_proposal(code).findings]
    assert found == [("undefined-name", 6, "cot_agent")]  # the annotation was removed


def test_signature_annotations_are_removed_and_local_ones_left_alone():
    code = (
        "def forward(self, taskInfo: Info) -> List[Info]:\n"
        "    notes: List[str] = []\n"
        "    a = LLMAgentBase(['answer'], 'A')\n"
        "    (answer,) = a([taskInfo], 'x')\n"
        "    return answer\n"
    )
    result = normalize_proposal(code)
    assert result.code.startswith("def forward(self, taskInfo):\n    notes: List[str] = []")
    assert any("removed type annotations" in c for c in result.changes)
    assert result.findings == []


def test_helpers_forward_never_reaches_are_removed():
    """Measured: a CoT copy plus a dead helper passed as a 'new structure'."""
    code = (
        "def forward(self, taskInfo):\n"
        "    a = LLMAgentBase(['answer'], 'A')\n"
        "    (answer,) = a([taskInfo], clean(taskInfo.content))\n"
        "    return self.finish(answer)\n"
        "\n"
        "def clean(text):\n"
        "    return strip(text)\n"
        "\n"
        "def strip(text):\n"
        "    return text.strip()\n"
        "\n"
        "def finish(self, answer):\n"
        "    return answer\n"
        "\n"
        "def solve_task(self, taskInfo):\n"
        "    return taskInfo.content.split()\n"
    )
    result = normalize_proposal(code)
    assert "solve_task" not in result.code
    assert all(f"def {n}(" in result.code for n in ("forward", "clean", "strip", "finish"))
    assert "removed the helper solve_task, which forward never uses" in result.changes


def test_assignments_to_info_fields_rebind_the_name():
    """Measured: `answer1.content = int(...)` raised AttributeError on every task."""
    from metasearch.runtime.info import Info

    code = (
        "def forward(self, taskInfo):\n"
        "    answer = Info('answer', 'A', ' 41 ', 0)\n"
        "    answer.content = answer.content.strip()\n"
        "    answer.content += '!'\n"
        "    answer.iteration_idx = 2\n"
        "    self.content = 'attribute of the agent, not an Info'\n"
        "    return answer\n"
    )
    result = normalize_proposal(code)
    assert "answer = answer._replace(content=answer.content.strip())" in result.code
    assert "answer = answer._replace(content=answer.content + '!')" in result.code
    assert "self.content = 'attribute" in result.code
    assert any("Info is immutable" in c for c in result.changes)
    scope: dict = {"Info": Info}
    exec(result.code, scope)  # test-authored code, not model output

    class Agent:
        pass

    assert scope["forward"](Agent(), None) == Info("answer", "A", "41!", 2)


def test_forward_that_never_returns_gets_return_answer_or_a_finding():
    """Measured (arith-local g004-00): a refine loop with no return; every task got None."""
    loop = (
        "def forward(self, taskInfo):\n"
        "    solver = LLMAgentBase(['thinking', 'answer'], 'Solver')\n"
        "    thinking, answer = solver([taskInfo], 'Solve.')\n"
        "    for i in range(2):\n"
        "        thinking, answer = solver([taskInfo, thinking, answer], 'Again.')\n"
        "\n"
        "    def helper(x):\n"
        "        return x\n"
    )
    fixed = normalize_proposal(loop)
    assert fixed.code.rstrip().endswith("        return x\n    return answer")
    assert any("added `return answer`" in c for c in fixed.changes)
    assert fixed.findings == []

    no_answer = loop.replace("answer", "result")
    result = normalize_proposal(no_answer)
    assert "no-return" in codes(result)
    assert "return answer" not in result.code

    returns = loop + "    return answer\n"
    assert normalize_proposal(returns).changes == []


def test_hyphenated_class_and_function_names_are_repaired_before_parsing():
    """Measured (quickstart run 10): both attempts wrote `class Step-by-StepSolver(...)`."""
    code = (
        "class Step-by-StepSolver(LLMAgentBase):\n"
        "    def forward(self, taskInfo):\n"
        "        return self.solve-it(taskInfo)\n"
        "\n"
        "    def solve-it(self, taskInfo):\n"
        "        a = LLMAgentBase(['answer'], 'Step-by-StepSolver')\n"
        "        (answer,) = a([taskInfo], 'Solve x-y.')\n"
        "        return answer\n"
    )
    result = normalize_proposal(code)
    assert "syntax-error" not in codes(result)
    assert "renamed Step-by-StepSolver to Step_by_StepSolver: hyphens are not allowed in " \
        "Python names" in result.changes
    assert "def solve_it(" in result.code and "'Solve x-y.'" in result.code
    assert top_level_names(result.code)[0] == "forward"


def test_sampling_settings_given_to_llmagentbase_are_dropped_and_inputs_kept_as_findings():
    """Measured (quickstart run 13): `seed=` alone made an otherwise runnable agent invalid."""
    code = (
        "def forward(self, taskInfo):\n"
        "    a = LLMAgentBase(['thinking', 'answer'], 'A', seed=7, temperature=0.8, top_p=0.9)\n"
        "    b = LLMAgentBase(['answer'], 'B', max_new_tokens=50)\n"
        "    thinking, answer = a([taskInfo], 'Solve.')\n"
        "    (final,) = b([taskInfo, answer], 'Check.')\n"
        "    return final\n"
    )
    result = normalize_proposal(code)
    assert result.findings == []
    assert "LLMAgentBase(['thinking', 'answer'], 'A', temperature=0.8)" in result.code
    assert "LLMAgentBase(['answer'], 'B')" in result.code
    assert any("seed=, top_p=, max_new_tokens=" in c for c in result.changes)
    kept = normalize_proposal(code.replace("max_new_tokens=50", "inputs=[taskInfo]"))
    assert [f.code for f in kept.findings] == ["agent-arguments"]


def test_the_runtimes_own_keywords_protocol_and_max_tokens_are_kept():
    """The runtime honours them (search-space trials use them), so they are part of the design."""
    code = (
        "def forward(self, taskInfo):\n"
        "    a = LLMAgentBase(['thinking', 'answer'], 'A', temperature=0.8, protocol='answer_line',"
        " max_tokens=256)\n"
        "    thinking, answer = a([taskInfo], 'Solve.')\n"
        "    return answer\n"
    )
    result = normalize_proposal(code)
    assert (result.code, result.changes, result.findings) == (code, [], [])
