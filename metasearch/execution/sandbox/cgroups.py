"""Per-worker cgroups: a candidate's whole process tree held to one memory and one process limit.

rlimits cannot do this: ``RLIMIT_AS`` is per process (a tree of N processes
may use N times it) and ``RLIMIT_NPROC`` counts per uid (and is ignored for
root). A cgroup counts every process and thread of the jail together, bwrap's
own included, and the kernel enforces it: over ``memory_mb`` the OOM killer
acts inside the cgroup only; at ``max_pids`` fork and thread creation fail.

Where they live:

* **cgroup v1** (separate ``memory`` and ``pids`` hierarchies): one directory
  per controller, a child of this process's own cgroup of that controller, so
  any limit an administrator put on us still holds above ours. An ordinary
  user needs that cgroup, or a ``metasearch-USER`` child of it, to be
  writable (delegated by chown).
* **cgroup v2** (unified): one directory, a child of this process's cgroup.
  The parent must have ``memory`` and ``pids`` in its ``cgroup.subtree_control``,
  and a non-root cgroup that holds processes cannot; so, as systemd asks of a
  delegated subtree, this process moves itself (and its own children) into a
  ``metasearch-host`` leaf and enables the controllers on the parent. That is
  done only when the cgroup holds nothing but this process and its
  descendants (a scope of its own: ``systemd-run --scope -p Delegate=yes``).

No race: the jail's first process is a ``/bin/sh`` that writes its own pid
into each ``cgroup.procs`` and then execs bwrap/unshare/python (:meth:`WorkerCgroup.wrap`),
so the cgroup holds the tree before anything in it can fork; if joining fails
the worker never starts. The worker's unprivileged uid cannot write the
root-owned cgroup files, so it cannot leave. A breach is read back from the
kernel's counters (:meth:`WorkerCgroup.breach`): ``oom_kill`` in
``memory.oom_control`` (v1) or ``memory.events`` (v2), ``max`` in ``pids.events``.
:meth:`WorkerCgroup.remove` kills whatever is left and removes the directories.
"""

from __future__ import annotations

import errno
import getpass
import os
import shutil
import signal
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MEMORY_LIMIT", "PROCESS_LIMIT", "Breach", "Hierarchy", "Unavailable", "WorkerCgroup",
           "find_hierarchy", "probe_cgroups", "worker_cgroups"]

MEMORY_LIMIT = "memory limit"
PROCESS_LIMIT = "process limit"
PREFIX = "metasearch-"
HOST_LEAF = "metasearch-host"  # v2: where this process moves so its cgroup may have children
_NEEDED = ("memory", "pids")
# the files of each version: limits written, counters read
_FILES = {
    1: {"memory": "memory.limit_in_bytes", "swap": "memory.memsw.limit_in_bytes",
        "oom": "memory.oom_control", "pids": "pids.max", "pids_events": "pids.events"},
    2: {"memory": "memory.max", "swap": "memory.swap.max", "oom": "memory.events",
        "pids": "pids.max", "pids_events": "pids.events"},
}
# cgexec in one line of sh: join each cgroup.procs named before "--", then exec the rest
_JOIN = ('for f do [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; shift; done; shift; '
         'exec "$@"')


@dataclass(frozen=True)
class Breach:
    """A limit the kernel enforced on a worker: its error type and the candidate's reason."""

    type: str  # "MemoryLimit" or "ProcessLimit"
    message: str


@dataclass(frozen=True)
class WorkerCgroup:
    """One worker's cgroup: v1 has a directory per controller, v2 one for both."""

    version: int
    memory_dir: Path
    pids_dir: Path
    memory_mb: int | None = None
    max_pids: int | None = None

    def __post_init__(self) -> None:
        # a runner that is never closed (or a host that exits) still leaves no cgroup behind
        weakref.finalize(self, _remove_dirs, self.dirs, self.version, 0.5, os.getpid())

    @property
    def dirs(self) -> tuple[Path, ...]:
        return tuple(dict.fromkeys((self.memory_dir, self.pids_dir)))

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` prefixed by a shell that joins this cgroup and then execs it (same pid).

        Raises FileNotFoundError, as ``Popen`` would, when ``argv[0]`` is no executable file.
        """
        if not (os.path.isfile(argv[0]) and os.access(argv[0], os.X_OK)):
            raise FileNotFoundError(errno.ENOENT, "No such executable", argv[0])
        sh = shutil.which("sh", path="/usr/bin:/bin") or "/bin/sh"
        procs = [str(d / "cgroup.procs") for d in self.dirs]
        return [sh, "-c", _JOIN, "metasearch-cgexec", *procs, "--", *argv]

    def members(self) -> list[int]:
        """The pids in the cgroup now (every directory, without repeats)."""
        return list(dict.fromkeys(p for d in self.dirs for p in _pids(d)))

    def breach(self) -> Breach | None:
        """The limit the kernel enforced so far, or None: memory before processes."""
        files = _FILES[self.version]
        killed = _counters(_read(self.memory_dir / files["oom"]))
        kills = killed.get("oom_kill", 0) + killed.get("oom_group_kill", 0)
        if kills:
            return Breach("MemoryLimit", (
                f"the candidate went over its {MEMORY_LIMIT}: its processes together used "
                f"more than {self.memory_mb} MB (sandbox.memory_mb), and the kernel killed "
                f"{kills} of them"))
        refused = _counters(_read(self.pids_dir / files["pids_events"])).get("max", 0)
        if refused:
            return Breach("ProcessLimit", (
                f"the candidate hit its {PROCESS_LIMIT}: its processes and threads together "
                f"reached {self.max_pids} (sandbox.max_pids), and the kernel refused "
                f"{refused} more"))
        return None

    def remove(self, timeout_s: float = 5.0) -> bool:
        """Kill every process left in the cgroup and remove it; False if it is still there."""
        return _remove_dirs(self.dirs, self.version, timeout_s)


@dataclass(frozen=True)
class Hierarchy:
    """Where worker cgroups are made: v1 has a parent per controller, v2 one for both."""

    version: int
    memory_parent: Path
    pids_parent: Path

    def create(self, name: str, *, memory_mb: int | None,
               max_pids: int | None) -> WorkerCgroup:
        """Make ``name`` (under each parent) and set its limits; None leaves one unset.

        Raises OSError, after removing what it made, when the kernel refuses.
        """
        cg = WorkerCgroup(self.version, self.memory_parent / name, self.pids_parent / name,
                          memory_mb, max_pids)
        files = _FILES[self.version]
        made: list[Path] = []
        try:
            for d in cg.dirs:
                d.mkdir()
                made.append(d)
            if memory_mb is not None:
                limit = str(memory_mb << 20)
                _write(cg.memory_dir / files["memory"], limit)
                # no swap on top: v1 limits memory+swap, v2 swap alone
                _write(cg.memory_dir / files["swap"], limit if self.version == 1 else "0",
                       missing_ok=True)
                if self.version == 2:  # one OOM kill takes the whole jail, not one process
                    _write(cg.memory_dir / "memory.oom.group", "1", missing_ok=True)
            if max_pids is not None:
                _write(cg.pids_dir / files["pids"], str(max_pids))
        except OSError:
            for d in made:
                try:
                    d.rmdir()
                except OSError:
                    pass
            raise
        return cg

    def sweep(self) -> None:
        """Remove empty worker cgroups left by a metasearch process that no longer runs."""
        for parent in dict.fromkeys((self.memory_parent, self.pids_parent)):
            try:
                entries = list(parent.iterdir())
            except OSError:
                continue
            for d in entries:
                pid = d.name.removeprefix(PREFIX).split("-", 1)[0]
                if d.name.startswith(PREFIX) and pid.isdigit() and not _alive(int(pid)):
                    try:
                        d.rmdir()  # refused while anything still runs in it
                    except OSError:
                        pass


# --------------------------------------------------------------------------- finding


@dataclass(frozen=True)
class _Mounts:
    v1: dict[str, tuple[Path, str]]  # controller -> (mount point, mount root)
    v2: tuple[Path, str] | None


def _mounts(mountinfo: str) -> _Mounts:
    v1: dict[str, tuple[Path, str]] = {}
    v2 = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 4 or len(fields) < 5:
            continue
        root, point = _unescape(fields[3]), Path(_unescape(fields[4]))
        fstype, options = fields[sep + 1], fields[sep + 3].split(",")
        if fstype == "cgroup2" and v2 is None:
            v2 = (point, root)
        elif fstype == "cgroup":
            for c in _NEEDED:
                if c in options and c not in v1:
                    v1[c] = (point, root)
    return _Mounts(v1, v2)


def _own(proc_cgroup: str) -> dict[str, str]:
    """controller (``""`` for v2) -> this process's cgroup path."""
    out: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for c in parts[1].split(",") if parts[1] else [""]:
                out.setdefault(c, parts[2])
    return out


def _place(mount: tuple[Path, str], path: str) -> Path:
    point, root = mount
    rel = path[len(root):] if root != "/" and path.startswith(root) else path
    return point / rel.lstrip("/")


@dataclass(frozen=True)
class Unavailable:
    """Why workers get no cgroup here, and the command that would change that."""

    why: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.why}; {self.fix}" if self.fix else self.why


def _scope_fix() -> str:
    user = "" if os.geteuid() == 0 else "--user "
    return f"systemd-run {user}--scope -p Delegate=yes -- metasearch ...  (a delegated scope)"


def find_hierarchy(*, mountinfo: str | None = None, proc_cgroup: str | None = None,
                   prepare: bool = True, user: str | None = None) -> Hierarchy | Unavailable:
    """Where this process may make worker cgroups with memory and pids limits, or why not.

    ``prepare=False`` only looks (``doctor``): on v2 it does not move this
    process into its ``metasearch-host`` leaf. The texts default to
    ``/proc/self/mountinfo`` and ``/proc/self/cgroup`` (tests pass their own).
    """
    m = _mounts(_read("/proc/self/mountinfo") if mountinfo is None else mountinfo)
    own = _own(_read("/proc/self/cgroup") if proc_cgroup is None else proc_cgroup)
    user = user or _user()
    v2_dir = _place(m.v2, own[""]) if m.v2 is not None and "" in own else None
    if v2_dir is not None and set(_NEEDED) <= set(_read(v2_dir / "cgroup.controllers").split()):
        parent = _v2_parent(v2_dir, m.v2[0], prepare)  # type: ignore[index]
        return parent if isinstance(parent, Unavailable) else Hierarchy(2, parent, parent)
    if all(c in m.v1 and c in own for c in _NEEDED):
        dirs = [_place(m.v1[c], own[c]) for c in _NEEDED]
        mine = [d / f"{PREFIX}{user}" for d in dirs]  # children delegated to this user
        parents = [d if _writable(d) else p if _writable(p) else None
                   for d, p in zip(dirs, mine, strict=True)]
        if None in parents:
            return Unavailable(
                f"cgroup v1: {' and '.join(map(str, dirs))} are not writable by {user}, and "
                f"no {PREFIX}{user} child of them is delegated",
                "as root: " + " && ".join(f"mkdir -p {p} && chown -R {user} {p}" for p in mine))
        return Hierarchy(1, parents[0], parents[1])  # type: ignore[arg-type]
    if v2_dir is not None:
        ctrls = _read(v2_dir / "cgroup.controllers").split()
        return Unavailable(f"cgroup v2: this process's cgroup {v2_dir} offers "
                           f"{' '.join(ctrls) or 'no controllers'}, not memory and pids, and no "
                           "cgroup v1 memory and pids hierarchies are mounted", _scope_fix())
    return Unavailable("no cgroup v1 memory and pids hierarchies and no cgroup v2 are mounted",
                       "mount -t cgroup2 none /sys/fs/cgroup")


def _v2_parent(own: Path, mount_point: Path, prepare: bool) -> Path | Unavailable:
    """The parent of worker cgroups on v2 (see the module docstring), or why there is none."""
    if own.name == HOST_LEAF and own != mount_point and _has_controllers(own.parent):
        return own.parent  # prepared before (by this process or its parent)
    if _has_controllers(own):
        return own
    if not _writable(own):
        return Unavailable(f"cgroup v2: this process's cgroup {own} is not writable by "
                           f"{_user()} (not delegated)", _scope_fix())
    if own != mount_point and (busy := _others(own)):
        return busy
    if not prepare:
        return own
    enable = " ".join(f"+{c}" for c in _NEEDED)
    try:
        _write(own / "cgroup.subtree_control", enable)
        return own  # the root cgroup, or one without processes
    except OSError:
        pass  # EBUSY: a non-root cgroup that holds processes cannot enable controllers
    if busy := _others(own):
        return busy
    try:
        (own / HOST_LEAF).mkdir(exist_ok=True)
        for pid in _pids(own):
            _write(own / HOST_LEAF / "cgroup.procs", str(pid))
        _write(own / "cgroup.subtree_control", enable)
    except OSError as e:
        return Unavailable(f"cgroup v2: cannot enable memory and pids under {own} ({e})",
                           _scope_fix())
    return own


def _others(own: Path) -> Unavailable | None:
    """Processes in ``own`` that are not this one or its descendants (not ours to move)."""
    others = [p for p in _pids(own) if not _descends(p, os.getpid())]
    if not others:
        return None
    return Unavailable(f"cgroup v2: this process's cgroup {own} also holds other processes "
                       f"(pid {others[0]}), so it cannot have children with limits",
                       _scope_fix())


def worker_cgroups(memory_mb: int | None, max_pids: int | None) -> tuple[Hierarchy | None, str]:
    """The hierarchy a runner makes its workers' cgroups in, or (None, why not).

    Nothing is needed when both limits are None: ``(None, "")``. It really
    creates a cgroup with both limits and removes it again, and it sweeps up
    empty cgroups that dead metasearch processes left behind.
    """
    if memory_mb is None and max_pids is None:
        return None, ""
    found = find_hierarchy()
    if isinstance(found, Unavailable):
        return None, str(found)
    found.sweep()
    name = f"{PREFIX}{os.getpid()}-probe-{time.monotonic_ns() % 10**9}"
    try:
        cg = found.create(name, memory_mb=memory_mb or 1024, max_pids=max_pids or 256)
    except OSError as e:
        return None, f"cgroup v{found.version}: cannot create one under {found.memory_parent} ({e})"
    cg.remove()
    return found, ""


def probe_cgroups(*, mountinfo: str | None = None,
                  proc_cgroup: str | None = None) -> tuple[bool, str, str]:
    """For ``doctor``: (workers would get cgroup limits here, where or why not, the fix).

    It changes nothing (on v2 it does not move this process).
    """
    found = find_hierarchy(prepare=False, mountinfo=mountinfo, proc_cgroup=proc_cgroup)
    if isinstance(found, Unavailable):
        return False, found.why, found.fix
    where = (str(found.memory_parent) if found.version == 2
             else f"{found.memory_parent} and {found.pids_parent}")
    return True, f"cgroup v{found.version}, worker cgroups under {where}", ""


# --------------------------------------------------------------------------- helpers


def _remove_dirs(dirs: tuple[Path, ...], version: int, timeout_s: float,
                 owner: int | None = None) -> bool:
    if owner is not None and owner != os.getpid():
        return False  # a forked child: the cgroups are its parent's to remove
    deadline = time.monotonic() + timeout_s
    left = list(dirs)
    if version == 2:
        _write(dirs[0] / "cgroup.kill", "1", missing_ok=True)
    while left:
        for d in list(left):
            for pid in _pids(d):
                if pid != os.getpid():  # never the host itself, whatever the file says
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError as e:
                if e.errno == errno.ENOTEMPTY:
                    return False  # plain files inside: not a cgroup (cgroupfs says EBUSY)
                continue  # EBUSY: its processes are still exiting
            left.remove(d)
        if left:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
    return True


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _write(path: Path, text: str, *, missing_ok: bool = False) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:  # one write: cgroup files take one value
            f.write(text)
    except FileNotFoundError:
        if not missing_ok:
            raise


def _counters(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def _has_controllers(d: Path) -> bool:
    return set(_NEEDED) <= set(_read(d / "cgroup.subtree_control").split())


def _writable(d: Path) -> bool:
    return d.is_dir() and os.access(d, os.W_OK) and os.access(d / "cgroup.procs", os.W_OK)


def _pids(d: Path) -> list[int]:
    return [int(x) for x in _read(d / "cgroup.procs").split() if x.isdigit()]


def _descends(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        stat = _read(f"/proc/{pid}/stat")
        try:  # "pid (comm) state ppid ...": comm may hold spaces and parentheses
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (IndexError, ValueError):
            return False
    return pid == ancestor


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
        .replace("\\134", "\\")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.geteuid())
