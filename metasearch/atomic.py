"""Files that a kill or a full disk leaves whole: the old version or the new one, never half.

Everything a campaign writes outside its append-only logs (configs, reports,
plots, store locations) goes through here: the bytes go to a temp file beside
the target, which ``os.replace`` then renames over it (atomic on POSIX). A
failed write removes its temp file and re-raises, so the caller decides what a
full disk means (:mod:`metasearch.diskfull`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

__all__ = ["write_text", "write_with"]


def write_text(path: Path, text: str, *, durable: bool = False) -> None:
    """Replace ``path`` with ``text`` (UTF-8) in one step.

    ``durable`` also fsyncs the file and its directory, so the new version
    survives a power cut, not only a kill (records the campaign resumes from).
    """
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())

    write_with(Path(path), write)
    if durable:
        fd = os.open(Path(path).parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_with(path: Path, write: Callable[[Path], object]) -> Path:
    """Replace ``path`` with what ``write(tmp)`` puts in a temp file (e.g. ``fig.savefig``).

    The temp file keeps ``path``'s suffix, so writers that pick a format by the
    name (matplotlib) write the same format.
    """
    path = Path(path)
    # a name of its own per call (threads and processes may write one file at once); opened
    # by the writer as usual, so the file gets the umask's permissions (mkstemp's are 0600)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
