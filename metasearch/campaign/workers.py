"""A campaign's shared state on a database, for ``metasearch run CONFIG --worker --storage URL``.

How a worker joins: the campaign is named by its ``run.out`` directory's
name (or ``URL#NAME``); the first worker creates its row in
``ms_campaigns`` with the hash of the config, and every later worker must
bring a config with the same hash (only ``run.*`` settings, which say where
and how fast one worker runs, may differ). Each worker keeps its own local
``run.out`` for its report, MLflow store and sandbox scratch; the records,
agent code, response cache and budget are the database's.

How a dead worker's slot is recovered: its claim is a lease renewed by a
heartbeat (:mod:`metasearch.store.coordinator`), so once it expires
(``LEASE_S``) the next worker waiting on the slot runs it, replaying what
the dead one paid for from the shared cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metasearch.errors import ConfigError
from metasearch.llm.settings import BudgetSettings
from metasearch.llm.shared import SqlBudget, SqlResponseCache
from metasearch.store import db
from metasearch.store.coordinator import Coordinator
from metasearch.store.locate import write_store
from metasearch.store.sql_archive import SqlArchive

__all__ = ["LEASE_S", "SharedState", "join_shared", "start_shared_tracker"]

LEASE_S = 60.0  # a dead worker's claims are taken over this long after its last heartbeat

@dataclass
class SharedState:
    """The database parts one worker of a campaign uses."""

    name: str
    url: str
    archive: SqlArchive
    cache: SqlResponseCache
    budget: SqlBudget
    coordinator: Coordinator
    new: bool  # this worker created the campaign

    def close(self) -> None:
        self.coordinator.close()


def join_shared(config: Any, out: Path, storage: str, *, resume: bool, worker: bool,
                lease_s: float = LEASE_S) -> SharedState:
    """Join (or start) the campaign in ``storage``; refuses a different config."""
    url, name = db.split_campaign(storage)
    name = name or out.resolve().name
    engine = db.open_engine(url)
    new = db.join_campaign(engine, name, config.to_flat_params())
    archive = SqlArchive.open(url, campaign=name, root=out)
    if len(archive) and not (resume or worker):
        raise ConfigError(
            f"The campaign {name!r} in {db.redact(url)} already has {len(archive)} records. "
            "Pass --worker to join it (or --resume to continue it), or set run.out (or "
            "--out) to a new name for a new campaign.")
    out.mkdir(parents=True, exist_ok=True)
    write_store(out, url, name)
    b = config.budget
    budget = SqlBudget(BudgetSettings(max_usd=b.max_usd, max_calls=b.max_calls,
                                      max_tokens=b.max_tokens), url=url, campaign=name)
    coordinator = Coordinator(engine, name, has=archive.has, lease_s=lease_s).start()
    return SharedState(name=name, url=url, archive=archive,
                       cache=SqlResponseCache(url=url, campaign=name), budget=budget,
                       coordinator=coordinator, new=new)


def start_shared_tracker(tracker: Any, shared: SharedState, params: dict[str, Any],
                         models: dict[str, str]) -> None:
    """Several workers, one tracking server: one experiment (the campaign's name), one
    parent run (made by one worker), and each candidate's run logged once.

    Each worker logs the records it committed itself (``tracker.owned``, bound to
    the campaign's ``committed`` set by the builder); the worker that runs the
    final test then logs any record the server still lacks (a worker killed
    between its commit and its MLflow call). With no server, each worker's own
    store mirrors the whole campaign instead.
    """
    tracker.owned = lambda _cid: False  # until the builder binds the campaign's own records
    shared.coordinator.once("~mlflow-parent", lambda: tracker.start(params, models=models))
    tracker.start(params, models=models)  # finds the parent run; params already logged stay
