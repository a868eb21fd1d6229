"""The rootless sandbox (ordinary users): per-user state, and what replaces the uid switch.

Measured, not assumed (``_rootless_checks.measure``, one run per module): each of
two concurrent workers gets its own ``RLIMIT_NPROC`` count (per user namespace),
a worker sees nothing of another (its scratch, its pids), no process outlives
its run, no capability or privilege is left inside, the seccomp filter still
refuses namespaces and mounts, and rootless ``unshare`` keeps the user's own
files read-only. As an ordinary user this runs in-process; as root it runs as
``nobody`` (``.ci/run`` also runs the sandbox tests as an ordinary user), after
root's own jail, with the old fixed lock directory and ``nobody``'s
``/tmp/metasearch-65534`` squatted by another user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import _rootless_checks as checks
import pytest

from metasearch.execution.sandbox import SandboxRunner, state
from metasearch.execution.sandbox.launch import JailSpec, probe
from metasearch.execution.sandbox.seccomp import seccomp_available
from metasearch.runtime.settings import AgentSettings
from metasearch.suites.task import Task

ROOT = Path(__file__).resolve().parents[1]
ROOT_UIDS = range(61400, 61404)
NOBODY = 65534
IS_ROOT = os.geteuid() == 0
USER_DIR = os.environ.get("METASEARCH_TEST_USER_DIR")  # the user's own, outside its home


def _spec(mode: str, rootless: bool) -> JailSpec:
    return JailSpec(mode=mode, python=sys.executable, scratch=Path("/tmp/s/cand-x"),
                    scratch_root=Path("/tmp/s"), uid=60007, fd=3, limits_json="{}",
                    rootless=rootless)


def test_rootless_command_lines_use_user_namespaces_and_root_keeps_its_uid_switch() -> None:
    if shutil.which("bwrap") is None or shutil.which("unshare") is None:
        pytest.skip("bwrap or unshare not installed")
    bwrap = _spec("bwrap", True).argv()
    assert "--unshare-user" in bwrap and not any("--reuid" in a for a in bwrap)
    unshare = _spec("unshare", True).argv()
    script = unshare[unshare.index("-c") + 1]
    assert unshare[1:3] == ["--user", "--map-root-user"]
    assert f"--map-user={os.getuid()}" in unshare and "--bounding-set=-all" in unshare
    assert "remount,bind,ro" in script and "exit 97" in script
    for mode in ("bwrap", "unshare"):  # root: exactly today's uid switch, no user namespace
        argv = _spec(mode, False).argv()
        assert "--reuid=60007" in argv and "--unshare-user" not in argv
        assert "--map-root-user" not in argv


# ------------------------------------------------------------------ per-user state


def test_a_directory_is_used_only_if_it_is_this_users_own(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o755)
    assert state.usable_dir(mine) and (mine.stat().st_mode & 0o777) == 0o700  # closed
    link = tmp_path / "link"
    link.symlink_to(mine)
    assert not state.usable_dir(link)
    (tmp_path / "file").write_text("x")
    assert not state.usable_dir(tmp_path / "file")
    if IS_ROOT:
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, NOBODY, NOBODY)
        assert not state.usable_dir(theirs)
    else:
        assert not state.usable_dir(Path("/usr"))


def test_a_squatted_tmp_fallback_gives_a_fresh_private_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    state._tmp_fallback.cache_clear()
    try:
        squat = tmp_path / f"metasearch-{os.geteuid()}"
        squat.symlink_to("/")  # another user's trap, as far as this user can build one
        got = state._tmp_fallback(os.geteuid())
        assert got != squat and got.parent == tmp_path and state.usable_dir(got)
        assert (got.stat().st_mode & 0o777) == 0o700
    finally:
        state._tmp_fallback.cache_clear()


@pytest.mark.skipif(not IS_ROOT, reason="root's uid locks")
def test_roots_uid_locks_are_in_run_not_in_the_shared_tmp() -> None:
    assert state.lock_dir() == Path("/run/metasearch/sandbox-uids")
    assert (Path("/run/metasearch").stat().st_mode & 0o777) == 0o700


# ------------------------------------------------------------------ measurements

CODE_UID = "import os\ndef forward(self, taskInfo):\n    return str(os.getuid())\n"


def _root_run() -> None:
    """Root's own jail, as today: the worker runs as a sandbox uid."""
    if probe("bwrap", sys.executable, ROOT_UIDS[0]) is not None:
        return
    settings = AgentSettings(model="scripted/test", answer_hint="x", protocol="json",
                             candidate="root", max_tokens=16, threads=1)
    with SandboxRunner(mode="bwrap", uids=ROOT_UIDS) as r:
        [o] = r.run(CODE_UID, [Task(id="t", question="q", answer="a")], settings)
    assert o.error is None and int(o.answer) in ROOT_UIDS, o


def _as_nobody(tmp: Path, writable: Path) -> dict:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv not installed")
    drop = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "TMPDIR": str(tmp),
           "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
    reach = subprocess.run([*drop, sys.executable, "-c", "import metasearch"], env=env,
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    if reach.returncode != 0:
        pytest.skip("nobody cannot run this interpreter or read the checkout (.ci/run opens "
                    f"their parent directories with chmod o+x): {reach.stderr[-300:]}")
    proc = subprocess.run([*drop, sys.executable, str(ROOT / "tests" / "_rootless_checks.py"),
                           str(writable)], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def measured() -> dict:
    if not IS_ROOT:  # .ci/sandbox-as-user gives a directory of this user's outside its home
        data = checks.measure(USER_DIR)
        data["writable_left"] = sorted(os.listdir(USER_DIR)) if USER_DIR else []
        return data
    tmp = Path(tempfile.mkdtemp(prefix="metasearch-test-tmp-"))  # nobody's TMPDIR
    os.chmod(tmp, 0o1777)
    squat = tmp / f"metasearch-{NOBODY}"  # nobody's /tmp fallback, taken by root first
    squat.mkdir(mode=0o700)
    old = Path(tempfile.gettempdir()) / "metasearch-sandbox-uids"  # the old fixed lock dir
    made_old = not old.exists()
    if made_old:
        old.mkdir(mode=0o700)
        os.chown(old, NOBODY, NOBODY)
    writable = Path(tempfile.mkdtemp(prefix="metasearch-rootless-", dir="/var/lib"))
    os.chown(writable, NOBODY, NOBODY)
    try:
        _root_run()
        data = _as_nobody(tmp, writable)
        _root_run()  # and root still works after the ordinary user
        data["writable_left"] = sorted(p.name for p in writable.iterdir())
    finally:
        shutil.rmtree(writable, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        if made_old:
            shutil.rmtree(old, ignore_errors=True)
    data["squat"] = str(squat)
    return data


def _modes(data: dict) -> dict:
    ok = {m: d for m, d in data["modes"].items() if "probe" not in d}
    if not ok:
        pytest.skip(f"no rootless jail starts here: {data['modes']}")
    return ok


def test_the_ordinary_users_state_is_its_own(measured) -> None:
    assert measured["uid"] != 0
    for key in ("state_dir", "scratch_base"):
        assert not measured[key].endswith("metasearch-sandbox-uids"), measured
    if IS_ROOT:  # nobody has no home: its own tmp directory, squatted, so a fresh one
        assert measured["scratch_base"] != measured["squat"]
        assert Path(measured["scratch_base"]).name.startswith(f"metasearch-{NOBODY}-")
    for mode, d in _modes(measured).items():
        assert d["rootless"] and d["scratch_root"].startswith(measured["scratch_base"]), mode


def test_each_worker_has_its_own_process_count(measured) -> None:
    for mode, d in _modes(measured).items():
        counts = [int(c) for c in d["counts"]]
        # both forked nearly the whole limit at the same time: not one shared per-uid count
        assert all(checks.NPROC - 8 <= c < checks.NPROC for c in counts), (mode, d)
        assert sum(counts) > checks.NPROC and d["host_procs_peak"] > checks.NPROC, (mode, d)


def test_a_worker_sees_and_signals_nothing_of_another(measured) -> None:
    for mode, d in _modes(measured).items():
        peer = d["peer"]
        assert peer["file_found_by_host"] and peer["holder"] == "held" and peer["holder_pids"]
        assert peer["file"] == "FileNotFoundError", (mode, peer)
        assert set(peer["kill"].values()) == {"ProcessLookupError"}, (mode, peer)
        assert len(peer["procs"]) <= 3 and not set(peer["procs"]) & set(peer["holder_pids"])


def test_no_process_outlives_its_run(measured) -> None:
    for mode, d in _modes(measured).items():
        assert isinstance(d["status"], dict) and d["leftover"] == [], (mode, d)


def test_no_privilege_inside_and_the_seccomp_filter_holds(measured) -> None:
    expected = (checks.HOSTILE / "seccomp_namespaces.py").read_text().split(
        "# sandbox: contains=")[1].splitlines()[0]
    for mode, d in _modes(measured).items():
        st = d["status"]
        assert st["uid"] == measured["uid"] and st["nnp"] == "1", (mode, st)
        assert int(st["cap"], 16) == 0, (mode, st)
        if seccomp_available()[0]:
            assert expected in d["seccomp"], (mode, d["seccomp"])


@pytest.mark.skipif(not IS_ROOT and not USER_DIR, reason="needs a directory of the user's own "
                    "outside its home (METASEARCH_TEST_USER_DIR)")
def test_rootless_jails_cannot_write_the_users_own_files(measured) -> None:
    modes = _modes(measured)
    if "unshare" in modes:  # the file system is visible there, so it is remounted read-only
        assert modes["unshare"]["status"]["write"] == "EROFS", modes["unshare"]
    if "bwrap" in modes:  # not in bwrap's new root at all
        assert modes["bwrap"]["status"]["write"] == "ENOENT", modes["bwrap"]
    assert measured["writable_left"] == []
