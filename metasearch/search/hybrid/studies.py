"""Where the hybrid strategy's studies live: one Optuna study per structure, one storage.

By default a journal file, ``hybrid.journal``, in the campaign directory
(append-only: a kill -9 mid-write loses at most the line being written); any
RDB URL through ``search.hybrid.storage``. ``hybrid.json`` records the storage
(password removed) and the prefix of the study names, so ``--resume`` opens
the same studies: structure ``g002-00``'s study is ``<prefix>-g002-00``.
The storage helpers are the ``optuna`` strategy's. Several ``--worker``
processes share one set of studies in the campaign's database
(:func:`open_shared_studies`), named after the campaign.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from metasearch import atomic
from metasearch.errors import ConfigError, DataError
from metasearch.search.optuna.storage import open_storage, own_schema, redact

__all__ = ["JOURNAL_FILE", "STUDIES_FILE", "Studies", "open_shared_studies", "open_studies"]

JOURNAL_FILE = "hybrid.journal"
STUDIES_FILE = "hybrid.json"
STRUCTURE = "structure"  # study user attribute: the structure it tunes


@dataclass
class Studies:
    """The campaign's studies: ``open(structure)`` creates one on first use, then loads it."""

    storage: Any
    prefix: str
    location: str  # the storage as recorded (redacted)

    def name(self, structure: str) -> str:
        return f"{self.prefix}-{structure}"

    def open(self, structure: str) -> optuna.Study:
        study = optuna.create_study(study_name=self.name(structure), storage=self.storage,
                                    direction="maximize", load_if_exists=True)
        if study.user_attrs.get(STRUCTURE) != structure:
            study.set_user_attr(STRUCTURE, structure)
        return study

    def existing(self) -> list[optuna.Study]:
        """The studies of this campaign already in the storage (resume), by structure id."""
        names = sorted(n for n in optuna.get_all_study_names(self.storage)
                       if n.startswith(self.prefix + "-"))
        return [optuna.load_study(study_name=n, storage=self.storage) for n in names]


def open_studies(directory: Path, storage: str | None = None) -> Studies:
    """The studies of the campaign in ``directory``: recorded in ``hybrid.json`` on first use."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = directory / STUDIES_FILE
    if path.exists():
        try:
            data = json.loads(path.read_text())
            where, prefix = str(storage or data["storage"]), str(data["prefix"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path} is not a hybrid study location ({exc}); it should hold "
                            '{"storage": ..., "prefix": ...}. Restore it, or start a new '
                            "campaign directory.") from None
        if ":***@" in where:
            raise ConfigError(f"{path} names a password-protected storage ({where}); give the "
                              "full URL in search.hybrid.storage to resume.")
        return Studies(open_storage(where), prefix, redact(where))
    where = storage or str((directory / JOURNAL_FILE).resolve())
    prefix = f"{directory.resolve().name}-{uuid.uuid4().hex[:8]}"
    studies = Studies(open_storage(where), prefix, redact(where))
    directory.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps({"storage": redact(where), "prefix": prefix},
                                       indent=2) + "\n")
    return studies


def open_shared_studies(shared: Any, directory: Path, storage: str | None = None) -> Studies:
    """The studies every ``--worker`` of a campaign shares: in ``storage`` if that is a
    database URL, else in the campaign's database (schema ``optuna``, beside an MLflow
    store), prefixed by the campaign's name so that every worker and resume finds them."""
    from metasearch.store.db import is_db_url

    where = storage or shared.url
    if not is_db_url(where):
        raise ConfigError(
            f"search.hybrid.storage = {storage!r} is a journal file, which workers on other "
            "machines cannot share. Leave it unset with --worker (the studies then live in "
            "the campaign's database) or give a database URL.")
    if storage is None:
        where = own_schema(where)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # one worker creates Optuna's tables: two at once collide inside PostgreSQL's catalog
    shared.coordinator.once("~hybrid-storage", lambda: open_storage(where))
    studies = Studies(open_storage(where), f"metasearch-hybrid-{shared.name}", redact(where))
    directory.mkdir(parents=True, exist_ok=True)
    atomic.write_text(directory / STUDIES_FILE, json.dumps(
        {"storage": studies.location, "prefix": studies.prefix}, indent=2) + "\n")
    return studies
