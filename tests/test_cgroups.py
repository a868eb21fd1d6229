"""Per-candidate cgroups, for real: a breach of sandbox.memory_mb or sandbox.max_pids is a
``failed`` candidate whose reason says "memory limit" or "process limit", while a
well-behaved candidate running at the same time in the same runner still succeeds, and
no cgroup is left behind.

The hostile agents are chosen so that the rlimits alone would let them through: the memory
hog spreads its memory over four ``run_python`` children (each inside its own address-space
rlimit), and the thread and fork bombs run under an ``RLIMIT_NPROC`` far above
``max_pids``. The two valid ones pass validation: a model could write them.

Needs root and cgroup v1 or v2 with memory and pids (skipped, with the reason, elsewhere).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from metasearch.campaign.recording import scored_record
from metasearch.evaluation.run import evaluate_agent
from metasearch.execution.sandbox import SandboxLimits, SandboxRunner, cgroups, run_candidate
from metasearch.execution.sandbox.launch import probe
from metasearch.llm import scripted_gateway
from metasearch.runtime.settings import AgentSettings
from metasearch.suites.task import Task

UIDS = range(61200, 61232)
FOUND, WHY = cgroups.worker_cgroups(1024, 64) if os.geteuid() == 0 else (None, "not root")
pytestmark = pytest.mark.skipif(FOUND is None, reason=f"no cgroups here: {WHY}")
MODES = [m for m in ("bwrap", "unshare") if FOUND and probe(m, sys.executable, UIDS[0]) is None]
TASKS = [Task(id=f"t{i}", question=f"What is {i} + 1?", answer=str(i + 1)) for i in range(2)]

GOOD = '''
def forward(self, taskInfo):
    return "fine"
'''
# valid: four run_python children of 200 MB each, every one inside its own 256 MB rlimit
MEMORY_HOG = '''
def forward(self, taskInfo):
    from concurrent.futures import ThreadPoolExecutor
    thinking, answer = LLMAgentBase(["thinking", "answer"], "Solver")([taskInfo], "Solve it.")
    program = "block = b'x' * (200 << 20)\\nimport time\\ntime.sleep(4)\\nprint('kept', len(block))"
    with ThreadPoolExecutor(max_workers=4) as pool:
        outs = list(pool.map(lambda _: run_python(program), range(4)))
    return answer
'''
# valid: 64 threads that wait at once, far below RLIMIT_NPROC (1024), above max_pids (24)
THREAD_BOMB = '''
def forward(self, taskInfo):
    from concurrent.futures import Future, ThreadPoolExecutor, TimeoutError

    def pause(n):
        try:
            Future().result(timeout=1.0)
        except TimeoutError:
            return n

    with ThreadPoolExecutor(max_workers=64) as pool:
        done = list(pool.map(pause, range(64)))
    return str(len(done))
'''
# invalid (imports os), run with validation skipped: forks until refused
FORK_BOMB = '''
def forward(self, taskInfo):
    import os, time
    n = 0
    try:
        while True:
            if os.fork() == 0:
                time.sleep(20)
                os._exit(0)
            n += 1
    except OSError as e:
        return f"refused after {n}: {e}"
'''


def _settings(candidate: str) -> AgentSettings:
    return AgentSettings(model="scripted/test", answer_hint="a number", protocol="json",
                         candidate=candidate, threads=1, python_timeout_s=10.0,
                         python_memory_mb=256)


def _left(runner: SandboxRunner) -> list[str]:
    """This process's worker cgroups still present under the runner's parents."""
    h = runner.cgroups
    assert h is not None
    mine = f"{cgroups.PREFIX}{os.getpid()}-"
    return sorted(p.name for parent in {h.memory_parent, h.pids_parent}
                  for p in parent.iterdir() if p.name.startswith(mine))


@pytest.fixture(scope="module")
def gateway():
    gw = scripted_gateway(['{"thinking": "ok", "answer": "1"}'])
    yield gw
    gw.close()


def _runner(gateway, mode: str | None = None, **limits) -> SandboxRunner:
    mode = mode or (MODES or [None])[0]
    if mode is None:
        pytest.skip("neither the bwrap nor the unshare sandbox works here")
    lim = SandboxLimits(cpu_s=60, nproc=1024, task_timeout_s=20.0, candidate_timeout_s=40.0,
                        **limits)
    return SandboxRunner(mode=mode, gateway=gateway, limits=lim, uids=UIDS, call_threads=4)


@pytest.fixture(scope="module", params=MODES or [None])
def mode(request):
    return request.param


@pytest.fixture(scope="module")
def memory_runner(gateway, mode):
    with _runner(gateway, mode, memory_mb=512, max_pids=256) as runner:
        yield runner


@pytest.fixture(scope="module")
def pids_runner(gateway, mode):
    with _runner(gateway, mode, memory_mb=4096, max_pids=24) as runner:
        yield runner


def _side_by_side(runner, gateway, hostile: str, *, validate: bool = True):
    """The hostile candidate and a good one at the same time; (hostile eval, good outcomes)."""
    def hostile_run():
        code_runner = _Validating(runner, validate)
        return evaluate_agent(hostile, TASKS, scorer=lambda a, g: float(a == g),
                              runner=code_runner, settings=_settings("cand-hostile"),
                              gateway=gateway)

    with ThreadPoolExecutor(max_workers=2) as pool:
        bad = pool.submit(hostile_run)
        good = pool.submit(run_candidate, GOOD, TASKS, _settings("cand-good"), runner=runner)
        return bad.result(timeout=120), good.result(timeout=120)


class _Validating:
    """``run_candidate`` (validation first) behind the runner seam ``evaluate_agent`` takes."""

    def __init__(self, runner: SandboxRunner, validate: bool) -> None:
        self.runner, self.validate = runner, validate

    def run(self, code, tasks, settings, *, on_outcome=None):
        return run_candidate(code, tasks, settings, runner=self.runner, validate=self.validate,
                             on_outcome=on_outcome)


def _record(evaluation, code: str):
    return scored_record("cand-hostile", "hostile", 1, "", code, evaluation, wall_s=1.0,
                         strategy="test", parents=())


def test_a_memory_hog_spread_over_processes_fails_on_its_memory_limit(memory_runner, gateway):
    evaluation, good = _side_by_side(memory_runner, gateway, MEMORY_HOG)
    record = _record(evaluation, MEMORY_HOG)
    assert record.status == "failed" and "memory limit" in record.reason, record.reason
    for r in evaluation.result.results:
        assert r.error is not None and r.error.type == "MemoryLimit", r
        assert "512 MB (sandbox.memory_mb)" in r.error.message and "killed" in r.error.message
    assert [o.answer for o in good] == ["fine", "fine"] and all(o.ok for o in good)
    assert _left(memory_runner) == []


def test_a_thread_bomb_fails_on_its_process_limit(pids_runner, gateway, monkeypatch):
    seen: list[str] = []
    real_remove = cgroups.WorkerCgroup.remove

    def spy(self, timeout_s: float = 5.0) -> bool:  # the kernel's own counter, before removal
        seen.append(cgroups._read(self.pids_dir / "pids.events"))
        return real_remove(self, timeout_s)

    monkeypatch.setattr(cgroups.WorkerCgroup, "remove", spy)
    evaluation, good = _side_by_side(pids_runner, gateway, THREAD_BOMB)
    record = _record(evaluation, THREAD_BOMB)
    assert record.status == "failed" and "process limit" in record.reason, record.reason
    for r in evaluation.result.results:
        assert r.error is not None and r.error.type == "ProcessLimit", r
        assert "reached 24 (sandbox.max_pids)" in r.error.message
    assert all(o.ok for o in good)
    # the cgroup refused the threads: RLIMIT_NPROC (1024) was nowhere near
    refused = [cgroups._counters(text).get("max", 0) for text in seen]
    assert max(refused) > 0, seen
    assert _left(pids_runner) == []


def test_a_fork_bomb_fails_on_its_process_limit(pids_runner, gateway):
    evaluation, good = _side_by_side(pids_runner, gateway, FORK_BOMB, validate=False)
    record = _record(evaluation, FORK_BOMB)
    assert record.status == "failed" and "process limit" in record.reason, record.reason
    assert all(o.ok for o in good)
    assert _left(pids_runner) == []


def test_a_spare_worker_has_its_cgroup_until_the_runner_closes(gateway):
    runner = _runner(gateway, memory_mb=1024, max_pids=64)
    runner.prewarm = 1
    try:
        runner.warm_up()
        assert runner.stats["spares_ready"] == 1
        [name] = set(_left(runner))
        members = [int(p) for p in cgroups._read(runner.cgroups.pids_parent / name
                                                 / "cgroup.procs").split()]
        assert members, "the spare's processes are in its cgroup"
    finally:
        runner.close()
    assert _left(runner) == []


def test_a_delegated_v1_subtree_serves_an_ordinary_user(tmp_path):
    """cgroup v1 as nobody: a metasearch-nobody child chowned to the user is used, for real."""
    if FOUND.version != 1 or shutil.which("setpriv") is None:
        pytest.skip("needs cgroup v1 and setpriv")
    own = cgroups._own(Path("/proc/self/cgroup").read_text())
    mounts = cgroups._mounts(Path("/proc/self/mountinfo").read_text())
    made = [cgroups._place(mounts.v1[c], own[c]) / "metasearch-nobody" for c in ("memory", "pids")]
    program = (
        "import importlib.util, subprocess, sys\n"  # the module alone: it needs only stdlib
        f"spec = importlib.util.spec_from_file_location('cgroups', {cgroups.__file__!r})\n"
        "cgroups = sys.modules['cgroups'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(cgroups)\n"
        "h, why = cgroups.worker_cgroups(512, 8)\n"
        "assert h is not None, why\n"
        "cg = h.create('metasearch-1-nobody', memory_mb=512, max_pids=8)\n"
        "bomb = 'import os, time\\nwhile True:\\n  if os.fork() == 0: time.sleep(9); os._exit(0)'\n"
        "subprocess.run(cg.wrap([sys.executable, '-c', bomb]), stdout=subprocess.DEVNULL,\n"
        "               stderr=subprocess.DEVNULL, timeout=30)\n"
        "b = cg.breach()\n"
        "print(h.memory_parent.name, h.pids_parent.name, b.type, cg.remove())\n")
    try:
        for d in made:
            d.mkdir(exist_ok=True)
            subprocess.run(["chown", "-R", "nobody", str(d)], check=True)
        proc = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
             "-I", "-c", program], capture_output=True, text=True, timeout=60, cwd="/",
            env={"PATH": "/usr/bin:/bin"})
        if ("Permission denied" in proc.stderr or "No such executable" in proc.stderr) and \
                "python" in proc.stderr.lower():
            pytest.skip(f"nobody cannot start this interpreter: {proc.stderr[-200:]}")
        assert proc.stdout.split() == ["metasearch-nobody", "metasearch-nobody", "ProcessLimit",
                                       "True"], proc.stderr
    finally:
        for d in made:
            cgroups._remove_dirs((d,), 1, 2.0)
