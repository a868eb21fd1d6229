"""SandboxRunner behaviour: outcomes, errors of both kinds, limits, modes, RPC to the gateway."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from metasearch.execution.sandbox import (
    SandboxError,
    SandboxLimits,
    SandboxRunner,
    SandboxUnavailable,
    SandboxWarning,
    run_candidate,
)
from metasearch.execution.sandbox.launch import probe
from metasearch.llm import Budget, BudgetSettings, UnknownModelError, scripted_gateway
from metasearch.runtime.settings import AgentSettings
from metasearch.suites.task import Task

UIDS = range(61100, 61132)
MODEL = "scripted/test"
REPLY = '{"thinking": "easy", "answer": "42"}'
LIMITS = SandboxLimits(cpu_s=10, memory_mb=1024, nproc=64, task_timeout_s=3.0,
                       candidate_timeout_s=30.0)

COT = '''
def forward(self, taskInfo):
    print("solving", taskInfo.content)
    agent = LLMAgentBase(["thinking", "answer"], "CoT")
    thinking, answer = agent([taskInfo], "Think step by step.")
    return answer
'''


def settings(**kw) -> AgentSettings:
    base = dict(model=MODEL, answer_hint="an integer", protocol="json", candidate="c1",
                max_tokens=128, threads=3)
    return AgentSettings(**{**base, **kw})


def tasks(n: int, question: str = "What is 6*7?") -> list[Task]:
    return [Task(id=f"t{i}", question=f"{question} #{i}", answer="GOLD-ANSWER-XYZ")
            for i in range(n)]


def isolating_modes() -> list:
    return [pytest.param(m, marks=pytest.mark.skipif(
        probe(m, sys.executable, UIDS[0]) is not None, reason=f"{m} unavailable"))
        for m in ("bwrap", "unshare")]


@pytest.fixture()
def gateway():
    gw = scripted_gateway([REPLY])
    yield gw
    gw.close()


def runner(mode: str = "bwrap", **kw) -> SandboxRunner:
    kw.setdefault("limits", LIMITS)
    return SandboxRunner(mode=mode, uids=UIDS, **kw)


@pytest.mark.parametrize("mode", isolating_modes())
def test_runs_tasks_over_rpc(mode: str, gateway) -> None:
    seen = []
    with runner(mode, gateway=gateway) as r:
        result = r.run_detailed(COT, tasks(6), settings(), on_outcome=seen.append)
    assert [o.task_id for o in result.outcomes] == [f"t{i}" for i in range(6)]
    assert all(o.ok and o.answer == "42" and not o.truncated for o in result.outcomes)
    assert sorted(o.task_id for o in seen) == [f"t{i}" for i in range(6)]
    assert result.outputs["t3"] == "solving What is 6*7? #3\n"
    assert result.llm_calls == 6 and result.failure is None and result.mode == mode
    snap = gateway.snapshot()
    assert snap.by_candidate["c1"].calls == 6 and set(snap.by_role) == {"task"}
    assert all(req.max_tokens == 128 for req in gateway.backend.calls)


def test_none_mode_warns_loudly(gateway, capsys) -> None:
    with pytest.warns(SandboxWarning, match="SANDBOX DISABLED"):
        r = runner("none", gateway=gateway)
    assert "FULL NETWORK ACCESS" in capsys.readouterr().err
    with r:
        assert [o.answer for o in r.run(COT, tasks(2), settings())] == ["42", "42"]


def test_auto_picks_bwrap_when_it_works() -> None:
    if probe("bwrap", sys.executable, UIDS[0]) is not None:
        pytest.skip("bwrap unavailable")
    with runner("auto") as r:
        assert r.mode == "bwrap"


def test_unknown_mode_and_broken_interpreter_are_sandbox_errors() -> None:
    with pytest.raises(SandboxUnavailable, match="Unknown sandbox mode"):
        SandboxRunner(mode="docker")
    with pytest.raises(SandboxUnavailable, match="No sandbox works"):
        SandboxRunner(mode="bwrap", python="/nonexistent/python3")
    with pytest.warns(SandboxWarning), pytest.raises(SandboxError, match="Cannot start"):
        with runner("none", python="/nonexistent/python3") as bad:
            bad.run(COT, tasks(1), settings())


@pytest.mark.parametrize("mode", isolating_modes())
def test_agent_failures_are_outcomes(mode: str, gateway) -> None:
    code = '''
def forward(self, taskInfo):
    if taskInfo.content.endswith("#1"):
        raise ValueError("bad luck on " + taskInfo.content)
    if taskInfo.content.endswith("#2"):
        import time
        time.sleep(60)
    return "ok " + taskInfo.content
'''
    with runner(mode, gateway=gateway,
                limits=SandboxLimits(task_timeout_s=1.5, candidate_timeout_s=20)) as r:
        out = r.run(code, tasks(4), settings(threads=2))
    assert out[0].answer == "ok What is 6*7? #0"
    assert out[1].error.kind == "exception" and out[1].error.type == "ValueError"
    assert "bad luck" in out[1].error.message and "line 4" in out[1].error.traceback
    assert out[2].error.kind == "timeout"
    assert out[3].answer == "ok What is 6*7? #3"


def test_load_errors_fail_every_task(gateway) -> None:
    with runner(gateway=gateway) as r:
        syntax = r.run("def forward(self, taskInfo):\n    return (\n", tasks(2), settings())
        missing = r.run("def answer(x):\n    return 1\n", tasks(1), settings())
        top = r.run("raise RuntimeError('boom')\n", tasks(1), settings())
    assert all(o.error.kind == "exception" and "syntax error" in o.error.message for o in syntax)
    assert "no top-level function named `forward`" in missing[0].error.message
    assert "RuntimeError: boom" in top[0].error.message


def test_candidate_timeout_kills_the_worker(gateway) -> None:
    code = "import time\ndef forward(self, taskInfo):\n    time.sleep(60)\n"
    limits = SandboxLimits(task_timeout_s=30, candidate_timeout_s=1.5)
    with runner(gateway=gateway, limits=limits) as r:
        result = r.run_detailed(code, tasks(5), settings(threads=2))
    assert all(o.error.kind == "timeout" for o in result.outcomes)
    assert "time limit" in result.failure
    assert result.wall_s < 10


def test_stuck_threads_end_the_candidate_early(gateway) -> None:
    code = "def forward(self, taskInfo):\n    while True:\n        pass\n"
    limits = SandboxLimits(task_timeout_s=1.0, candidate_timeout_s=60, cpu_s=30)
    with runner(gateway=gateway, limits=limits) as r:
        result = r.run_detailed(code, tasks(6), settings(threads=2))
    assert all(o.error.kind == "timeout" for o in result.outcomes)
    assert result.wall_s < 10


def test_cpu_limit_is_reported_as_timeout(gateway) -> None:
    code = "def forward(self, taskInfo):\n    while True:\n        pass\n"
    limits = SandboxLimits(task_timeout_s=30, candidate_timeout_s=30, cpu_s=1)
    with runner(gateway=gateway, limits=limits) as r:
        [o] = r.run(code, tasks(1), settings())
    assert o.error.kind == "timeout" and o.error.type == "CPUTimeLimit"


def test_budget_exhaustion_is_a_budget_outcome() -> None:
    gw = scripted_gateway([REPLY], budget=Budget(BudgetSettings(max_calls=2)))
    try:
        with runner(gateway=gw, call_threads=1) as r:
            out = r.run(COT, tasks(4), settings(threads=1))
    finally:
        gw.close()
    assert [o.ok for o in out] == [True, True, False, False]
    assert {o.error.kind for o in out[2:]} == {"budget"}
    assert len(gw.backend.calls) == 2


def test_gateway_errors_reach_the_agent_and_host_survives() -> None:
    def complete(req):
        if "#0" in req.messages[-1]["content"]:
            raise UnknownModelError("Unknown model 'x'.")
        raise RuntimeError("a bug in the gateway")

    with runner(gateway=complete) as r:
        out = r.run(COT, tasks(2), settings())
    assert out[0].error.type == "UnknownModelError"
    assert out[1].error.type == "LLMError" and "gateway failed" in out[1].error.message


def test_no_gateway_refuses_llm_calls() -> None:
    with runner() as r:
        [o] = r.run(COT, tasks(1), settings())
    assert o.error.kind == "exception" and "no LLM gateway" in o.error.message


def test_worker_sees_minimal_env_no_gold_and_own_scratch(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET-env")
    code = '''
import os
def forward(self, taskInfo):
    path = os.path.join(os.environ["HOME"], "note.txt")
    with open(path, "w") as f:
        f.write("mine")
    return repr(sorted(os.environ)) + repr(taskInfo) + open(path).read() + str(os.getuid())
'''
    with runner(scratch_root=tmp_path) as r:
        [o] = r.run(code, tasks(1), settings())
    assert o.answer.startswith("['HOME', 'LANG', 'LC_ALL', 'PATH', 'PWD', 'TMPDIR']")
    assert "GOLD-ANSWER-XYZ" not in o.answer and "SECRET" not in o.answer
    uid = int(o.answer.rsplit("mine", 1)[1])
    assert uid in UIDS if os.geteuid() == 0 else uid == os.getuid()  # rootless: the user's own
    assert list(tmp_path.iterdir()) == []  # the scratch dir is gone


def test_concurrent_runs_get_distinct_uids() -> None:
    """As root, distinct uids; as an ordinary user (rootless), distinct user namespaces."""
    code = ("import os, time\ndef forward(self, taskInfo):\n    time.sleep(0.5)\n"
            "    return str(os.getuid()) + ' ' + os.readlink('/proc/self/ns/user')\n")
    answers: list[str] = []
    with runner() as r:
        def go() -> None:
            answers.extend(o.answer for o in r.run(code, tasks(1), settings()))
        threads = [threading.Thread(target=go) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(answers) == 3 and len(set(answers)) == 3
    uids = {int(a.split()[0]) for a in answers}
    if os.geteuid() == 0:
        assert len(uids) == 3 and uids <= set(UIDS)
    else:
        assert uids == {os.getuid()} and len({a.split()[1] for a in answers}) == 3


def test_run_candidate_validates_first(gateway) -> None:
    bad = "import os\ndef forward(self, taskInfo):\n    return os.getcwd()\n"
    with runner(gateway=gateway) as r:
        refused = run_candidate(bad, tasks(2), settings(), runner=r)
        assert all(o.error.kind == "refused" for o in refused)
        assert "line 1, column 8: [import-not-allowed]" in refused[0].error.message
        ran = run_candidate(bad, tasks(1), settings(), runner=r, validate=False)
        assert ran[0].answer == "/scratch"
        assert run_candidate(COT, tasks(1), settings(), runner=r)[0].answer == "42"


def test_output_and_answer_caps() -> None:
    code = "def forward(self, taskInfo):\n    print('z' * 5000)\n    return 'a' * 5000\n"
    limits = SandboxLimits(max_answer_chars=100, max_output_chars=50)
    with runner(limits=limits) as r:
        result = r.run_detailed(code, tasks(1), settings())
    [o] = result.outcomes
    assert o.truncated and o.answer == "a" * 100 and len(result.outputs["t0"]) == 50


def test_uid_processes_are_gone_after_a_run() -> None:
    code = ("import subprocess\ndef forward(self, taskInfo):\n"
            "    subprocess.Popen(['sleep', '300'], start_new_session=True)\n    return 'spawned'\n")
    with runner() as r:
        [o] = r.run(code, tasks(1), settings())
    assert o.answer == "spawned"
    assert _sandboxed() == []


def _uid(pid: str) -> int:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return -1


def _sandboxed(pid: str | None = None) -> list[str]:
    """Live processes of a worker: of a sandbox uid (root), else ours in another pid namespace."""
    mine = os.readlink("/proc/self/ns/pid")
    found = []
    for d in [pid] if pid else os.listdir("/proc"):
        if not d.isdigit():
            continue
        if os.geteuid() == 0:
            if _uid(d) in UIDS:
                found.append(d)
            continue
        try:
            if (_uid(d) == os.geteuid() and os.readlink(f"/proc/{d}/ns/pid") != mine
                    and "\nState:\tZ" not in Path(f"/proc/{d}/status").read_text()):
                found.append(d)
        except OSError:
            pass
    return found


def test_prewarm_keeps_a_spare_worker_and_cleans_up(gateway) -> None:
    import time

    with runner(gateway=gateway, prewarm=True) as r:
        first = r.run_detailed(COT, tasks(2), settings())
        r.warm_up()
        assert r._spares and all(w.hello for w in r._spares)
        second = r.run_detailed(COT, tasks(2), settings())
        assert [o.answer for o in first.outcomes + second.outcomes] == ["42"] * 4
        assert second.start_s < first.start_s
        assert not first.prewarmed and second.prewarmed
    time.sleep(0.2)
    assert _sandboxed() == []


def _worker_processes() -> list[str]:
    """Live processes of a worker: owned by a sandbox uid, or a jail (bwrap) we started."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            status = Path(f"/proc/{d}/status").read_text()
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("State", "").startswith("Z"):
            continue
        if _sandboxed(d) or (fields.get("PPid", "").strip() == str(os.getpid())
                               and cmd.endswith(b"bwrap")):
            found.append(d)
    return found


def _uid_locked(uid: int) -> bool:
    """Whether some open file holds the uid's flock (as ``_take_uid`` takes it)."""
    import fcntl

    from metasearch.execution.sandbox.state import lock_dir

    if os.geteuid() != 0:
        return False  # rootless: no uids, no locks
    path = lock_dir() / str(uid)
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def test_prewarm_pool_serves_concurrent_runs_and_close_releases_all(gateway) -> None:
    import time

    if probe("bwrap", sys.executable, UIDS[0]) is not None:
        pytest.skip("bwrap unavailable")
    code = "import os, time\ndef forward(self, taskInfo):\n    time.sleep(0.5)\n    return str(os.getuid())\n"
    results: list = []
    errors: list = []
    with runner(gateway=gateway, prewarm=3) as r:
        r.warm_up()
        held = 3 if os.geteuid() == 0 else 0  # rootless: user namespaces, not uids
        assert r.stats["spares_ready"] == 3 and r.stats["uids_held"] == held
        barrier = threading.Barrier(3)

        def go() -> None:
            try:
                barrier.wait(timeout=10)
                results.append(r.run_detailed(code, tasks(1), settings()))
            except Exception as e:  # surfaced below
                errors.append(e)
        threads = [threading.Thread(target=go) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(results) == 3 and all(res.prewarmed for res in results)
        answers = [res.outcomes[0].answer for res in results]
        if held:
            assert len(set(answers)) == 3 and all(int(a) in UIDS for a in answers)
        else:
            assert set(answers) == {str(os.getuid())}
        stats = r.stats
        assert (stats["runs"], stats["prewarmed"], stats["cold"]) == (3, 3, 0)
        r.warm_up()  # the runs asked for refills: three fresh spares for close() to end
        stats = r.stats
        assert stats["spares_ready"] == 3 and stats["spares_started"] == 6
        assert stats["uids_held"] == held and len(_worker_processes()) >= 3
    stats = r.stats
    assert stats["spares_ready"] == stats["spares_coming"] == stats["uids_held"] == 0
    deadline = time.monotonic() + 5
    while _worker_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _worker_processes() == []
    assert [u for u in UIDS if _uid_locked(u)] == []
