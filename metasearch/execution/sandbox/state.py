"""Where the sandbox keeps its state: one directory per user, never a fixed path in ``/tmp``.

A fixed name in the shared temp directory belongs to whoever creates it first:
created 0700 by root, every other user gets ``PermissionError``; created by
someone else, it can be a trap. So each user gets their own directory, made
0700 and checked (a real directory, owned by this user, closed to others)
before it is used:

* root: ``/run/metasearch`` (only root can create it; the same for every root
  process whatever its environment, which the uid locks need: two root
  campaigns must agree on which sandbox uids are taken);
* anyone: ``$XDG_RUNTIME_DIR/metasearch`` (small state) or
  ``${XDG_CACHE_HOME:-~/.cache}/metasearch/sandbox`` (scratch, which can be
  large: not the runtime tmpfs; root's scratch stays in a fresh ``mkdtemp``
  of the system temp directory, as before);
* without a usable home (``nobody``): ``<tmp>/metasearch-<uid>``, if it is
  this user's own; if another user created it first, a fresh ``mkdtemp``
  directory instead (unique per process, so nothing can squat it).

Standard library only.
"""

from __future__ import annotations

import functools
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["LEGACY_LOCK_DIR", "lock_dir", "lock_dirs", "scratch_base", "state_dir", "usable_dir"]

LEGACY_LOCK_DIR = Path(tempfile.gettempdir()) / "metasearch-sandbox-uids"
"""Where older versions kept root's uid locks; still honoured when it is root's own."""


def usable_dir(path: Path) -> bool:
    """Create ``path`` (0700) if needed; True if it is this user's own private directory.

    Refuses a symlink, a non-directory, one owned by another user, and one other
    users may write to; one of ours that others may read is closed (chmod 0700).
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        return False
    if st.st_mode & 0o077:
        try:
            os.chmod(path, 0o700)
        except OSError:
            return False
    return os.access(path, os.R_OK | os.W_OK | os.X_OK)


def _home() -> Path | None:
    try:
        home = Path.home()
    except (KeyError, RuntimeError):
        return None
    try:
        return home if home.is_absolute() and os.stat(home).st_uid == os.geteuid() else None
    except OSError:
        return None


@functools.lru_cache(maxsize=4)
def _tmp_fallback(euid: int) -> Path:
    """``<tmp>/metasearch-<uid>``, or (squatted) one fresh directory for this process."""
    own = Path(tempfile.gettempdir()) / f"metasearch-{os.geteuid()}"
    if usable_dir(own):
        return own
    return Path(tempfile.mkdtemp(prefix=f"metasearch-{os.geteuid()}-"))


def _cache(home: Path) -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg and os.path.isabs(xdg) else home / ".cache") / "metasearch"


def state_dir() -> Path:
    """This user's directory for small sandbox state (uid locks)."""
    candidates = [Path("/run/metasearch")] if os.geteuid() == 0 else []
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        candidates.append(Path(runtime) / "metasearch")
    home = _home()
    if home is not None:
        candidates.append(_cache(home) / "state")
    for c in candidates:
        if usable_dir(c):
            return c
    return _tmp_fallback(os.geteuid())


def lock_dir() -> Path:
    """Where the root runner's per-uid flocks live (``state_dir()/sandbox-uids``)."""
    d = state_dir() / "sandbox-uids"
    if not usable_dir(d):
        raise PermissionError(f"the sandbox's uid lock directory {d} is not this user's own "
                              f"private directory; remove it (rm -r {d}) and start again")
    return d


def lock_dirs() -> list[Path]:
    """Every directory whose flock on a uid's file marks that uid taken (root only).

    :func:`lock_dir`, plus the legacy ``/tmp`` one when it exists and is this
    user's own private directory: a campaign started by an older version
    still locks there, and two runners that hand out one uid reap each
    other's workers. It is never created.
    """
    dirs = [lock_dir()]
    try:
        st = os.lstat(LEGACY_LOCK_DIR)
    except OSError:
        return dirs
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022:
        dirs.append(LEGACY_LOCK_DIR)
    return dirs


def scratch_base() -> Path:
    """This user's directory to hold sandbox scratch and probe roots (one ``mkdtemp`` each).

    Root keeps today's place, the system temp directory (each root a fresh 0700
    ``mkdtemp``, so nothing fixed): under root's home, the unshare jail would
    show the path to it.
    """
    if os.geteuid() == 0:
        return Path(tempfile.gettempdir())
    home = _home()
    if home is not None and usable_dir(_cache(home) / "sandbox"):
        return _cache(home) / "sandbox"
    return _tmp_fallback(os.geteuid())
