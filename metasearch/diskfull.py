"""A full disk (ENOSPC) or an exhausted quota (EDQUOT) as one clear, campaign-ending error.

Every writer of a campaign (the archive, its side files, the response cache,
the MLflow store, the report) fails in its own way when the file system is
full: ``OSError`` from ``os.write``, ``sqlite3.OperationalError: database or
disk is full`` from SQLite, an ``MlflowException`` wrapping either. Each
writer already leaves its store valid (whole JSONL lines, temp file then
rename, SQLite transactions); this module recognises the failure in any of
those forms, so the campaign can stop with one paragraph that says where
and what to do, instead of a traceback or a candidate wrongly marked failed.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from metasearch.errors import MetasearchError

__all__ = ["DiskFullError", "campaign_disk_full", "disk_full", "is_disk_full"]

#: errno values that mean "no room to write": a full file system, an exhausted quota.
ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: how the same failure reads once a library has turned it into text (SQLite, MLflow).
_PHRASES = ("database or disk is full", "no space left on device", "disk quota exceeded")


class DiskFullError(MetasearchError):
    """No room left to write ``path``: free space (or quota) and run again.

    ``path`` is what was being written, ``reason`` the system's words for it.
    """

    exit_code = 4

    def __init__(self, message: str, *, path: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes and contexts, each once."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__]
    return seen


def _reason(exc: BaseException) -> str:
    """The system's words for the failure, or "" when ``exc`` is not a disk-full one."""
    for e in _chain(exc):
        if isinstance(e, DiskFullError):
            return e.reason or "no space left"
        if isinstance(e, OSError) and e.errno in ERRNOS:
            return os.strerror(e.errno)
        text = str(e).lower()
        phrase = next((p for p in _PHRASES if p in text), None)
        if phrase is not None:
            return phrase
    return ""


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the disk is full or the quota is used up."""
    return bool(_reason(exc))


def _what(exc: BaseException) -> str:
    """What was being written, as far as the exception tells."""
    for e in _chain(exc):
        if isinstance(e, DiskFullError) and e.path:
            return e.path
        if isinstance(e, OSError) and e.filename:
            return str(e.filename)
    modules = " ".join(type(e).__module__ for e in _chain(exc))
    if "mlflow" in modules or "sqlalchemy" in modules:
        return "the MLflow store"
    if "sqlite3" in modules or "diskcache" in modules:
        return "a SQLite database"
    return "a file"


def disk_full(path: str | Path, exc: BaseException) -> DiskFullError:
    """The error for a write of ``path`` that found no room (``exc`` says why)."""
    reason = _reason(exc) or "no space left"
    return DiskFullError(
        f"Cannot write {path}: {reason}. Nothing already written was lost. Free space on that "
        f"file system (`df -h {Path(path).parent}` shows it) or raise your quota, then run the command "
        "again.", path=str(path), reason=reason)


def campaign_disk_full(directory: str | Path, exc: BaseException) -> DiskFullError:
    """The campaign-level error: which directory filled up, that the archive is intact, --resume.

    A file outside the campaign directory (the local weights in the user cache) is named as
    such, with its own directory to free space in.
    """
    reason = _reason(exc) or "no space left"
    what = _what(exc)
    outside = Path(what).is_absolute() and not Path(what).resolve().is_relative_to(
        Path(directory).resolve())
    where = Path(what).parent if outside else directory
    full = (f"The file system of {where} ran out of space while writing {what} (outside the "
            f"campaign directory {directory})" if outside else
            f"The campaign directory {directory} ran out of disk space while writing {what}")
    return DiskFullError(
        f"{full} ({reason}), so the campaign stopped. Everything recorded before that "
        "is kept and valid (archive.jsonl, agents/, results/, traces/, the response cache and "
        "the MLflow store); the candidate in progress is redone on resume, the replies "
        "already in the cache read back, not billed again. Free space on that file system "
        f"(`df -h {where}` shows it) or raise your quota, then run the same command with "
        "--resume to continue.",
        path=str(directory), reason=reason)
