"""The sandbox's syscall filter: a classic-BPF seccomp program this module assembles itself.

No libseccomp: the program is a few dozen ``struct sock_filter`` words, built
from the syscall numbers below for x86_64 and aarch64 (other architectures get
no filter, and :func:`seccomp_available` says so). Every refusal returns an
errno, never kills, so a refused call is a plain ``OSError`` in the agent:

* ``EPERM`` for the syscalls in :data:`DENIED` (namespaces and mounts, ptrace
  and its relatives, kernel keyrings, bpf, perf, userfaultfd, io_uring, module
  loading, kexec, reboot, swap, ...);
* ``EPERM`` for ``socket``/``socketpair`` with any address family but
  ``AF_UNIX``, and for ``clone`` with any namespace flag (``unshare`` by
  another name);
* ``ENOSYS`` for ``clone3``, whose flags sit in memory a filter cannot read:
  glibc then falls back to ``clone``, which the filter can check (the same
  answer Flatpak and Docker give);
* ``EPERM`` for every syscall of another ABI (x32 on x86_64, 32-bit
  compatibility calls), which would otherwise bypass the numbers above.

The same bytes serve both jails: ``bwrap --seccomp FD`` reads them from a
memfd (:func:`filter_fd`), and in ``unshare`` mode the worker installs them on
itself (:func:`install`, with ``no_new_privs``) before it reads any agent
code. Filters are inherited over fork and exec, so ``run_python``'s children
are held too. Standard library only: the worker imports this module.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import struct
import subprocess
import sys

# struct seccomp_data: int nr; u32 arch; u64 ip; u64 args[6] (little-endian arches only)
_NR, _ARCH, _ARG0_LO = 0, 4, 16
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
# classic BPF opcodes
_LD_W_ABS = 0x20
_JEQ_K, _JGE_K, _JSET_K = 0x15, 0x35, 0x45
_RET_K = 0x06
_X32_BIT = 0x40000000
_AF_UNIX = 1
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
_CLONE_NS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 \
    | 0x40000000 | 0x00000080

DENIED = ("ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
          "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
          "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
          "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
          "io_uring_setup", "io_uring_enter", "io_uring_register",
          "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
          "reboot", "swapon", "swapoff", "acct", "quotactl", "open_by_handle_at")
"""Syscalls refused with EPERM whatever their arguments."""

_NAMES = (*DENIED, "socket", "socketpair", "clone", "clone3")
# (audit arch, numbers in the order of _NAMES); from asm/unistd_64.h and asm-generic/unistd.h
_TABLES: dict[str, tuple[int, tuple[int, ...]]] = {
    "x86_64": (0xC000003E, (101, 310, 311, 438, 165, 166, 155, 161, 272, 308,
                            428, 429, 430, 431, 432, 433, 442,
                            250, 248, 249, 321, 298, 323, 425, 426, 427,
                            246, 320, 175, 313, 176, 169, 167, 168, 163, 179, 304,
                            41, 53, 56, 435)),
    "aarch64": (0xC00000B7, (117, 270, 271, 438, 40, 39, 41, 51, 97, 268,
                             428, 429, 430, 431, 432, 433, 442,
                             219, 217, 218, 280, 241, 282, 425, 426, 427,
                             104, 294, 105, 273, 106, 142, 224, 225, 89, 60, 265,
                             198, 199, 220, 435)),
}
_MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def syscall_numbers(arch: str) -> dict[str, int]:
    """The numbers this filter uses on ``arch`` (``x86_64`` or ``aarch64``)."""
    return dict(zip(_NAMES, _TABLES[arch][1], strict=True))


def build_program(arch: str) -> bytes:
    """The filter for ``arch`` as raw ``struct sock_filter`` words (what bwrap reads)."""
    audit, _ = _TABLES[arch]
    nr = syscall_numbers(arch)
    eperm, allow = _op(_RET_K, _RET_ERRNO | errno.EPERM), _op(_RET_K, _RET_ALLOW)
    p = [_op(_LD_W_ABS, _ARCH), _op(_JEQ_K, audit, 1, 0), eperm, _op(_LD_W_ABS, _NR)]
    if arch == "x86_64":
        p += [_op(_JGE_K, _X32_BIT, 0, 1), eperm]
    for name in DENIED:
        p += [_op(_JEQ_K, nr[name], 0, 1), eperm]
    p += [_op(_JEQ_K, nr["clone3"], 0, 1), _op(_RET_K, _RET_ERRNO | errno.ENOSYS)]
    for name in ("socket", "socketpair"):  # allowed only for AF_UNIX
        p += [_op(_JEQ_K, nr[name], 0, 4), _op(_LD_W_ABS, _ARG0_LO),
              _op(_JEQ_K, _AF_UNIX, 1, 0), eperm, allow]
    p += [_op(_JEQ_K, nr["clone"], 0, 4), _op(_LD_W_ABS, _ARG0_LO),
          _op(_JSET_K, _CLONE_NS, 0, 1), eperm, allow]
    p.append(allow)
    return b"".join(p)


def host_arch() -> str | None:
    """This machine's architecture as the filter names it, or None if it has no table."""
    if sys.byteorder != "little" or struct.calcsize("P") != 8:
        return None
    return _MACHINES.get(platform.machine().lower())


def program() -> bytes:
    """The filter for this machine; ``OSError`` if it has none."""
    arch = host_arch()
    if arch is None:
        raise OSError(errno.ENOSYS, f"no seccomp filter for {platform.machine()}")
    return build_program(arch)


def filter_fd() -> int:
    """A readable fd holding :func:`program` from its start (for ``bwrap --seccomp``).

    The caller passes it to bwrap and closes it after the start.
    """
    data = program()
    try:
        fd = os.memfd_create("metasearch-seccomp", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        r, w = os.pipe()  # the program is far smaller than a pipe's buffer
        os.write(w, data)
        os.close(w)
        return r
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_TSYNC = 1
_SECCOMP_NR = {"x86_64": 317, "aarch64": 277}


def install() -> None:
    """Install the filter on the calling process: all its threads, and every later child.

    Sets ``no_new_privs`` first, which an unprivileged process needs (the jail
    has set it already). ``SECCOMP_FILTER_FLAG_TSYNC`` puts the filter on every
    thread at once. ``OSError`` if the kernel refuses.
    """
    data, arch = program(), host_arch()
    assert arch is not None
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(data, len(data))
    prog = _Fprog(len(data) // 8, ctypes.cast(buf, ctypes.c_void_p))
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(e)}")
    r = libc.syscall(_SECCOMP_NR[arch], _SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_TSYNC,
                     ctypes.byref(prog))
    if r != 0:
        e = ctypes.get_errno() if r < 0 else errno.EBUSY  # > 0: a thread that could not sync
        raise OSError(e, f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(e)}")


_PROBE = (
    "import socket,sys\n"
    "import importlib.util as u\n"
    "s=u.spec_from_file_location('f',sys.argv[1]);m=u.module_from_spec(s);s.loader.exec_module(m)\n"
    "m.install()\n"
    "socket.socket(socket.AF_UNIX).close()\n"
    "try:\n"
    " socket.socket(socket.AF_INET)\n"
    "except PermissionError:\n"
    " print('SECCOMP-OK')\n"
)


@functools.lru_cache(maxsize=1)
def seccomp_available() -> tuple[bool, str]:
    """Whether the sandbox can filter syscalls here, and why (or why not), in one line.

    A real test, not a guess: a throwaway interpreter installs the filter and
    must then be refused ``socket(AF_INET)`` and allowed ``socket(AF_UNIX)``.
    """
    arch = host_arch()
    if arch is None:
        return False, (f"metasearch has no seccomp filter for this architecture "
                       f"({platform.machine()}; it has x86_64 and aarch64)")
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-S", "-B", "-c", _PROBE, __file__],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        return False, f"the seccomp probe could not run ({type(e).__name__}: {e})"
    if "SECCOMP-OK" in proc.stdout:
        return True, f"the kernel accepts metasearch's seccomp filter ({arch})"
    detail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-2:]) or "no output"
    return False, f"the kernel refuses metasearch's seccomp filter ({detail})"
