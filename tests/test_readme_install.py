"""The README's first command installs bubblewrap where it can, and never stops where it cannot.

Its bubblewrap part (everything before ``&& python3.11``) runs here under bash
and under dash, with a PATH of stubs: an ``apt-get`` that logs what it was
asked and "installs" a ``bwrap`` stub, a ``sudo`` that logs and runs the
rest, and an ``id`` that says root or not. Each case checks what was run,
what was printed, and that the part succeeds, so the rest of the command
(the venv, the install, the campaign) always runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SHELLS = [s for s in ("/bin/bash", "/bin/dash") if os.path.exists(s)]


def first_command() -> str:
    text = README.read_text(encoding="utf-8")
    block = text.split("```bash\n", 1)[1].split("\n```", 1)[0]
    assert "\n" not in block.strip(), "the first block is one command"
    return block.strip()


def bwrap_part() -> str:
    part, rest = first_command().split(" && python3.11 -m venv", 1)
    assert rest.endswith("metasearch run experiments/quickstart.toml")
    return part


def stubs(d: Path, *, uid: int, apt: str | None, sudo: bool, bwrap: bool) -> dict[str, str]:
    """A bin directory of stubs; ``apt`` is None (no apt), "ok" or "fails"."""
    d.mkdir()
    log = d / "log"
    for tool in ("sh", "touch", "chmod"):  # what the stubs themselves use
        os.symlink(shutil.which(tool), d / tool)
    (d / "id").write_text(f"#!/bin/sh\n[ \"$1\" = -u ] && echo {uid}\n")
    if apt is not None:
        install = f"touch {d}/bwrap; chmod +x {d}/bwrap" if apt == "ok" else "exit 100"
        (d / "apt-get").write_text(
            f'#!/bin/sh\necho "apt-get $* as $(id -u)" >> {log}\n'
            f'case "$1" in install) {install};; esac\n')
    if sudo:
        (d / "sudo").write_text(f'#!/bin/sh\necho "sudo $*" >> {log}\nexec "$@"\n')
    if bwrap:
        (d / "bwrap").write_text("#!/bin/sh\n")
    for f in d.iterdir():
        if not f.is_symlink():
            f.chmod(0o755)
    return {"PATH": str(d), "HOME": str(d)}


def run(shell: str, env: dict[str, str]) -> tuple[int, str, list[str]]:
    done = subprocess.run([shell, "-c", bwrap_part()], env=env, capture_output=True, text=True,
                          timeout=30)
    log = Path(env["PATH"]) / "log"
    return done.returncode, done.stdout + done.stderr, (
        log.read_text().splitlines() if log.exists() else [])


NOTE = "bubblewrap is not installed and could not be"


@pytest.mark.parametrize("shell", SHELLS)
def test_with_bubblewrap_there_it_does_nothing(shell, tmp_path):
    code, out, log = run(shell, stubs(tmp_path / "bin", uid=1000, apt="ok", sudo=True,
                                      bwrap=True))
    assert (code, out, log) == (0, "", [])


@pytest.mark.parametrize("shell", SHELLS)
def test_root_installs_it_with_apt(shell, tmp_path):
    env = stubs(tmp_path / "bin", uid=0, apt="ok", sudo=False, bwrap=False)
    code, out, log = run(shell, env)
    assert code == 0 and NOTE not in out, out
    assert log == ["apt-get update -qq as 0", "apt-get install -y -qq bubblewrap as 0"]
    assert shutil.which("bwrap", path=env["PATH"])


@pytest.mark.parametrize("shell", SHELLS)
def test_a_sudo_user_installs_it_through_sudo(shell, tmp_path):
    code, out, log = run(shell, stubs(tmp_path / "bin", uid=1000, apt="ok", sudo=True,
                                      bwrap=False))
    assert code == 0 and NOTE not in out, out
    assert log[0].startswith("sudo sh -c apt-get update -qq && apt-get install"), log
    assert log[1:] == ["apt-get update -qq as 1000", "apt-get install -y -qq bubblewrap as 1000"]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("case", ["no apt", "apt fails", "no sudo"])
def test_where_it_cannot_install_it_says_what_to_run_and_goes_on(shell, case, tmp_path):
    env = stubs(tmp_path / "bin", uid=0 if case != "no sudo" else 1000,
                apt=None if case == "no apt" else ("fails" if case == "apt fails" else "ok"),
                sudo=False, bwrap=False)
    code, out, log = run(shell, env)
    assert code == 0, out  # the venv, the install and the campaign still run
    assert NOTE in out and "sudo apt-get install bubblewrap" in out, out
    assert "metasearch doctor" in out
    assert not shutil.which("bwrap", path=env["PATH"])
    if case == "no apt":
        assert log == [] and "not found" not in out, out
