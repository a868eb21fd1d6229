"""Command lines that start a worker under each isolation mode, and probing for them.

Modes, strongest first:

``bwrap``
    bubblewrap builds a fresh root holding only ``/usr`` (and its ``/lib*``
    and ``/bin`` links), the interpreter (``sys.base_prefix``), the venv
    (``sys.prefix``) and the ``metasearch`` package, all read-only; a private
    ``/tmp``, ``/proc`` and ``/dev``; the candidate's scratch directory
    read-write at ``/scratch``. New net (loopback only), pid, ipc and uts
    namespaces; dies with its parent. Inside, ``setpriv`` drops to an
    unprivileged uid with no capabilities and ``no_new_privs``. With
    ``seccomp_fd``, bwrap loads the syscall filter of ``seccomp`` from it
    before it starts the worker.
``unshare``
    ``unshare`` gives new net, pid, ipc, uts and mount namespaces. In the mount
    namespace a shell (as root, before the drop) puts empty tmpfs over the home
    directories, ``/tmp``, ``/var/tmp``, ``/run``, ``/dev/shm`` and the scratch
    root, then binds back read-only only the interpreter, venv and package,
    and the scratch directory read-write. The rest of the file system stays
    visible, protected only by the unprivileged uid's permissions. The worker
    installs the syscall filter on itself (``"seccomp": true`` in its limits)
    before it reads any agent code.
``none``
    No isolation: only rlimits, same uid as the host (often root), full
    network. For trusted code or machines without namespaces.

Rootless (``JailSpec.rootless``, the default for every user but root): the
uid switch needs root, so each worker gets its own *user namespace* instead,
and keeps the user's uid. What the separate uids gave, the namespaces give:

* apart from other workers: their own mount, pid, ipc, net and uts namespaces;
  only their own scratch is bound, no other worker's process is visible, so
  none can be signalled or traced;
* their own process count: ``RLIMIT_NPROC`` is counted per user namespace and
  uid (Linux 5.14+ ucounts), so each worker's limit holds for it alone;
* no capabilities and ``no_new_privs``; bwrap's ``--disable-userns`` (0.8+)
  and the seccomp filter stop any further namespace.

bwrap runs with ``--unshare-user`` and needs no ``setpriv``. ``unshare`` runs
the same mount script as root inside ``--map-root-user``, then also remounts
every other mount read-only (the user's own files would otherwise be
writable: there is no foreign uid to stop it), and drops to the user's uid in
a nested user namespace (``unshare --map-user``) with no capabilities.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from metasearch.execution.sandbox.state import scratch_base

MODES = ("bwrap", "unshare", "none")
SCRATCH_IN_JAIL = "/scratch"
_ROOT_LINKS = ("bin", "sbin", "lib", "lib64", "lib32", "libx32")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime")
_SETPRIV_DROP = ("--clear-groups", "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all")


def package_root() -> Path:
    """The directory that holds the ``metasearch`` package (goes on the worker's sys.path)."""
    return Path(__file__).resolve().parents[3]


def bootstrap_source(root: Path) -> str:
    """The ``-c`` program of the worker.

    It puts the package on ``sys.path`` and pre-registers every package of
    ``metasearch`` as an empty namespace, so importing the runtime does not run
    the package ``__init__`` files (which pull in numpy, pydantic, ...): the
    worker starts in tens of milliseconds and loads only what the runtime needs.
    """
    return (
        "import os,sys,types\n"
        f"r={str(root)!r}\n"
        "sys.path.insert(0,r)\n"
        "for d,ds,fs in os.walk(os.path.join(r,'metasearch')):\n"
        " ds[:]=[x for x in ds if x!='__pycache__']\n"
        " if '__init__.py' in fs:\n"
        "  n=os.path.relpath(d,r).replace(os.sep,'.');m=types.ModuleType(n)\n"
        "  m.__path__=[d];sys.modules[n]=m\n"
        "from metasearch.execution.sandbox.worker import main\n"
        "main(sys.argv[1:])\n"
    )


@dataclass(frozen=True)
class JailSpec:
    """Everything needed to build one worker's command line."""

    mode: str
    python: str
    scratch: Path
    scratch_root: Path
    uid: int
    fd: int
    limits_json: str
    program: tuple[str, ...] | None = None  # replaces the worker's ``-c`` program and args
    seccomp_fd: int | None = None  # bwrap only: an fd holding ``seccomp.program()``
    rootless: bool = field(default_factory=lambda: os.geteuid() != 0)  # user namespaces, no uid

    @property
    def readonly_paths(self) -> list[Path]:
        paths = [Path(sys.base_prefix), Path(sys.prefix), package_root() / "metasearch"]
        exe = Path(self.python)
        paths += [exe.parent, exe.resolve().parent]
        return _outermost(p.resolve() for p in paths)

    def python_argv(self) -> list[str]:
        program = self.program or (bootstrap_source(package_root()), str(self.fd),
                                   self.limits_json)
        return [self.python, "-I", "-S", "-B", "-c", *program]

    def env(self) -> dict[str, str]:
        home = SCRATCH_IN_JAIL if self.mode == "bwrap" else str(self.scratch)
        return {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
                "LC_ALL": "C.UTF-8"}

    def setpriv_argv(self) -> list[str]:
        """The drop to the worker's uid: root's uid switch, or a rootless nested namespace."""
        if not self.rootless:
            return [_which("setpriv"), f"--reuid={self.uid}", f"--regid={self.uid}",
                    *_SETPRIV_DROP, "--"]
        if self.mode == "bwrap":
            return []  # bwrap's user namespace: the user's uid, no capabilities, no_new_privs
        return [_which("unshare"), f"--map-user={os.getuid()}", f"--map-group={os.getgid()}",
                "--", _which("setpriv"), "--no-new-privs", "--bounding-set=-all",
                "--inh-caps=-all", "--"]

    def argv(self) -> list[str]:
        if self.mode == "bwrap":
            return [*self._bwrap_argv(), *self.setpriv_argv(), *self.python_argv()]
        if self.mode == "unshare":
            return self._unshare_argv()
        return self.python_argv()

    def cwd(self) -> str:
        return str(self.scratch) if self.mode == "none" else "/"

    def _bwrap_argv(self) -> list[str]:
        bwrap = _which("bwrap")
        a = [bwrap, "--unshare-net", "--unshare-pid", "--unshare-ipc",
             "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent", "--new-session",
             "--hostname", "sandbox", "--ro-bind", "/usr", "/usr"]
        if self.rootless:
            a[1:1] = ["--unshare-user"] + (["--disable-userns"] if _bwrap_has(
                bwrap, "--disable-userns") else [])
        for name in _ROOT_LINKS:
            p = Path("/") / name
            if p.is_symlink():
                a += ["--symlink", os.readlink(p), str(p)]
            elif p.is_dir():
                a += ["--ro-bind", str(p), str(p)]
        a += ["--perms", "0755", "--dir", "/etc"]
        for f in _ETC_FILES:
            a += ["--ro-bind-try", f, f]
        # /tmp first: the interpreter, venv or package may live under /tmp (a CI
        # checkout), and binds made before the tmpfs would be hidden by it.
        a += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        made: set[Path] = {Path("/"), Path("/usr"), Path("/etc"), Path("/tmp")}
        for p in self.readonly_paths:
            if _under(p, Path("/usr")):
                continue
            for parent in reversed(p.parents):
                if parent not in made:
                    made.add(parent)
                    a += ["--perms", "0755", "--dir", str(parent)]
            a += ["--ro-bind", str(p), str(p)]
        a += ["--bind", str(self.scratch), SCRATCH_IN_JAIL, "--chdir", SCRATCH_IN_JAIL]
        if self.seccomp_fd is not None:
            a += ["--seccomp", str(self.seccomp_fd)]
        a.append("--")
        return a

    def _unshare_argv(self) -> list[str]:
        hidden = _outermost(Path(p) for p in
                            {str(Path.home()), "/root", "/home", "/tmp", "/var/tmp", "/run",
                             "/dev/shm", str(self.scratch_root)} if os.path.isdir(p))
        needed = [(p, True) for p in self.readonly_paths] + [(self.scratch, False)]
        staged = [(i, p, ro) for i, (p, ro) in enumerate(needed)
                  if any(_under(p, h) for h in hidden)]
        stage = _stage_dir(hidden, [p for p, _ in needed])
        q = shlex.quote
        lines = ["set -e", f"mount -t tmpfs -o mode=0700 tmpfs {stage}"]
        for i, p, _ in staged:
            lines += [f"mkdir {stage}/{i}", f"mount --bind {q(str(p))} {stage}/{i}"]
        for h in hidden:
            lines.append(f"mount -t tmpfs -o mode={'1777' if h == Path('/tmp') else '0755'} "
                         f"tmpfs {q(str(h))}")
        for i, p, ro in staged:
            lines += [f"mkdir -p {q(str(p))}", f"mount --bind {stage}/{i} {q(str(p))}"]
            if ro:
                lines.append(f"mount -o remount,bind,ro {q(str(p))}")
        lines += [f"umount -l {stage}", "mount -t proc proc /proc"]
        if self.rootless:
            lines += _readonly_lines(self.scratch, Path("/tmp") in hidden)
        lines += [f"cd {q(str(self.scratch))}",
                  '"$@"', "exit $?"]  # sh stays pid 1, so the worker gets kernel signals
        user = ["--user", "--map-root-user"] if self.rootless else []
        return [_which("unshare"), *user, "--net", "--pid", "--ipc", "--uts", "--mount",
                "--propagation", "private", "--fork", "--kill-child", "--",
                "/bin/sh", "-c", "\n".join(lines), "jail",
                *self.setpriv_argv(), *self.python_argv()]


def _readonly_lines(scratch: Path, private_tmp: bool) -> list[str]:
    """Shell lines that remount every mount read-only but the scratch, ``/proc`` and ``/tmp``.

    Rootless only: the worker keeps the user's uid, so without this it could
    write to the user's own files anywhere they are not hidden. A mount that
    cannot be made read-only stops the jail (exit 97).
    """
    keep = [shlex.quote(str(scratch)), "/proc", "/proc/*"] + (["/tmp"] if private_tmp else [])
    return [
        "awk '{print $5}' /proc/self/mountinfo | sort -u | while IFS= read -r t; do",
        ' t=$(printf "%b" "$t")',
        f' case "$t" in {"|".join(keep)}) continue;; esac',
        ' [ -e "$t" ] || continue',
        # a mount's locked flags (nosuid, nodev, noexec: set by the host) must be kept
        ' mount -o remount,bind,ro "$t" 2>/dev/null'
        ' || mount -o remount,bind,ro,nosuid,nodev "$t" 2>/dev/null'
        ' || mount -o remount,bind,ro,nosuid,nodev,noexec "$t"'
        ' || { echo "cannot make $t read-only" >&2; exit 97; }',
        "done",
    ]


def _stage_dir(hidden: list[Path], needed: list[Path]) -> str:
    """An existing directory to stage bind mounts on while the hidden roots are covered."""
    for c in ("/mnt", "/media", "/srv", "/opt", "/boot", "/var/lib", "/var", "/etc"):
        p = Path(c)
        if (p.is_dir() and not p.is_symlink() and not any(_under(p, h) for h in hidden)
                and not any(_under(n, p) for n in needed)):
            return c
    raise FileNotFoundError("a directory to stage mounts on (e.g. /mnt)")


@functools.lru_cache(maxsize=8)
def _bwrap_has(bwrap: str, option: str) -> bool:
    """Whether this bubblewrap knows ``option`` (``--disable-userns`` is 0.8+)."""
    try:
        out = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return False
    return option in out.stdout + out.stderr


def _which(tool: str) -> str:
    path = shutil.which(tool, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if path is None:
        raise FileNotFoundError(tool)
    return path


def _under(p: Path, root: Path) -> bool:
    return p == root or root in p.parents


def _outermost(paths: object) -> list[Path]:
    out: list[Path] = []
    for p in sorted(set(paths)):  # type: ignore[call-overload]
        if not any(_under(p, q) for q in out):
            out.append(p)
    return out


_PROBE = (
    "import os,socket,sys\n"
    "names=[n for _,n in socket.if_nameindex()]\n"
    "ok=(os.getuid()!=0 or sys.argv[1]=='none') and (names==['lo'] or sys.argv[1]=='none')\n"
    "import metasearch.runtime.loader\n"
    "print('PROBE-OK' if ok else 'PROBE-BAD uid=%d ifs=%s'%(os.getuid(),names))\n"
)


@functools.lru_cache(maxsize=16)
def probe(mode: str, python: str, uid: int) -> str | None:
    """Start a throwaway jail of ``mode``; None if it works, else why not.

    It checks that the unprivileged uid (root's jail) or the user's own
    namespaced uid (rootless) can start the interpreter and import the runtime,
    and that the only network interface is loopback.
    """
    try:
        scratch_root = tempfile.mkdtemp(prefix="probe-", dir=scratch_base())
    except OSError as e:
        return f"no scratch directory for the probe ({type(e).__name__}: {e})"
    scratch = Path(scratch_root) / "scratch"
    try:
        scratch.mkdir()
        if mode != "none" and os.geteuid() == 0:  # root's jail drops to ``uid``
            os.chown(scratch, uid, uid)
        program = bootstrap_source(package_root()).rsplit("from metasearch", 1)[0] + _PROBE
        spec = JailSpec(mode=mode, python=python, scratch=scratch,
                        scratch_root=Path(scratch_root), uid=uid, fd=0, limits_json="{}",
                        program=(program, mode))
        argv = spec.argv()
        proc = subprocess.run(argv, env=spec.env(), cwd=spec.cwd(), capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL)
    except FileNotFoundError as e:
        return f"{e.filename or e} is not installed"
    except (OSError, subprocess.SubprocessError) as e:
        return f"{type(e).__name__}: {e}"
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)
    if "PROBE-OK" in proc.stdout:
        return None
    detail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    return f"exit status {proc.returncode}: {' | '.join(detail) or 'no output'}"
