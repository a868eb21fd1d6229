"""``doctor`` and ``eval`` for an ordinary user: the rootless jails, their fix, no false notice."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from metasearch.campaign import doctor
from metasearch.execution.sandbox.launch import probe

ROOT = Path(__file__).resolve().parent.parent
COT = ROOT / "archive" / "chain_of_thought.py"
NOBODY = 65534


def _as_ordinary_user(monkeypatch, probe_result) -> dict[str, doctor.Check]:
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(doctor, "probe_mode", probe_result)
    return {c.name: c for c in doctor.diagnose(out=Path(tempfile.gettempdir())).checks}


def test_doctor_says_the_jails_are_rootless_for_an_ordinary_user(monkeypatch) -> None:
    checks = _as_ordinary_user(monkeypatch, lambda mode: None)
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap not installed")
    assert checks["bwrap"].ok and "own user namespace" in checks["bwrap"].detail
    assert "read-only" in checks["unshare"].detail and "rootless" in checks["unshare"].detail
    assert "without root (user namespaces)" in checks["sandbox mode"].detail


def test_without_user_namespaces_the_fix_is_the_sysctl(monkeypatch) -> None:
    real_read = doctor._read
    files = {"/proc/sys/user/max_user_namespaces": "0\n"}
    monkeypatch.setattr(doctor, "_read", lambda p: files.get(str(p), real_read(p)))
    checks = _as_ordinary_user(
        monkeypatch, lambda mode: f"{mode}: exit status 1: setting up uid map: Permission denied")
    fix = "sudo sysctl -w user.max_user_namespaces=15000"
    assert not checks["user namespaces"].ok and checks["user namespaces"].fix == fix
    for name in ("bwrap", "unshare"):
        if shutil.which(name) is not None:
            assert not checks[name].ok and checks[name].fix == fix, checks[name]


def _user_argv() -> tuple[list[str], dict[str, str]]:
    """Run as this user if ordinary, else as ``nobody`` (skipped if it cannot run Python here)."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
           "COLUMNS": "200", "OPENAI_API_KEY": "sk-fake", "HOME": os.environ.get("HOME", "/")}
    if os.geteuid() != 0:
        return [], env
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv not installed")
    drop = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    env["HOME"] = "/nonexistent"
    reach = subprocess.run([*drop, sys.executable, "-c", "import metasearch"], env=env,
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    if reach.returncode != 0:
        pytest.skip(f"nobody cannot run this interpreter here: {reach.stderr[-300:]}")
    return drop, env


def test_eval_as_an_ordinary_user_uses_rootless_bwrap_without_a_fallback_notice() -> None:
    from metasearch.testing.fake_openai import FakeOpenAIServer

    drop, env = _user_argv()
    cache = Path(tempfile.mkdtemp(prefix="metasearch-eval-rootless-"))
    os.chmod(cache, 0o777)
    try:
        with FakeOpenAIServer() as server:
            proc = subprocess.run(
                [*drop, sys.executable, "-m", "metasearch.cli.app", "eval", str(COT),
                 "--suite", "arith", "--limit", "1", "--model", "openai/task",
                 "--api-base", server.url, "--cache-dir", str(cache / "c"), "--json"],
                cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if probe("bwrap", sys.executable, os.getuid()) is not None and not drop:
        pytest.skip("bwrap does not work for this user here")
    if drop and "Can't find source path" in proc.stderr and "Permission denied" in proc.stderr:
        # nobody could start the interpreter outside a jail, yet not bind its directory inside
        # one (seen here: it lives under root's 0700 home); .ci/sandbox-as-user opens the path
        pytest.skip(f"the interpreter is out of nobody's reach in a jail: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["sandbox"] == "bwrap"
    err = " ".join(proc.stderr.split())
    assert "bubblewrap does not work" not in err and "'unshare' sandbox" not in err, err
    assert "SandboxWarning" not in err and "Traceback" not in err, err
