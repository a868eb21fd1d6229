"""A new campaign's MLflow sqlite store, copied from a per-user template.

MLflow creates a sqlite store by running its whole chain of schema migrations,
about two seconds of CPU for every new campaign (and for every test that runs
one). The result is the same empty store each time for one MLflow version, so
the first campaign builds it once with MLflow's own code, keeps it in the user
cache, and every later campaign copies it. Any failure falls back to letting
MLflow create the store as usual: the template is an optimisation, never a
requirement.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from metasearch.llm.settings import default_cache_dir

__all__ = ["seed_sqlite_store", "template_path"]

_log = logging.getLogger(__name__)


def template_path(cache_dir: Path | None = None) -> Path:
    """Where the empty store of the installed MLflow version is kept."""
    import mlflow

    return (cache_dir or default_cache_dir()) / "mlflow" / f"empty-store-{mlflow.__version__}.db"


def seed_sqlite_store(db: Path, artifact_root: Path, *, cache_dir: Path | None = None) -> bool:
    """Put an empty, fully migrated MLflow store at ``db`` unless one is there.

    The template's ``Default`` experiment points at ``artifact_root/0``, as it
    would had MLflow created the store for this campaign. Returns whether the
    template was used.
    """
    if db.exists():
        return False
    try:
        template = template_path(cache_dir)
        if not template.exists():
            _build_template(template)
        partial = db.with_name(f".{db.name}.{os.getpid()}.partial")
        shutil.copyfile(template, partial)
        with contextlib.closing(sqlite3.connect(partial)) as con, con:
            now = int(time.time() * 1000)
            con.execute(
                "UPDATE experiments SET artifact_location = ?, creation_time = ?, "
                "last_update_time = ? WHERE experiment_id = 0",
                (str(artifact_root / "0"), now, now),
            )
        os.replace(partial, db)
        return True
    except (OSError, sqlite3.Error) as exc:  # MLflow creates the store itself then
        _log.debug("MLflow store template not used for %s: %s", db, exc)
        with contextlib.suppress(OSError, UnboundLocalError):
            partial.unlink()
        return False


def _build_template(template: Path) -> None:
    """Run MLflow's own store creation once, in a scratch directory, then publish atomically."""
    from mlflow import MlflowClient

    template.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=template.parent) as tmp:
        built = Path(tmp) / "store.db"
        MlflowClient(tracking_uri=f"sqlite:///{built}").search_experiments()
        os.replace(built, template)
