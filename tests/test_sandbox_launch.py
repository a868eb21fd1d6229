"""The bwrap command line: what the jail can see, in the order bwrap applies it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from metasearch.execution.sandbox.launch import JailSpec

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


def spec(tmp_path: Path, python: str) -> JailSpec:
    return JailSpec(mode="bwrap", python=python, scratch=tmp_path / "s", scratch_root=tmp_path,
                    uid=61000, fd=3, limits_json="{}")


def test_paths_under_tmp_are_bound_after_the_private_tmp(tmp_path):
    """A checkout or venv under /tmp (as in CI) must not be hidden by the jail's own /tmp."""
    fake_python = tmp_path / "venv" / "bin" / "python3"
    fake_python.parent.mkdir(parents=True)
    fake_python.write_text("")
    argv = spec(tmp_path, str(fake_python)).argv()
    tmpfs = argv.index("/tmp", argv.index("--tmpfs"))
    binds = [argv[i + 1] for i, a in enumerate(argv) if a == "--ro-bind"]
    assert str(fake_python.parent) in binds
    bind_at = argv.index(str(fake_python.parent))
    assert tmpfs < bind_at


def test_no_secrets_in_the_jail_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET")
    env = spec(tmp_path, "/usr/bin/python3").env()
    assert set(env) == {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL"}
    assert "sk-test-SECRET" not in " ".join(env.values())
