"""Per-candidate cgroups without needing the kernel's help: finding the hierarchy (v1, v2,
hybrid, delegated, unavailable) from hand-written /proc texts over fake trees, the limit and
counter files of each version, the cgexec join, a real cgroup2 mount where this machine can
make one, and the fallback to rlimits (with its notice) where there are no cgroups.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest

from metasearch.execution.sandbox import SandboxLimits, SandboxRunner, SandboxWarning, cgroups
from metasearch.execution.sandbox.cgroups import Hierarchy, Unavailable, find_hierarchy
from metasearch.execution.sandbox.launch import probe

V1_MOUNTS = (
    "30 25 0:26 / {root}/memory rw,nosuid - cgroup cgroup rw,memory\n"
    "31 25 0:27 / {root}/pids rw,nosuid - cgroup cgroup rw,pids\n"
    "32 25 0:28 / {root}/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
)


def _tree(base: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_v2_limits_counters_and_the_breach_reasons(tmp_path):
    _tree(tmp_path, {"svc/cgroup.controllers": "cpu memory pids\n",
                     "svc/cgroup.subtree_control": "memory pids\n", "svc/cgroup.procs": ""})
    found = find_hierarchy(mountinfo=f"40 1 0:30 / {tmp_path} rw - cgroup2 cgroup2 rw\n",
                           proc_cgroup="0::/svc\n")
    assert found == Hierarchy(2, tmp_path / "svc", tmp_path / "svc")
    cg = found.create("metasearch-1-a", memory_mb=512, max_pids=64)
    d = tmp_path / "svc" / "metasearch-1-a"
    assert (cg.memory_dir, cg.pids_dir, cg.dirs) == (d, d, (d,))
    assert {f: (d / f).read_text() for f in ("memory.max", "memory.swap.max",
                                            "memory.oom.group", "pids.max")} == {
        "memory.max": str(512 << 20), "memory.swap.max": "0", "memory.oom.group": "1",
        "pids.max": "64"}
    assert cg.breach() is None  # no counters yet
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 37\noom 0\noom_kill 0\n")
    assert cg.breach() is None  # reaching max and reclaiming is not a breach
    (d / "pids.events").write_text("max 3\n")
    b = cg.breach()
    assert b is not None and b.type == "ProcessLimit" and "process limit" in b.message
    assert "reached 64 (sandbox.max_pids)" in b.message and "refused 3 more" in b.message
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 40\noom 1\noom_kill 0\noom_group_kill 2\n")
    b = cg.breach()  # memory first: an OOM kill says more than a refused fork
    assert b is not None and b.type == "MemoryLimit" and "memory limit" in b.message
    assert "512 MB (sandbox.memory_mb)" in b.message and "killed 2" in b.message


def test_v1_limits_counters_and_a_container_mount_root(tmp_path):
    root = tmp_path / "fs"
    _tree(root, {"memory/job/cgroup.procs": "", "pids/cgroup.procs": ""})
    mounts = (f"30 25 0:26 /docker/abc {root}/memory rw - cgroup cgroup rw,memory\n"
              f"31 25 0:27 / {root}/pids rw - cgroup cgroup rw,pids\n")
    found = find_hierarchy(mountinfo=mounts, proc_cgroup="4:memory:/docker/abc/job\n8:pids:/\n")
    assert found == Hierarchy(1, root / "memory" / "job", root / "pids")
    cg = found.create("metasearch-1-b", memory_mb=1024, max_pids=32)
    assert cg.dirs == (root / "memory/job/metasearch-1-b", root / "pids/metasearch-1-b")
    m, p = cg.dirs
    limit = str(1024 << 20)
    assert (m / "memory.limit_in_bytes").read_text() == limit
    assert (m / "memory.memsw.limit_in_bytes").read_text() == limit  # memory+swap: no swap on top
    assert (p / "pids.max").read_text() == "32"
    (m / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    (p / "pids.events").write_text("max 0\n")
    assert cg.breach() is None
    (m / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert cg.breach().type == "MemoryLimit"


def test_a_hybrid_machine_uses_v1_when_v2_lacks_memory_and_pids(tmp_path):
    _tree(tmp_path, {"unified/cgroup.controllers": "hugetlb\n", "memory/cgroup.procs": "",
                     "pids/cgroup.procs": ""})
    mounts = V1_MOUNTS.format(root=tmp_path) + \
        f"33 25 0:29 / {tmp_path}/unified rw - cgroup2 cgroup2 rw\n"
    found = find_hierarchy(mountinfo=mounts, proc_cgroup="8:pids:/\n4:memory:/\n0::/\n")
    assert isinstance(found, Hierarchy) and found.version == 1


def test_an_ordinary_user_needs_a_delegated_child_and_is_told_how(tmp_path, monkeypatch):
    _tree(tmp_path, {"memory/cgroup.procs": "", "pids/cgroup.procs": "",
                     "memory/metasearch-ada/cgroup.procs": "", "pids/metasearch-ada/cgroup.procs": ""})
    mounts, own = V1_MOUNTS.format(root=tmp_path), "8:pids:/\n4:memory:/\n"
    delegated = {tmp_path / "memory/metasearch-ada", tmp_path / "pids/metasearch-ada"}
    monkeypatch.setattr(cgroups, "_writable", lambda d: d in delegated)
    found = find_hierarchy(mountinfo=mounts, proc_cgroup=own, user="ada")
    assert found == Hierarchy(1, *sorted(delegated))
    monkeypatch.setattr(cgroups, "_writable", lambda d: False)
    found = find_hierarchy(mountinfo=mounts, proc_cgroup=own, user="bob")
    assert isinstance(found, Unavailable) and "not writable by bob" in found.why
    assert found.fix == (f"as root: mkdir -p {tmp_path}/memory/metasearch-bob && chown -R bob "
                         f"{tmp_path}/memory/metasearch-bob && mkdir -p {tmp_path}/pids/"
                         f"metasearch-bob && chown -R bob {tmp_path}/pids/metasearch-bob")


def test_v2_moves_this_process_into_a_leaf_before_enabling_the_controllers(tmp_path, monkeypatch):
    scope = tmp_path / "user.slice" / "app.scope"
    _tree(scope, {"cgroup.controllers": "memory pids io\n", "cgroup.subtree_control": "",
                  "cgroup.procs": f"{os.getpid()}\n"})
    mounts, own = f"40 1 0:30 / {tmp_path} rw - cgroup2 cgroup2 rw\n", "0::/user.slice/app.scope\n"
    real_write, refused = cgroups._write, []

    def write(path, text, *, missing_ok=False):  # what the kernel does while we are inside
        if path.name == "cgroup.subtree_control" and not refused:
            refused.append(path)
            raise OSError(errno.EBUSY, "Device or resource busy")
        real_write(path, text, missing_ok=missing_ok)

    monkeypatch.setattr(cgroups, "_write", write)
    assert find_hierarchy(mountinfo=mounts, proc_cgroup=own, prepare=False) == \
        Hierarchy(2, scope, scope)  # doctor only looks
    assert not (scope / cgroups.HOST_LEAF).exists()
    found = find_hierarchy(mountinfo=mounts, proc_cgroup=own)
    assert found == Hierarchy(2, scope, scope)
    assert (scope / cgroups.HOST_LEAF / "cgroup.procs").read_text() == str(os.getpid())
    assert (scope / "cgroup.subtree_control").read_text() == "+memory +pids"
    # next time this process is in the leaf, and its parent is ready
    (scope / "cgroup.subtree_control").write_text("memory pids\n")
    (scope / cgroups.HOST_LEAF / "cgroup.controllers").write_text("memory pids\n")
    again = find_hierarchy(mountinfo=mounts, proc_cgroup=own.strip() + "/metasearch-host\n")
    assert again == Hierarchy(2, scope, scope)


def test_v2_refuses_a_cgroup_it_shares_or_cannot_write(tmp_path, monkeypatch):
    scope = tmp_path / "session-3.scope"
    _tree(scope, {"cgroup.controllers": "memory pids\n", "cgroup.subtree_control": "",
                  "cgroup.procs": f"1\n{os.getpid()}\n"})  # pid 1 is no descendant of ours
    mounts, own = f"40 1 0:30 / {tmp_path} rw - cgroup2 cgroup2 rw\n", "0::/session-3.scope\n"
    found = find_hierarchy(mountinfo=mounts, proc_cgroup=own)
    assert isinstance(found, Unavailable) and "other processes (pid 1)" in found.why
    assert "--scope -p Delegate=yes" in found.fix
    assert (scope / "cgroup.subtree_control").read_text() == ""  # nothing was touched
    monkeypatch.setattr(cgroups, "_writable", lambda d: False)
    found = find_hierarchy(mountinfo=mounts, proc_cgroup=own)
    assert isinstance(found, Unavailable) and "not writable" in found.why


def test_no_controllers_at_all():
    found = find_hierarchy(mountinfo="", proc_cgroup="")
    assert isinstance(found, Unavailable) and "no cgroup v1" in found.why
    assert cgroups.worker_cgroups(None, None) == (None, "")  # no limits asked: nothing needed


def test_mountinfo_escapes_and_proc_cgroup_parsing():
    m = cgroups._mounts("30 25 0:26 / /sys/fs/my\\040cg rw - cgroup cgroup rw,nosuid,memory\n"
                        "bad line\n31 25 0:27 /x /p rw shared:3 - cgroup cgroup rw,pids\n")
    assert m.v1 == {"memory": (Path("/sys/fs/my cg"), "/"), "pids": (Path("/p"), "/x")}
    assert cgroups._own("12:cpu,cpuacct:/a\n4:memory:/b\n0::/c\n") == {
        "cpu": "/a", "cpuacct": "/a", "memory": "/b", "": "/c"}


def test_the_join_happens_in_the_process_that_becomes_the_command(tmp_path):
    """No race: the shell writes its own pid, then execs (same pid) before anything forks."""
    d1, d2 = tmp_path / "mem", tmp_path / "pids"
    d1.mkdir()
    d2.mkdir()
    cg = cgroups.WorkerCgroup(1, d1, d2)
    proc = subprocess.run(cg.wrap([sys.executable, "-c", "import os; print(os.getpid())"]),
                          capture_output=True, text=True, timeout=30)
    pid = proc.stdout.strip()
    assert proc.returncode == 0 and pid.isdigit(), proc.stderr
    assert (d1 / "cgroup.procs").read_text().strip() == pid
    assert (d2 / "cgroup.procs").read_text().strip() == pid
    # a cgroup that cannot be joined: the command never runs
    gone = cgroups.WorkerCgroup(1, tmp_path / "no" / "such", d2)
    proc = subprocess.run(gone.wrap(["/bin/echo", "RAN"]), capture_output=True, text=True)
    assert proc.returncode == 125 and "RAN" not in proc.stdout
    for d in (d1, d2):  # the pid is gone: no finalizer may ever signal it again
        (d / "cgroup.procs").write_text("")


def test_a_real_cgroup2_mount_holds_the_tree_and_is_removed():
    """On this machine's cgroup2 (a fresh mount; limits too where it has memory and pids)."""
    if os.geteuid() != 0:
        pytest.skip("mounting cgroup2 needs root")
    where = Path(tempfile.mkdtemp(prefix="ms-cg2-"))
    mounted = subprocess.run(["mount", "-t", "cgroup2", "none", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount cgroup2 here: {mounted.stderr.strip()}")
    cg = None
    try:
        own = cgroups._own(Path("/proc/self/cgroup").read_text()).get("", "/")
        parent = where / own.lstrip("/")
        limits = set(cgroups._NEEDED) <= set(cgroups._read(parent / "cgroup.subtree_control")
                                              .split())
        cg = Hierarchy(2, parent, parent).create(
            f"{cgroups.PREFIX}{os.getpid()}-v2", memory_mb=256 if limits else None,
            max_pids=8 if limits else None)
        child = ("import os, time\n"
                 "if os.fork() == 0:\n    time.sleep(30)\n"
                 "print([x for x in open('/proc/self/cgroup') if x.startswith('0::')][0].strip(),"
                 " flush=True)\ntime.sleep(30)\n")
        proc = subprocess.Popen(cg.wrap([sys.executable, "-c", child]), stdout=subprocess.PIPE,
                                text=True)
        line = proc.stdout.readline().strip()
        assert line.startswith("0::") and line.endswith(cg.memory_dir.name), line
        assert len(cg.members()) == 2  # the command and its child, joined before the fork
        assert (cg.memory_dir / "cgroup.events").read_text().count("populated 1") == 1
        if limits:
            assert (cg.memory_dir / "pids.max").read_text().strip() == "8"
        assert cg.remove()  # cgroup.kill, then rmdir
        assert not cg.memory_dir.exists()
        proc.wait(timeout=10)
        assert proc.returncode == -9
    finally:
        if cg is not None:
            cg.remove()  # also when an assertion failed: the hierarchy outlives the mount
        subprocess.run(["umount", str(where)], check=False)
        where.rmdir()


def test_without_cgroups_rlimits_remain_and_the_runner_says_so(monkeypatch):
    from metasearch.cli._output import sandbox_notices
    from metasearch.execution.sandbox import pool
    from metasearch.runtime.settings import AgentSettings
    from metasearch.suites.task import Task

    mode = next((m for m in ("bwrap", "unshare") if probe(m, sys.executable, 61300) is None),
                None)
    if mode is None or os.geteuid() != 0:
        pytest.skip("needs root and the bwrap or unshare sandbox")
    monkeypatch.setattr(pool, "worker_cgroups", lambda mb, n: (None, "no cgroup here (test)"))
    limits = SandboxLimits(nproc=12, max_pids=12, task_timeout_s=20.0, candidate_timeout_s=30.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner = SandboxRunner(mode=mode, limits=limits, uids=range(61300, 61304))
    said = [str(w.message) for w in caught if issubclass(w.category, SandboxWarning)]
    assert any("cgroups are not available here (no cgroup here (test))" in s
               and "rlimits only" in s for s in said), said
    bomb = '''
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
        return f"refused after {n}"
'''
    settings = AgentSettings(model="scripted/test", answer_hint="", protocol="json",
                             candidate="c", threads=1)
    try:
        assert runner.cgroups is None
        [outcome] = runner.run(bomb, [Task(id="t", question="q", answer="a")], settings)
    finally:
        runner.close()
    # RLIMIT_NPROC held it (this uid's 12), and no cgroup reason was made up
    assert outcome.ok and outcome.answer.startswith("refused after "), outcome
    assert int(outcome.answer.split()[-1]) < 12

    # the CLI shows the warning as one notice line

    err = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(err), sandbox_notices():
        warnings.simplefilter("always")
        warnings.warn("cgroups are not available here (x); each candidate's memory and "
                      "processes are held by rlimits only (per process, per uid).",
                      SandboxWarning, stacklevel=1)
    assert "notice: cgroups are not available here (x)" in " ".join(err.getvalue().split())


def test_the_sandbox_section_is_checked_field_by_field_and_reaches_the_runner(tmp_path):
    from metasearch.campaign.build import build_sandbox
    from metasearch.config import load_config
    from metasearch.errors import ConfigError

    path = tmp_path / "c.toml"
    path.write_text("[sandbox]\nmemory_mb = 1024\nmax_pids = 64\n")
    cfg = load_config(path)
    assert (cfg.sandbox.memory_mb, cfg.sandbox.max_pids) == (1024, 64)
    assert cfg.to_flat_params()["sandbox.max_pids"] == "64"
    assert load_config(tmp_path / "c.toml", {"sandbox.max_pids": 300}).sandbox.max_pids == 300
    bad = [("memory_mb = 100", {}, "sandbox.memory_mb = 100", "from 512 to 1048576"),
           ("", {"sandbox.max_pids": 8}, "sandbox.max_pids (set by a command-line override) = 8",
            "from 16 to 65536"),
           ('max_pids = "64"', {}, "sandbox.max_pids = '64'", "valid integer"),
           ("memroy_mb = 600", {}, "sandbox.memroy_mb", "Did you mean 'memory_mb'")]
    for body, overrides, field, hint in bad:
        path.write_text(f"[sandbox]\n{body}\n")
        with pytest.raises(ConfigError) as err:
            load_config(path, overrides)
        text = str(err.value)
        assert str(path) in text and field in text and hint in text, text
        assert "\n" not in text  # one paragraph
    with pytest.warns(SandboxWarning, match="SANDBOX DISABLED"):
        runner = build_sandbox("none", None, memory_mb=768, max_pids=40)
    try:
        lim = runner.limits
        assert (lim.memory_mb, lim.max_pids, lim.nproc) == (768, 40, 40)
    finally:
        runner.close()
