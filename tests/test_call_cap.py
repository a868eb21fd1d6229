"""run.max_calls_per_task: an agent that calls the model in an unbounded loop is stopped,
in process and in the sandbox, and a candidate never gets more than limit x tasks calls."""

from __future__ import annotations

import pytest
from test_runtime_fakes import FakeTransport, settings
from test_traces import TASKS, sandbox_mode

from metasearch.config import load_config
from metasearch.errors import ConfigError
from metasearch.execution.sandbox import SandboxLimits, SandboxRunner
from metasearch.llm import scripted_gateway
from metasearch.runtime import run_tasks_inprocess
from metasearch.runtime.call_cap import CallCap

# the shape of structured-local's g007-00: a critic loop that never says "true"
LOOPING = '''
def forward(self, taskInfo):
    solver = LLMAgentBase(["thinking", "answer"], "Solver")
    thinking, answer = solver([taskInfo], "Solve it.")
    while True:
        thinking, answer = solver([taskInfo, thinking, answer], "Check and fix it.")
    return answer
'''
ONE_CALL = '''
def forward(self, taskInfo):
    thinking, answer = LLMAgentBase(["thinking", "answer"], "Solver")([taskInfo], "Solve it.")
    return answer
'''


def test_cap_counts_per_task_and_bounds_the_run():
    cap = CallCap(2, n_tasks=3)
    assert cap.take(0) is None and cap.take(0) is None
    refused = cap.take(0)
    assert refused is not None and "run.max_calls_per_task = 2" in refused
    assert cap.take(1) is None
    # calls of no known task count against the run: 2 x 3 = 6 in all
    assert [cap.take(None) for _ in range(3)] == [None, None, None]
    whole = cap.take(2)
    assert whole is not None and "on average" in whole
    assert all(CallCap(0, 1).take(0) is None for _ in range(1000))  # 0: no limit


def served(outcome) -> int:
    return sum(1 for c in outcome.trace["calls"] if c["error"] is None)


def test_inprocess_loop_is_cut_at_the_cap_with_a_clear_error():
    t = FakeTransport(lambda req: "## thinking\nhmm\n\n## answer\n5")
    outs = run_tasks_inprocess(LOOPING, TASKS, settings(threads=3, max_calls_per_task=5), t)
    assert len(t.requests) == 5 * len(TASKS)
    for out in outs:
        assert not out.ok and served(out) == 5
        assert "run.max_calls_per_task = 5" in out.error.message
        assert "unbounded loop" in out.error.message
    ok = run_tasks_inprocess(ONE_CALL, TASKS, settings(threads=3, max_calls_per_task=1),
                             FakeTransport(lambda req: "## thinking\nt\n\n## answer\n5"))
    assert all(o.ok for o in ok)  # a call within the cap is untouched


def test_sandbox_host_refuses_past_the_cap():
    mode = sandbox_mode()
    gw = scripted_gateway(['{"thinking": "t", "answer": "5"}'])
    s = settings(protocol="json", model="scripted/test", threads=3, max_calls_per_task=4)
    limits = SandboxLimits(cpu_s=20, memory_mb=1024, nproc=64, task_timeout_s=20.0,
                           candidate_timeout_s=60.0)
    try:
        with SandboxRunner(mode=mode, gateway=gw, limits=limits, uids=range(61150, 61160)) as r:
            outs = r.run(LOOPING, TASKS, s)
        spent = gw.budget.usage().calls
    finally:
        gw.close()
    assert spent == 4 * len(TASKS)  # billed: exactly the cap, nothing after it
    for out in outs:
        assert not out.ok and out.error.kind != "timeout" and served(out) == 4
        assert "run.max_calls_per_task = 4" in out.error.message


def test_config_field_is_checked(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[run]\nmax_calls_per_task = 0\n")
    assert load_config(path).run.max_calls_per_task == 0
    path.write_text("")
    assert load_config(path).run.max_calls_per_task == 50
    path.write_text("[run]\nmax_calls_per_task = -1\n")
    with pytest.raises(ConfigError, match="run.max_calls_per_task"):
        load_config(path)
