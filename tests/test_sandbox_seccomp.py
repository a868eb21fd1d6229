"""The sandbox's seccomp filter: the program itself, installing it, and running without it.

What each refused syscall looks like to an agent inside the jails is in the hostile corpus
(``tests/hostile/seccomp_*.py``, ``python_seccomp.py``); here: the BPF words, the syscall
numbers against this machine's headers, a real install in a throwaway interpreter, how
bwrap gets it, and that a machine without seccomp still sandboxes (with a notice).
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from metasearch.execution.sandbox import SandboxError, SandboxRunner, SandboxWarning, seccomp
from metasearch.execution.sandbox import pool as pool_mod
from metasearch.execution.sandbox.launch import JailSpec, probe
from metasearch.llm import scripted_gateway
from metasearch.runtime.settings import AgentSettings
from metasearch.suites.task import Task

UIDS = range(61040, 61048)
AVAILABLE, WHY = seccomp.seccomp_available()
needs_seccomp = pytest.mark.skipif(not AVAILABLE, reason=f"seccomp unavailable: {WHY}")
HEADERS = {"x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
           "aarch64": Path("/usr/include/asm-generic/unistd.h")}


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_program_is_well_formed(arch: str) -> None:
    data = seccomp.build_program(arch)
    assert len(data) % 8 == 0 and 0 < len(data) // 8 <= 4096
    words = [struct.unpack("=HBBI", data[i:i + 8]) for i in range(0, len(data), 8)]
    assert words[0] == (0x20, 0, 0, 4)  # load the arch first
    assert words[-1] == (0x06, 0, 0, 0x7FFF0000)  # allow what nothing refused
    for i, (code, jt, jf, _) in enumerate(words):
        if code & 0x07 == 0x05:  # a jump stays inside the program
            assert i + 1 + max(jt, jf) < len(words)
    refused = {k for c, _, _, k in words if c == 0x15}
    assert set(seccomp.syscall_numbers(arch).values()) <= refused


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_syscall_numbers_match_the_kernel_headers(arch: str) -> None:
    header = HEADERS[arch]
    if not header.exists():
        pytest.skip(f"{header} not installed")
    text = header.read_text()
    for name, nr in seccomp.syscall_numbers(arch).items():
        m = re.search(rf"#define __NR(?:3264)?_{name}\s+(\d+)", text)
        assert m and int(m.group(1)) == nr, name


def test_required_denials_are_in_the_list() -> None:
    required = {"ptrace", "mount", "umount2", "pivot_root", "unshare", "setns", "keyctl",
                "bpf", "perf_event_open", "userfaultfd", "kexec_load", "init_module",
                "finit_module", "reboot", "swapon", "swapoff"}
    assert required <= set(seccomp.DENIED)


_INSTALLED = r"""
import ctypes, errno, os, socket, subprocess, sys, threading
sys.path.insert(0, sys.argv[1])
from metasearch.execution.sandbox.seccomp import install
install()
out = []
for fam in (socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK):
    try:
        socket.socket(fam, socket.SOCK_DGRAM)
        out.append("LEAK")
    except PermissionError:
        out.append("EPERM")
socket.socket(socket.AF_UNIX).close()
a, b = socket.socketpair()
a.sendall(b"x"); out.append(b.recv(1).decode())
t = threading.Thread(target=lambda: out.append("thread")); t.start(); t.join()
child = subprocess.run([sys.executable, "-c", "import socket\ntry: socket.socket()\n"
                        "except PermissionError: print('child-EPERM')"],
                       capture_output=True, text=True)
out.append(child.stdout.strip())
pid = os.fork()
if pid == 0:
    os._exit(5)
out.append("fork=%d" % os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
print(" ".join(out))
"""


@needs_seccomp
def test_install_refuses_what_it_should_and_keeps_the_rest() -> None:
    """Threads, subprocesses (clone3 falls back to clone), fork and AF_UNIX still work."""
    root = str(Path(seccomp.__file__).resolve().parents[3])
    proc = subprocess.run([sys.executable, "-I", "-c", _INSTALLED, root], capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout.split() == ["EPERM", "EPERM", "EPERM", "x", "thread", "child-EPERM",
                                   "fork=5"], proc.stderr


def test_bwrap_gets_the_filter_before_the_command(tmp_path: Path) -> None:
    spec = JailSpec(mode="bwrap", python=sys.executable, scratch=tmp_path / "s",
                    scratch_root=tmp_path, uid=61040, fd=3, limits_json="{}", seccomp_fd=7)
    try:
        argv = spec.argv()
    except FileNotFoundError:
        pytest.skip("bubblewrap not installed")
    at = argv.index("--seccomp")
    assert argv[at + 1] == "7" and at < argv.index("--")
    plain = JailSpec(mode="bwrap", python=sys.executable, scratch=tmp_path / "s",
                     scratch_root=tmp_path, uid=61040, fd=3, limits_json="{}")
    assert "--seccomp" not in plain.argv()


def test_filter_fd_holds_the_program() -> None:
    fd = seccomp.filter_fd()
    try:
        assert os.read(fd, 1 << 16) == seccomp.program()
    finally:
        os.close(fd)


def test_unknown_architecture_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seccomp.platform, "machine", lambda: "riscv64")
    seccomp.seccomp_available.cache_clear()
    try:
        ok, why = seccomp.seccomp_available()
    finally:
        seccomp.seccomp_available.cache_clear()
    assert not ok and "riscv64" in why


_STATUS = '''
def forward(self, taskInfo):
    import socket
    with open("/proc/self/status") as f:
        mode = f.read().split("Seccomp:")[1].split()[0]
    try:
        socket.socket().close()
        inet = "ok"
    except OSError as e:
        inet = type(e).__name__
    return f"seccomp={mode} inet={inet}"
'''
SETTINGS = AgentSettings(model="scripted/test", answer_hint="x", protocol="json",
                         candidate="c", max_tokens=64, threads=1)
TASKS = [Task(id="t", question="q", answer="a")]


def _run(mode: str) -> tuple[SandboxRunner, str | None]:
    gw = scripted_gateway(['{"answer": "1"}'])
    try:
        with SandboxRunner(mode=mode, gateway=gw, uids=UIDS) as runner:
            [outcome] = runner.run(_STATUS, TASKS, SETTINGS)
    finally:
        gw.close()
    return runner, outcome.answer


@pytest.mark.parametrize("mode", ["bwrap", "unshare"])
@needs_seccomp
def test_each_jail_runs_its_worker_filtered(mode: str) -> None:
    if (why := probe(mode, sys.executable, UIDS[0])) is not None:
        pytest.skip(f"{mode} sandbox unavailable: {why}")
    runner, answer = _run(mode)
    assert runner.seccomp
    assert answer == "seccomp=2 inet=PermissionError"


@pytest.mark.parametrize("mode", ["bwrap", "unshare"])
def test_without_seccomp_the_sandbox_works_and_says_so(mode: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    if (why := probe(mode, sys.executable, UIDS[0])) is not None:
        pytest.skip(f"{mode} sandbox unavailable: {why}")
    monkeypatch.setattr(pool_mod, "seccomp_available",
                        lambda: (False, "the kernel refuses metasearch's seccomp filter (test)"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner, answer = _run(mode)
    notes = [str(w.message) for w in caught if issubclass(w.category, SandboxWarning)]
    assert any("seccomp is not available here" in n and "(test)" in n for n in notes), notes
    assert not runner.seccomp
    assert answer == "seccomp=0 inet=ok"  # the jail's own loopback: no filter, still jailed


@needs_seccomp
def test_a_bwrap_jail_that_cannot_load_the_filter_does_not_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    if (why := probe("bwrap", sys.executable, UIDS[0])) is not None:
        pytest.skip(f"bwrap sandbox unavailable: {why}")

    def broken() -> int:
        r, w = os.pipe()
        os.write(w, b"\x00" * 5)  # not a whole number of BPF instructions
        os.close(w)
        return r

    monkeypatch.setattr(pool_mod, "filter_fd", broken)
    gw = scripted_gateway(['{"answer": "1"}'])
    try:
        with SandboxRunner(mode="bwrap", gateway=gw, uids=UIDS) as runner, \
                pytest.raises(SandboxError, match="did not start"):
            runner.run(_STATUS, TASKS, SETTINGS)
    finally:
        gw.close()
