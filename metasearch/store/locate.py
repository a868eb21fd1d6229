"""Open a campaign's archive wherever it lives: a JSONL directory, or a shared database.

A location is a campaign directory (``runs/quickstart``), or a database URL
naming the campaign after ``#`` (``postgresql://u@db/metasearch#quickstart``;
without ``#NAME``, a database holding one campaign opens that one). A
directory written by ``metasearch run --worker --storage URL`` holds no
records, only ``store.json``: the URL (never its password: libpq reads it
from ``PGPASSWORD`` or ``~/.pgpass``) and the campaign's name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from metasearch import atomic
from metasearch.errors import DataError
from metasearch.store import db
from metasearch.store.archive import ARCHIVE_FILE, Archive

__all__ = ["STORE_FILE", "is_location_url", "open_archive", "read_store", "write_store"]

STORE_FILE = "store.json"


def is_location_url(location: str | Path) -> bool:
    return isinstance(location, str) and db.is_db_url(location)


def write_store(directory: Path, url: str, campaign: str) -> None:
    """Record in ``directory`` where its campaign's records live (no password)."""
    data = {"url": db.without_password(url), "campaign": campaign}
    atomic.write_text(directory / STORE_FILE, json.dumps(data, indent=2) + "\n")


def read_store(directory: Path) -> tuple[str, str] | None:
    """(URL, campaign) of a directory whose records are in a database, else None."""
    path = directory / STORE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return str(data["url"]), str(data["campaign"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not a store location ({exc}); it should hold "
                        '{"url": ..., "campaign": ...}.') from None


def open_archive(location: str | Path, *, url: str | None = None) -> Any:
    """A read-only archive (:class:`Archive` or :class:`SqlArchive`) for ``location``.

    ``url`` overrides the one in a directory's ``store.json`` (to give a password).
    """
    from metasearch.store.sql_archive import SqlArchive, campaign_names

    if is_location_url(str(location)):
        base, name = db.split_campaign(str(location))
        if name is None:
            names = campaign_names(base)
            if len(names) != 1:
                raise DataError(
                    f"{db.redact(base)} holds {len(names)} campaigns ({', '.join(names) or 'none'})"
                    f"; name one after '#': {db.redact(base)}#NAME.")
            name = names[0]
        return SqlArchive.open(base, campaign=name, readonly=True)
    root = Path(location)
    stored = read_store(root)
    if stored is not None:
        return SqlArchive.open(url or stored[0], campaign=stored[1], root=root, readonly=True)
    if not (root / ARCHIVE_FILE).is_file():
        raise DataError(f"{root} is not a campaign directory (no {ARCHIVE_FILE} or "
                        f"{STORE_FILE}). Give the directory a `metasearch run` wrote (its "
                        "run.out), or a database URL such as postgresql://host/db#NAME.")
    return Archive.open(root, readonly=True)
