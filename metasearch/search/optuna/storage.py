"""Where a campaign's Optuna study lives, and how to open it again.

One study per campaign. By default it is a journal file in the campaign
directory (``optuna.journal``: append-only, so a kill -9 mid-write loses at
most the line being written, and Optuna's own recovery skips it); any RDB URL
(``sqlite:///...``, ``postgresql://...``) may be given instead through
``search.optuna.storage`` or ``metasearch run --storage``. The campaign
directory records which storage and study it used in ``optuna.json``, so
``metasearch ui --optuna`` and the report find the study without being told.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metasearch import atomic
from metasearch.errors import ConfigError, DataError
from metasearch.urls import redact

__all__ = ["JOURNAL_FILE", "STUDY_FILE", "StudyLocation", "open_storage", "own_schema",
           "read_location", "redact", "write_location"]

JOURNAL_FILE = "optuna.journal"
STUDY_FILE = "optuna.json"


@dataclass(frozen=True)
class StudyLocation:
    """A storage (a journal file path or an RDB URL) and the study's name in it."""

    storage: str
    study: str

    @property
    def is_url(self) -> bool:
        return "://" in self.storage


def default_location(directory: Path, study: str) -> StudyLocation:
    return StudyLocation(str((directory / JOURNAL_FILE).resolve()), study)


def open_storage(storage: str) -> Any:
    """An Optuna storage for a journal file path or an RDB URL, with a clear error if neither."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if "://" not in storage:
        path = Path(storage)
        if path.is_dir():
            raise ConfigError(f"The Optuna storage {storage!r} is a directory. Give a journal "
                              "file path (it is created) or an RDB URL such as "
                              "sqlite:///study.db or postgresql://user@host/db.")
        path.parent.mkdir(parents=True, exist_ok=True)
        whole_lines(path)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    try:
        return optuna.storages.RDBStorage(storage, heartbeat_interval=None)
    except Exception as exc:  # bad dialect, unreachable server, missing driver
        if "compatible with the table schema" in str(exc):
            raise ConfigError(
                f"Cannot open the Optuna storage {redact(storage)}: its tables are versioned by "
                "another Alembic user (an MLflow backend store in the same database or schema, "
                "most likely), which Optuna refuses. Give the study a database of its own, or "
                "a schema of its own on PostgreSQL by adding ?options=-csearch_path%3Doptuna to "
                "the URL (create the schema first: CREATE SCHEMA optuna).") from None
        raise ConfigError(
            f"Cannot open the Optuna storage {redact(storage)}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}. Give an RDB URL SQLAlchemy can "
            "open (sqlite:///path/study.db, postgresql://user@host/db with its driver "
            "installed), or leave search.optuna.storage unset for a journal file in the "
            "campaign directory.") from None


def own_schema(url: str, schema: str = "optuna") -> str:
    """``url`` with Optuna's tables in a PostgreSQL schema of their own (created here).

    Optuna and MLflow both version their tables with Alembic's default
    ``alembic_version`` table, so the two cannot share one schema: Optuna
    refuses a database whose MLflow revision it does not know ("no longer
    compatible with the table schema"). A shared campaign's database may well
    hold an MLflow backend store too, so its study goes to ``schema`` (through
    libpq's ``options=-csearch_path=...``, kept in the URL so that every worker
    and ``metasearch ui --optuna`` open the same tables). Other databases: as is.
    """
    from metasearch.store.db import driver_url

    url = driver_url(url)
    if not url.startswith("postgresql"):
        return url
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        except sa.exc.IntegrityError:
            pass  # another worker created it at the same moment (IF NOT EXISTS races)
        finally:
            engine.dispose()
    except Exception as exc:
        raise ConfigError(
            f"Cannot create the schema {schema!r} for the shared Optuna study in "
            f"{redact(url)}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}. "
            f"Grant the user CREATE on the database (or create the schema {schema!r} for it), "
            "or give search.optuna.storage a database of the study's own.") from None
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def whole_lines(path: Path) -> None:
    """Cut the journal's last line if a full disk (or a crash) let only part of it through.

    Optuna skips such a part while it is last, but its next append would join the part
    to the new line, and from then on the study no longer loads. Runs under Optuna's
    own journal lock, so no writer is half-way through a line.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        with open(path, "r+b") as f:
            end = f.seek(0, os.SEEK_END)
            good = end
            while good > 0:
                start = max(0, good - 65536)
                f.seek(start)
                chunk = f.read(good - start)
                if good == end and chunk.endswith(b"\n"):
                    return  # the usual case: nothing torn
                cut = chunk.rfind(b"\n")
                if cut >= 0:
                    good = start + cut + 1
                    break
                good = start
            f.truncate(good)
            f.flush()
            os.fsync(f.fileno())
    finally:
        lock.release()


def write_location(directory: Path, location: StudyLocation) -> None:
    """Record the study (atomically: a full disk leaves no half file that resume would refuse)."""
    data = {"storage": redact(location.storage), "study": location.study}
    atomic.write_text(directory / STUDY_FILE, json.dumps(data, indent=2) + "\n")


def read_location(directory: Path, storage: str | None = None) -> StudyLocation:
    """The study a campaign directory used; ``storage`` overrides a redacted URL."""
    path = directory / STUDY_FILE
    if not path.exists():
        raise DataError(f"{directory} has no Optuna study ({STUDY_FILE} is missing): only "
                        "campaigns run with search.strategy = \"optuna\" have one.")
    try:
        data = json.loads(path.read_text())
        loc = StudyLocation(str(storage or data["storage"]), str(data["study"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not a study location ({exc}); it should hold "
                        '{"storage": ..., "study": ...}.') from None
    if ":***@" in loc.storage:
        raise DataError(f"{path} names a password-protected storage ({loc.storage}); pass "
                        "the full URL with --storage.")
    return loc
