"""A campaign's paid replies as portable files: export them, import them elsewhere.

The response cache is what makes a campaign reproducible: run again with the
same code, config and cache, every agent sends the same requests, every reply
is a hit, and every record comes back without a single model call. A replies
file carries that cache off the machine: commit it beside a write-up so that
anyone can replay the campaign exactly, or import it into a fresh directory
and ``metasearch run --resume`` picks up where a lost machine stopped (the
replayed part costs nothing and no budget).

A file is gzip'd JSON lines: a header ``{"format": "metasearch-replies",
"version": 1}``, then one ``{"key": ..., "reply": ...}`` per reply. Exports
can skip the keys of earlier files, so a long experiment keeps one small
file per stretch of work instead of rewriting one growing file.

Exported from a campaign directory, the header also carries what the campaign
had been billed by then (``"spent"``: calls, usd, tokens). Replayed replies
are cache hits, free, so a campaign rebuilt from its files alone would count
nothing for its replayed part: its budget would stop it late (or never), and a
search that had stopped at its cap would go on searching. ``cache import
--continue-spend`` marks each imported reply the directory did not hold as
*owed* (:class:`OwedReplies`): the run that replays it bills it once, at its
recorded tokens and price, as the campaign that made it was billed, so the
replay takes the original's budget decisions and ends with its counts.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metasearch import atomic
from metasearch.errors import DataError

__all__ = ["FORMAT", "OWED_DIR", "ImportCount", "OwedReplies", "export_replies",
           "import_replies", "known_keys", "open_cache", "open_owed", "replies_files"]

FORMAT = "metasearch-replies"
#: In a campaign directory: the replies its replay bills again (``--continue-spend``).
OWED_DIR = "replay-owed"
_SPENT = ("calls", "usd", "tokens")
_KEY = re.compile(r"^[0-9a-f]{64}$")
_FIELDS = {"text": str, "prompt_tokens": int, "completion_tokens": int}


@dataclass(frozen=True)
class ImportCount:
    added: int      # new in the cache
    present: int    # already there, the same reply
    differing: int  # already there with another reply: the cache's own is kept
    #: The largest spend the files' headers record (the latest export); None: none records it.
    spent: dict[str, Any] | None = None
    owed: int = 0   # of ``added``: marked owed (billed again when replayed)


class OwedReplies:
    """The cache keys a replay bills once more: a campaign's own paid replies, imported.

    A diskcache beside the archive (not in ``cache/``, which experiments copy
    from one campaign to seed another: a copy must not make the other owe them).
    :meth:`settle` is atomic, so two processes never both bill one reply.
    """

    def __init__(self, directory: str | Path) -> None:
        import diskcache

        self.directory = Path(directory)
        self._store = diskcache.Cache(str(self.directory))

    def add(self, key: str) -> None:
        self._store.set(key, 1)

    def settle(self, key: str) -> bool:
        """True once for an owed key (now billed), False for any other."""
        return self._store.pop(key, default=None) is not None

    def __len__(self) -> int:
        return len(self._store)

    def close(self) -> None:
        self._store.close()


def open_owed(directory: str | Path, *, create: bool = False) -> OwedReplies | None:
    """A campaign directory's owed replies; None where an import made none (and not ``create``)."""
    path = Path(directory) / OWED_DIR
    return OwedReplies(path) if create or path.is_dir() else None


def open_cache(location: str | Path, *, create: bool = False) -> Any:
    """The response cache of a campaign directory, a ``--worker`` one, a ``--cache-dir``,
    or ``URL#NAME``.

    ``create`` makes a directory's cache if it has none (an import into a
    directory that a later ``run --resume`` fills).
    """
    from metasearch.llm.cache import ResponseCache
    from metasearch.llm.shared import SqlResponseCache
    from metasearch.store import db
    from metasearch.store.locate import is_location_url, read_store

    if is_location_url(str(location)):
        url, name = db.split_campaign(str(location))
        if name is None:
            raise DataError(f"{db.redact(url)} names no campaign; name one after '#': "
                            f"{db.redact(url)}#NAME.")
        return SqlResponseCache(url=url, campaign=name)
    root = Path(location)
    stored = read_store(root) if root.is_dir() else None
    if stored is not None:
        return SqlResponseCache(url=stored[0], campaign=stored[1])
    responses = root / "responses"  # a cache directory (eval's --cache-dir)
    if not responses.is_dir():
        responses = root / "cache" / "responses"  # a campaign directory
    if not responses.is_dir() and not create:
        raise DataError(f"{root} has no response cache ({responses} does not exist). Give "
                        "the directory a `metasearch run` wrote (its run.out), a --worker "
                        "one, a --cache-dir, or a database URL such as postgresql://host/db#NAME.")
    if root.exists() and not root.is_dir():
        raise DataError(f"{root} is a file, not a campaign directory.")
    return ResponseCache(directory=responses)


def replies_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, and a directory's ``*.jsonl.gz`` in name order."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(p.glob("*.jsonl.gz"))
        elif p.is_file():
            out.append(p)
        else:
            raise DataError(f"{p} does not exist; give a replies file (.jsonl.gz) that "
                            "`metasearch cache export` wrote, or a directory of them.")
    return out


def known_keys(paths: Iterable[str | Path]) -> set[str]:
    """Every key in these replies files (what an incremental export skips)."""
    return {key for f in replies_files(paths) for key, _ in _read(f)[1]}


def export_replies(cache: Any, path: str | Path, *, skip: set[str] | None = None,
                   spent: dict[str, Any] | None = None) -> int:
    """Write the cache's replies, less the keys in ``skip``, to ``path``; how many.

    ``spent`` (the campaign's billed calls, usd and tokens so far) goes into the header.
    """
    skip = skip or set()
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a directory; give a file name such as "
                        f"{path / 'replies.jsonl.gz'}.")
    if not path.parent.is_dir():
        raise DataError(f"cannot write {path}: the directory {path.parent} does not exist.")
    count = 0

    def write(tmp: Path) -> None:
        nonlocal count
        with gzip.open(tmp, "wt", encoding="utf-8") as f:
            header: dict[str, Any] = {"format": FORMAT, "version": 1}
            if spent is not None:
                header["spent"] = {k: spent.get(k, 0) for k in _SPENT}
            f.write(json.dumps(header) + "\n")
            for key, reply in sorted(cache.items()):
                if key not in skip:
                    f.write(json.dumps({"key": key, "reply": reply}, ensure_ascii=False,
                                       sort_keys=True, default=str) + "\n")
                    count += 1

    try:
        atomic.write_with(path, write)
    except OSError as exc:
        from metasearch.diskfull import is_disk_full

        if is_disk_full(exc):
            raise  # the CLI's one paragraph for a full disk
        raise DataError(f"cannot write {path}: {exc.strerror or exc}. Choose a writable "
                        "path.") from None
    return count


def import_replies(cache: Any, paths: Iterable[str | Path], *,
                   owed: OwedReplies | None = None) -> ImportCount:
    """Add these files' replies to ``cache``; every file (its spend header too) is checked
    before any is added, and each is read once.

    With ``owed``, every reply added (new to the cache) is also marked owed. One the
    cache holds already stays free: import a campaign's files into a directory that
    holds what the campaign itself started with for free (a copied cache), so that
    only what it paid for is billed again.
    """
    entries: list[tuple[str, dict[str, Any]]] = []
    spends = []
    for f in replies_files(paths):
        spent, found = _read(f)
        entries += found
        if spent is not None:
            spends.append(spent)
    added = present = differing = 0
    for key, reply in entries:
        old = cache.get(key)
        if old is None:
            cache.set(key, reply)
            if owed is not None:
                owed.add(key)
            added += 1
        elif old == reply:
            present += 1
        else:
            differing += 1
    return ImportCount(added, present, differing, _latest(spends),
                       owed=added if owed is not None else 0)


def _latest(spends: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(spends, key=lambda s: (s["calls"], s["usd"], s["tokens"]), default=None)


def _spent(path: Path, header: dict[str, Any]) -> dict[str, Any] | None:
    spent = header.get("spent")
    if spent is None:
        return None
    try:
        return {"calls": int(spent["calls"]), "usd": float(spent["usd"]),
                "tokens": int(spent["tokens"])}
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{path} line 1: 'spent' should be {{\"calls\": N, \"usd\": X, "
                        f"\"tokens\": N}}, not {spent!r}; export the file again.") from None


def _lines(path: Path) -> list[str]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return f.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a gzip'd replies file ({exc}); give one that "
                        "`metasearch cache export` wrote.") from None


def _header(path: Path, lines: list[str]) -> dict[str, Any]:
    header = _json(path, 1, lines[0]) if lines else None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise DataError(f"{path} line 1: not a metasearch replies file (the first line should "
                        f'be {{"format": "{FORMAT}", "version": 1}}).')
    if header.get("version") != 1:
        raise DataError(f"{path}: replies format version {header.get('version')!r}; this "
                        "metasearch reads version 1. Upgrade metasearch to read it.")
    return header


def _read(path: Path) -> tuple[dict[str, Any] | None, list[tuple[str, dict[str, Any]]]]:
    """A file's recorded spend and its entries, every line checked."""
    lines = _lines(path)
    return _spent(path, _header(path, lines)), list(_entries(path, lines[1:]))


def _entries(path: Path, lines: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    for n, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        entry = _json(path, n, line)
        key = entry.get("key") if isinstance(entry, dict) else None
        reply = entry.get("reply") if isinstance(entry, dict) else None
        where = f"{path} line {n}"
        if not isinstance(key, str) or not _KEY.match(key):
            raise DataError(f"{where}: 'key' should be a request's sha256 (64 hex digits), "
                            f"not {key!r}.")
        if not isinstance(reply, dict):
            raise DataError(f"{where}: 'reply' should be an object, not {reply!r}.")
        for field, kind in _FIELDS.items():
            if not isinstance(reply.get(field), kind) or isinstance(reply.get(field), bool):
                raise DataError(f"{where}: the reply's {field!r} should be "
                                f"{'a string' if kind is str else 'an integer'}, not "
                                f"{reply.get(field)!r}.")
        yield key, reply


def _json(path: Path, n: int, line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise DataError(f"{path} line {n} is not JSON ({exc}); the file is damaged: export "
                        "it again.") from None
