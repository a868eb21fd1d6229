"""load_agent, answer conversion, tracebacks, the in-process runner, GatewayTransport."""

from __future__ import annotations

import threading
import time

import pytest
from test_runtime_fakes import FakeTransport, always, settings

from metasearch.errors import AgentCodeError
from metasearch.llm.types import BudgetExceeded, LLMRequest
from metasearch.runtime import GatewayTransport, load_agent, run_tasks_inprocess, to_answer
from metasearch.runtime.info import Info
from metasearch.suites.task import Task

COT = '''
def forward(self, taskInfo):
    agent = LLMAgentBase(["thinking", "answer"], "CoT Agent")
    thinking, answer = agent([taskInfo], "Think step by step.")
    return answer
'''


def load(code, transport=None, **kw):
    return load_agent(code, settings(**kw), transport or FakeTransport())


def test_loads_and_answers():
    t = FakeTransport()
    agent = load(COT, t)
    assert agent("What is 6*7?") == "42"
    assert t.requests[0].messages[1]["content"].startswith("# Your Task:\nWhat is 6*7?")


def test_imports_helpers_and_self_methods():
    code = '''
import collections

def normalise(text):
    return text.strip().lower()

def vote(self, answers):
    return collections.Counter(answers).most_common(1)[0][0]

def forward(self, taskInfo):
    agent = LLMAgentBase(["answer"], "A")
    answers = [normalise(agent([taskInfo], "x")[0].content) for _ in range(3)]
    return self.vote(answers) + self.normalise("  !")
'''
    assert load(code)("q") == "42!"


@pytest.mark.parametrize("result,expected", [
    (Info("answer", "A", "7", -1), "7"),
    (Info(content=7), "7"),
    ([Info("thinking", "A", "t", -1), Info("answer", "A", "9", -1)], "9"),
    ((Info("answer", "A", "1", -1), Info("thinking", "A", "t", -1)), "1"),
    ([Info("x", "A", "a", -1), Info("y", "A", "b", -1)], "b"),
    ("plain", "plain"),
    (42, "42"),
    ([], "[]"),
])
def test_to_answer_forgiving(result, expected):
    assert to_answer(result) == expected


def test_to_answer_none_explains():
    with pytest.raises(TypeError, match="forward returned None.*return answer"):
        to_answer(None)


def test_returning_the_output_list_is_forgiven():
    code = '''
def forward(self, taskInfo):
    return LLMAgentBase(["thinking", "answer"], "A")([taskInfo], "x")
'''
    assert load(code)("q") == "42"


def test_shadowed_runtime_names_are_restored():
    code = '''
class LLMAgentBase:
    def __init__(self, *a, **k):
        pass
    def __call__(self, *a, **k):
        pass

Info = None

def forward(self, taskInfo):
    thinking, answer = LLMAgentBase(["thinking", "answer"], "A")([taskInfo], "x")
    return Info("answer", "me", answer.content, -1)
'''
    assert load(code)("q") == "42"


# -- load errors ---------------------------------------------------------------

def test_syntax_error_names_line_and_column():
    with pytest.raises(AgentCodeError, match=r"syntax error at line 3, column \d+: .*`return \(`"):
        load("def forward(self, taskInfo):\n    x = 1\n    return (\n")


def test_no_forward():
    with pytest.raises(AgentCodeError, match=r"no top-level function named `forward` \(it defines: helper\)"):
        load("def helper(x):\n    return x\n")


def test_forward_inside_class():
    code = "class AgentSystem:\n    def forward(self, taskInfo):\n        return 'x'\n"
    with pytest.raises(AgentCodeError, match="method of class AgentSystem.*top-level function"):
        load(code)


@pytest.mark.parametrize("code,pattern", [
    ("def forward(taskInfo):\n    return 'x'\n", r"wrong signature: `def forward\(taskInfo\)`"),
    ("def forward(self, taskInfo, extra):\n    return 'x'\n", "wrong signature"),
    ("forward = 3\n", "must be a function, but it is a int"),
    ("async def forward(self, taskInfo):\n    return 'x'\n", "not async"),
])
def test_bad_forward(code, pattern):
    with pytest.raises(AgentCodeError, match=pattern):
        load(code)


def test_forward_with_defaults_is_fine():
    assert load("def forward(self, taskInfo, retries=3):\n    return 'ok'\n")("q") == "ok"


def test_top_level_error():
    with pytest.raises(AgentCodeError, match=r"raised NameError: .*undefined_thing.* \(line 1\)"):
        load("x = undefined_thing\ndef forward(self, taskInfo):\n    return 'x'\n")


def test_agent_code_error_is_user_facing():
    with pytest.raises(AgentCodeError) as e:
        load("nothing = 1\n")
    assert "\n" not in str(e.value)


# -- run_task and tracebacks ---------------------------------------------------------

def test_run_task_error_has_trimmed_agent_traceback():
    code = '''
def forward(self, taskInfo):
    agent = LLMAgentBase(["feedback", "correct"], "A")
    out = agent([taskInfo], "x")
    return out.content
'''
    outcome = load(code).run_task("t1", "q")
    assert outcome.answer is None and outcome.task_id == "t1"
    err = outcome.error
    assert err.kind == "exception" and err.type == "AttributeError"
    assert "unpack it: thinking, answer = agent([taskInfo], instruction)" in err.message
    assert 'File "<agent>", line 5, in forward\n    return out.content' in err.traceback
    assert "site-packages" not in err.traceback and "agent_base.py" not in err.traceback


def test_run_task_ok_and_truncated_flag():
    outcome = load(COT, FakeTransport(always("5"), finish_reason="length")).run_task("t", "q")
    assert outcome.ok and outcome.answer == "5" and outcome.truncated and outcome.wall_s >= 0


# -- in-process runner ------------------------------------------------------------

TASKS = [Task(id=f"t{i}", question=f"question {i}", answer="42") for i in range(6)]


def test_runner_runs_all_in_order_concurrently():
    barrier = threading.Barrier(3, timeout=5)

    def fn(req):
        barrier.wait()  # proves three tasks are in flight at once
        return "## thinking\nt\n## answer\n42"

    seen = []
    outs = run_tasks_inprocess(COT, TASKS, settings(threads=3), FakeTransport(fn), on_outcome=seen.append)
    assert [o.task_id for o in outs] == [t.id for t in TASKS]
    assert all(o.ok and o.answer == "42" for o in outs)
    assert sorted(o.task_id for o in seen) == sorted(t.id for t in TASKS)


def test_runner_records_exceptions():
    code = '''
def forward(self, taskInfo):
    if taskInfo.content.endswith("3"):
        raise ValueError("bad task")
    return "ok"
'''
    outs = run_tasks_inprocess(code, TASKS, settings(threads=2), FakeTransport())
    assert [o.ok for o in outs] == [True, True, True, False, True, True]
    assert outs[3].error.brief() == "ValueError: bad task"
    assert 'File "<agent>", line 4, in forward' in outs[3].error.traceback


def test_runner_budget_stops_launching():
    calls = []

    def fn(req):
        calls.append(req)
        raise BudgetExceeded("USD cap of $1.00 reached", cap="usd", limit=1.0, used=1.0)

    outs = run_tasks_inprocess(COT, TASKS, settings(threads=1), FakeTransport(fn))
    assert all(o.error.kind == "budget" for o in outs)
    assert len(calls) == 1
    assert outs[0].error.type == "BudgetExceeded" and "not started" in outs[1].error.message


def test_runner_soft_timeout():
    release = threading.Event()
    code = '''
def forward(self, taskInfo):
    if taskInfo.content == "question 0":
        LLMAgentBase(["answer"], "slow")([taskInfo], "x")
    return "fast"
'''

    def fn(req):
        release.wait(10)
        return "## answer\nlate"

    start = time.monotonic()
    outs = run_tasks_inprocess(code, TASKS[:3], settings(threads=2, task_timeout_s=0.3), FakeTransport(fn))
    release.set()
    assert time.monotonic() - start < 5
    assert outs[0].error.kind == "timeout" and outs[0].answer is None
    assert [o.answer for o in outs[1:]] == ["fast", "fast"]


def test_runner_load_error_raises():
    with pytest.raises(AgentCodeError):
        run_tasks_inprocess("x = 1\n", TASKS, settings(), FakeTransport())


# -- GatewayTransport ----------------------------------------------------------------

def test_gateway_transport_over_scripted_gateway():
    from metasearch.llm import scripted_gateway

    with scripted_gateway(["## thinking\nt\n## answer\n42", "nonsense"]) as gw:
        transport = GatewayTransport(gw)
        outs = run_tasks_inprocess(COT, TASKS[:1], settings(threads=1), transport)
        assert outs[0].answer == "42"
        transport.note("repair", candidate="cand-1", n=2)
        snap = gw.snapshot()
    assert snap.total.calls == 1
    assert snap.total.events["repair"] == 2


def test_gateway_transport_passes_request():
    class Gw:
        def complete(self, req):
            return req

        def note(self, event, *, candidate=None, n=1):
            self.noted = (event, candidate, n)

    gw = Gw()
    req = LLMRequest(model="m", messages=({"role": "user", "content": "x"},))
    assert GatewayTransport(gw).complete(req) is req
    GatewayTransport(gw).note("truncated", candidate="c", n=1)
    assert gw.noted == ("truncated", "c", 1)
