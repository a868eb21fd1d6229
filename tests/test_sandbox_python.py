"""run_python inside the sandbox: the child is in the worker's jail and cannot reach the worker.

The hostile corpus (python_* agents) covers the bombs and floods; this file checks
what the child is and sees, in both isolating modes.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from metasearch.execution.sandbox import SandboxLimits, SandboxRunner
from metasearch.execution.sandbox.launch import probe
from metasearch.llm import scripted_gateway
from metasearch.runtime.settings import AgentSettings
from metasearch.suites.task import Task

UIDS = range(61200, 61216)
MODEL = "scripted/test"

PROBE = r'''
import json, os, socket
fds = []
for fd in range(3, 1024):
    try:
        os.fstat(fd)
        fds.append(fd)
    except OSError:
        pass
try:
    os.listdir("/proc/%d/fd" % os.getppid())
    parent_fds = "readable"
except OSError:
    parent_fds = "hidden"
try:
    os.fork()
    fork = "forked"
except OSError as e:
    fork = type(e).__name__
# /proc/net/dev, not if_nameindex(): the seccomp filter refuses its netlink socket
ifs = [ln.split(":")[0].strip() for ln in open("/proc/net/dev").read().splitlines()[2:]]
print(json.dumps({"uid": os.getuid(), "fds": fds, "parent_fds": parent_fds, "fork": fork,
                  "ifs": ifs, "env": sorted(os.environ),
                  "root": sorted(os.listdir("/root")) if os.path.isdir("/root") else []}))
'''

AGENT = f'''
def forward(self, taskInfo):
    return run_python({PROBE!r})
'''


def isolating_modes() -> list:
    return [pytest.param(m, marks=pytest.mark.skipif(
        probe(m, sys.executable, UIDS[0]) is not None, reason=f"{m} unavailable"))
        for m in ("bwrap", "unshare")]


def run(mode: str, code: str, n: int = 1, **kw):
    gw = scripted_gateway(['{"answer": "1"}'])
    settings = AgentSettings(model=MODEL, answer_hint="", protocol="json", candidate="c1",
                             threads=2, **kw)
    limits = SandboxLimits(cpu_s=20, memory_mb=512, nproc=32, task_timeout_s=15.0,
                           candidate_timeout_s=60.0)
    tasks = [Task(id=f"t{i}", question="q", answer="1") for i in range(n)]
    try:
        with SandboxRunner(mode=mode, gateway=gw, limits=limits, uids=UIDS) as r:
            result = r.run_detailed(code, tasks, settings)
            worker_uid = UIDS[0] if os.geteuid() == 0 else os.getuid()  # rootless: the user's
        return result, gw.snapshot(), worker_uid
    finally:
        gw.close()


@pytest.mark.parametrize("mode", isolating_modes())
def test_the_child_runs_in_the_jail_as_the_worker_and_cannot_reach_it(mode: str) -> None:
    result, snap, uid = run(mode, AGENT, n=2)
    for outcome in result.outcomes:
        assert outcome.ok, outcome.error
        seen = json.loads(outcome.answer)
        assert seen["uid"] == uid  # the worker's own unprivileged uid
        assert seen["fds"] == []  # not the RPC socket, nothing but 0/1/2
        assert seen["parent_fds"] == "hidden"  # the worker made itself non-dumpable
        assert seen["fork"] == "BlockingIOError"  # RLIMIT_NPROC 0
        assert seen["ifs"] == ["lo"]  # the jail's network namespace
        assert seen["env"] == ["HOME", "LANG", "LC_ALL", "PATH", "PYTHONHASHSEED",
                               "PYTHONIOENCODING", "TMPDIR"]
        assert set(seen["root"]) <= {".pyenv"}  # the host's home is hidden (bar the interpreter)
    assert snap.by_candidate["c1"].events == {"python_ok": 2}


@pytest.mark.parametrize("mode", isolating_modes())
def test_the_childs_memory_cap_sits_inside_the_workers(mode: str) -> None:
    bomb = ("def forward(self, taskInfo):\n"
            "    return run_python('b = []\\nwhile True:\\n    b.append(bytearray(32 << 20))\\n')\n")
    result, snap, _ = run(mode, bomb, python_memory_mb=4096)  # more than the worker's 512 MB
    [outcome] = result.outcomes
    assert outcome.ok and "ran out of memory (its limit is 512 MB)" in outcome.answer
    assert snap.by_candidate["c1"].events == {"python_memory": 1}


@pytest.mark.parametrize("mode", isolating_modes())
def test_a_task_timeout_kills_a_running_child_with_the_worker(mode: str) -> None:
    sleeper = ("def forward(self, taskInfo):\n"
               "    return run_python('import time\\ntime.sleep(600)\\n')\n")
    gw = scripted_gateway(['{"answer": "1"}'])
    settings = AgentSettings(model=MODEL, answer_hint="", protocol="json", candidate="c1",
                             threads=1, python_timeout_s=600.0)
    limits = SandboxLimits(task_timeout_s=1.0, candidate_timeout_s=30.0)
    try:
        with SandboxRunner(mode=mode, gateway=gw, limits=limits, uids=UIDS) as r:
            [outcome] = r.run(sleeper, [Task(id="t", question="q", answer="1")], settings)
    finally:
        gw.close()
    assert outcome.error is not None and outcome.error.kind == "timeout"
    assert _processes_of(UIDS) == []


def _processes_of(uids: range) -> list[int]:
    """Processes of the sandbox uids (root), or ours in another pid namespace (rootless)."""
    rootless, mine = os.geteuid() != 0, os.readlink("/proc/self/ns/pid")
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                uid = os.stat(f"/proc/{d}").st_uid
                if uid in uids or (rootless and uid == os.geteuid()
                                   and os.readlink(f"/proc/{d}/ns/pid") != mine
                                   and "\nState:\tZ" not in open(f"/proc/{d}/status").read()):
                    pids.append(int(d))
            except OSError:
                pass
    return pids
