"""Measurements of the rootless sandbox, taken as an ordinary user (not a test module).

``tests/test_sandbox_rootless.py`` calls :func:`measure` in-process when it runs
as an ordinary user, and as root runs this file as another user
(``python tests/_rootless_checks.py [WRITABLE_DIR]``, one JSON object on stdout):
the rootless mode only exists for non-root users. Per mode that works here:

* ``counts``: how many children each of two *concurrent* workers could fork
  under ``RLIMIT_NPROC = NPROC`` (the limit counts per user namespace, so each
  gets nearly all of it; a per-uid count would share one ``NPROC``), and how
  many processes this uid had on the host meanwhile;
* ``peer``: what a worker saw of another worker running at the same time (its
  scratch by host path, its host pids by ``kill(pid, 0)``, the jail's ``/proc``);
* ``status``: uid, NoNewPrivs and CapEff inside, and ``write``: writing to a
  directory this user owns outside the jail's hidden roots (``WRITABLE_DIR``);
  that worker then double-forks a daemon, and ``leftover`` lists the processes
  of this uid left in any jail namespace once it was retired;
* ``seccomp``: the hostile ``seccomp_namespaces`` agent's answer.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from metasearch.execution.sandbox import SandboxLimits, SandboxRunner
from metasearch.execution.sandbox.launch import probe
from metasearch.execution.sandbox.state import scratch_base, state_dir
from metasearch.runtime.settings import AgentSettings
from metasearch.suites.task import Task

NPROC = 24
HOSTILE = Path(__file__).resolve().parent / "hostile"
SETTINGS = AgentSettings(model="scripted/test", answer_hint="x", protocol="json",
                         candidate="rootless", max_tokens=16, threads=1)
LIMITS = SandboxLimits(cpu_s=20, memory_mb=768, nproc=NPROC, task_timeout_s=20.0,
                       candidate_timeout_s=40.0)

FORKER = '''
def forward(self, taskInfo):
    import os, time
    kids = []
    try:
        while len(kids) < 200:
            pid = os.fork()
            if pid == 0:
                time.sleep(1.0)
                os._exit(0)
            kids.append(pid)
    except OSError:
        pass
    for k in kids:
        os.waitpid(k, 0)
    return str(len(kids))
'''

HOLDER = '''
def forward(self, taskInfo):
    import os, time
    with open("mine.txt", "w") as f:
        f.write("secret of the first worker")
    time.sleep(2.0)
    return "held"
'''

PEEK = '''
def forward(self, taskInfo):
    import json, os
    out = {}
    try:
        out["file"] = open(@@FILE@@).read()
    except OSError as e:
        out["file"] = type(e).__name__
    out["kill"] = {}
    for pid in @@PIDS@@:
        try:
            os.kill(pid, 0)
            out["kill"][str(pid)] = "reached"
        except OSError as e:
            out["kill"][str(pid)] = type(e).__name__
    out["procs"] = sorted(int(d) for d in os.listdir("/proc") if d.isdigit())
    return json.dumps(out)
'''

STATUS = '''
def forward(self, taskInfo):
    import errno, json, os, time
    st = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
    out = {"uid": os.getuid(), "nnp": st["NoNewPrivs"].strip(), "cap": st["CapEff"].strip()}
    try:
        with open(@@DIR@@ + "/pwned", "w") as f:
            f.write("x")
        out["write"] = "wrote"
    except OSError as e:
        out["write"] = errno.errorcode.get(e.errno, type(e).__name__)
    if os.fork() == 0:  # a daemon that means to outlive the run
        os.setsid()
        if os.fork() == 0:
            time.sleep(60)
        os._exit(0)
    time.sleep(0.3)
    return json.dumps(out)
'''


def _task() -> list[Task]:
    return [Task(id="t0", question="q", answer="a")]


def _jailed() -> set[int]:
    """This uid's live processes in another pid namespace than ours (i.e. in some jail).

    Zombies are left out: they hold nothing, and a jail's pid 1 can be left one under
    an init that does not reap (a container's).
    """
    me, mine = os.geteuid(), os.readlink("/proc/self/ns/pid")
    out = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if (os.stat(f"/proc/{d}").st_uid == me
                        and os.readlink(f"/proc/{d}/ns/pid") != mine
                        and "\nState:\tZ" not in open(f"/proc/{d}/status").read()):
                    out.add(int(d))
            except OSError:
                pass
    return out


def _host_procs() -> int:
    me = os.geteuid()
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                n += os.stat(f"/proc/{d}").st_uid == me
            except OSError:
                pass
    return n


def _answer(runner: SandboxRunner, code: str) -> str:
    [o] = runner.run(code, _task(), SETTINGS)
    return o.answer if o.error is None else f"ERROR {o.error.kind}: {o.error.message}"


def _concurrent(runner: SandboxRunner, code: str, n: int) -> tuple[list[str], int]:
    answers: list[str] = [""] * n
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _host_procs())
            time.sleep(0.1)

    def go(i: int) -> None:
        answers[i] = _answer(runner, code)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    w = threading.Thread(target=watch)
    w.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    w.join()
    return answers, peak[0]


def _peer(runner: SandboxRunner) -> dict:
    before = _jailed()
    result: list[str] = []
    t = threading.Thread(target=lambda: result.append(_answer(runner, HOLDER)))
    t.start()
    deadline = time.monotonic() + 20
    mine = None
    while time.monotonic() < deadline and mine is None:
        mine = next(iter(runner.scratch_root.glob("cand-*/mine.txt")), None)
        time.sleep(0.05)
    pids = sorted(_jailed() - before)
    code = PEEK.replace("@@FILE@@", repr(str(mine))).replace("@@PIDS@@", repr(pids))
    seen = json.loads(_answer(runner, code))
    t.join()
    return {"file_found_by_host": mine is not None, "holder_pids": pids, **seen,
            "holder": result[0] if result else None}


def measure_mode(mode: str, writable: str | None) -> dict:
    out: dict = {}
    with SandboxRunner(mode=mode, limits=LIMITS, call_threads=2) as runner:
        out["scratch_root"] = str(runner.scratch_root)
        out["rootless"] = runner.rootless
        answers, peak = _concurrent(runner, FORKER, 2)
        out["counts"], out["host_procs_peak"] = answers, peak
        out["peer"] = _peer(runner)
        before = _jailed()
        status = _answer(runner, STATUS.replace("@@DIR@@", repr(writable or "/nonexistent")))
        out["status"] = json.loads(status) if status.startswith("{") else status
        out["leftover"] = sorted(_jailed() - before)
        out["seccomp"] = _answer(runner, (HOSTILE / "seccomp_namespaces.py").read_text())
    return out


def measure(writable: str | None = None) -> dict:
    """Every measurement, per mode; a mode that does not start here says why."""
    out: dict = {"uid": os.getuid(), "state_dir": str(state_dir()),
                 "scratch_base": str(scratch_base()), "modes": {}}
    for mode in ("bwrap", "unshare"):
        why = probe(mode, sys.executable, os.getuid())
        out["modes"][mode] = {"probe": why} if why else measure_mode(mode, writable)
    return out


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1] if len(sys.argv) > 1 else None)))
