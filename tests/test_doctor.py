"""``metasearch doctor``: each layer's check, what is missing, the command that fixes it.

The present cases run for real on this machine; the missing ones monkeypatch
the probe or the file doctor reads. ``run`` and ``eval`` turn the sandbox's
fallback warning into one visible notice.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metasearch.campaign import doctor
from metasearch.cli.app import app
from metasearch.execution.sandbox.cgroups import probe_cgroups
from metasearch.execution.sandbox.types import SandboxWarning

ROOT = Path(__file__).resolve().parent.parent
COT = ROOT / "archive" / "chain_of_thought.py"
NAMES = ["bwrap", "unshare", "sandbox mode", "user namespaces", "seccomp", "cgroups",
         "local/qwen2.5-coder-1.5b", "local/qwen2.5-coder-0.5b", "mlflow", "optuna storage"]


def invoke(*args: str):
    return CliRunner().invoke(app, ["doctor", *args], catch_exceptions=False)


def by_name(diag: doctor.Diagnosis) -> dict[str, doctor.Check]:
    return {c.name: c for c in diag.checks}


def test_a_real_run_checks_every_layer_and_agrees_with_the_sandbox(tmp_path):
    diag = doctor.diagnose(out=tmp_path / "runs")
    checks = by_name(diag)
    assert list(checks) == NAMES
    assert checks["mlflow"].ok and checks["optuna storage"].ok  # tmp_path is writable
    for name in ("bwrap", "unshare"):  # the runner's own probe decides, as in a campaign
        assert checks[name].ok == (doctor.probe_mode(name) is None), checks[name]
    assert diag.best_sandbox == next((m for m in ("bwrap", "unshare") if checks[m].ok), None)
    assert checks["sandbox mode"].ok == (diag.best_sandbox is not None)
    assert all(c.fix for c in diag.checks if not c.ok and c.name != "sandbox mode"), diag
    assert list(tmp_path.iterdir()) == []  # doctor leaves nothing behind


def test_json_is_one_object_with_every_check(tmp_path):
    result = invoke("--json", "--out", str(tmp_path))
    data = json.loads(result.stdout)
    assert [c["name"] for c in data["checks"]] == NAMES
    assert set(data["checks"][0]) == {"layer", "name", "ok", "detail", "fix", "required"}
    assert result.exit_code == (0 if data["ok"] else 1)
    assert data["missing"] == [c["name"] for c in data["checks"] if not c["ok"]]


def test_the_table_names_the_layers_and_the_mode_auto_picks(tmp_path):
    result = invoke("--out", str(tmp_path))
    for word in ("bwrap", "user namespaces", "seccomp", "cgroups", "mlflow", "optuna storage",
                 "sandbox `auto` picks:"):
        assert word in result.stdout, result.stdout


@pytest.fixture
def nothing_works(monkeypatch, tmp_path):
    """No bubblewrap, no jail, user namespaces off, no seccomp filter, no cgroups."""
    real_which, real_read = shutil.which, doctor._read
    monkeypatch.setattr(doctor.shutil, "which",
                        lambda tool: None if tool == "bwrap" else real_which(tool))
    monkeypatch.setattr(doctor, "probe_mode", lambda mode: f"{mode}: it broke")
    files = {"/proc/sys/kernel/unprivileged_userns_clone": "0\n"}
    monkeypatch.setattr(doctor, "_read", lambda p: files.get(str(p), real_read(p)))
    monkeypatch.setattr(doctor, "seccomp_available", lambda: (False, "no table for this arch"))
    monkeypatch.setattr(doctor, "cgroups_available",  # nothing mounted
                        lambda: probe_cgroups(mountinfo="", proc_cgroup=""))


def test_what_is_missing_comes_with_the_command_that_fixes_it(nothing_works, tmp_path):
    checks = by_name(doctor.diagnose(out=tmp_path))
    assert not checks["bwrap"].ok and checks["bwrap"].fix.endswith("apt-get install -y bubblewrap")
    assert not checks["user namespaces"].ok
    assert checks["user namespaces"].fix.endswith("sysctl -w kernel.unprivileged_userns_clone=1")
    assert not checks["seccomp"].ok and "no table for this arch" in checks["seccomp"].detail
    assert "CONFIG_SECCOMP_FILTER" in checks["seccomp"].fix
    assert not checks["cgroups"].ok and "no cgroup v1" in checks["cgroups"].detail
    assert not checks["unshare"].ok and "unshare: it broke" in checks["unshare"].detail
    mode = checks["sandbox mode"]
    assert not mode.ok and mode.required and "No sandbox works" in mode.detail

    result = invoke("--out", str(tmp_path))
    assert result.exit_code == 1  # no jail: run and eval could not work
    text = " ".join(result.stdout.split())
    assert "To fix:" in text and "apt-get install -y bubblewrap" in text, text
    assert "sysctl -w kernel.unprivileged_userns_clone=1" in text
    assert "sandbox `auto` picks: none works" in text
    data = json.loads(invoke("--json", "--out", str(tmp_path)).stdout)
    assert not data["ok"] and data["best_sandbox"] is None
    assert {"bwrap", "sandbox mode", "user namespaces", "seccomp", "cgroups"} <= set(data["missing"])


def test_a_weaker_mode_is_ok_but_said(monkeypatch, tmp_path):
    monkeypatch.setattr(doctor, "probe_mode", lambda m: "bwrap: broken" if m == "bwrap" else None)
    diag = doctor.diagnose(out=tmp_path)
    mode = by_name(diag)["sandbox mode"]
    assert diag.ok and diag.best_sandbox == "unshare" and "weaker than bwrap" in mode.detail


def test_cgroup_v2_without_delegation_says_how_to_get_it(monkeypatch, tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu io\n")  # no memory, no pids here
    mounts = f"30 1 0:26 / {tmp_path} rw,relatime - cgroup2 cgroup2 rw\n"
    monkeypatch.setattr(doctor, "cgroups_available",
                        lambda: probe_cgroups(mountinfo=mounts, proc_cgroup="0::/\n"))
    check = doctor._cgroups()
    assert not check.ok and "cgroup v2" in check.detail and "cpu io" in check.detail
    assert "rlimits" in check.detail
    assert check.fix.startswith("systemd-run ") and "--scope -p Delegate=yes" in check.fix


def test_unwritable_campaign_dir_and_unreachable_rdb(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    checks = by_name(doctor.diagnose(out=blocker / "runs",
                                     storage="sqlite:////nonexistent-dir/x/study.db"))
    assert not checks["mlflow"].ok and checks["mlflow"].required
    assert "pass --out a writable directory" in checks["mlflow"].fix
    assert not checks["optuna storage"].ok
    assert "Cannot open the Optuna storage" in checks["optuna storage"].detail


def test_the_notice_replaces_the_sandbox_warning(capsys):
    from metasearch.cli._output import sandbox_notices

    with sandbox_notices():
        warnings.warn("bubblewrap does not work here (bwrap: x); using the 'unshare' sandbox, "
                      "whose file-system isolation is weaker.", SandboxWarning, stacklevel=1)
        warnings.warn("SANDBOX DISABLED (mode='none'): printed by the runner itself",
                      SandboxWarning, stacklevel=1)
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("notice: bubblewrap does not work here"), err
    assert "`metasearch doctor` says what is missing" in err
    assert "SANDBOX DISABLED" not in err and "SandboxWarning" not in err


def test_eval_says_when_it_must_use_a_weaker_sandbox(tmp_path):
    """A real eval in auto mode, with bwrap's probe made to fail: unshare runs, with a notice."""
    import os
    import subprocess
    import sys

    from metasearch.execution.sandbox import pool
    from metasearch.testing.fake_openai import FakeOpenAIServer

    if pool.probe("unshare", sys.executable, 60000) is not None:
        pytest.skip("the unshare sandbox does not work here (needs root and util-linux)")
    program = (
        "import sys; from metasearch.execution.sandbox import pool; real = pool.probe; "
        "pool.probe = lambda m, py, uid: 'fake failure' if m == 'bwrap' else real(m, py, uid); "
        "from metasearch.cli.app import app; sys.argv[0] = 'metasearch'; app()")
    with FakeOpenAIServer() as server:
        proc = subprocess.run(
            [sys.executable, "-c", program, "eval", str(COT), "--suite", "arith", "--limit", "1",
             "--model", "openai/task", "--api-base", server.url, "--cache-dir", str(tmp_path),
             "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300,
            env=os.environ | {"OPENAI_API_KEY": "sk-fake", "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["sandbox"] == "unshare"
    err = " ".join(proc.stderr.split())
    assert "notice: bubblewrap does not work here (bwrap: fake failure)" in err, err
    assert "SandboxWarning" not in err, err
