"""The shared-state database: one SQLAlchemy engine and the tables every worker shares.

Several search workers (``metasearch run CONFIG --worker --storage URL``) on
one or many machines share one campaign through these tables: the archive
(:mod:`metasearch.store.sql_archive`), the slot claims and workers
(:mod:`metasearch.store.coordinator`), the response cache and the budget
counter (:mod:`metasearch.llm.shared`). Every row carries its campaign's
name, so one database holds many campaigns. PostgreSQL is the shared
backend; sqlite (``sqlite:///path.db``) serves one machine and the tests.

``postgresql://`` URLs are opened with psycopg 3 (``pip install
'metasearch[cluster]'``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from metasearch.errors import ConfigError
from metasearch.urls import redact, without_password

__all__ = ["METADATA", "campaign_hash", "is_db_url", "join_campaign", "open_engine",
           "redact", "split_campaign", "without_password"]

METADATA = sa.MetaData()

campaigns = sa.Table(
    "ms_campaigns", METADATA,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("config_hash", sa.String(64), nullable=False),
    sa.Column("config_json", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
records = sa.Table(
    "ms_records", METADATA,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("campaign", sa.String(200), nullable=False),
    sa.Column("cid", sa.String(128), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.UniqueConstraint("campaign", "cid", name="ms_records_one_per_id"),
)
tests = sa.Table(
    "ms_tests", METADATA,
    sa.Column("campaign", sa.String(200), primary_key=True),
    sa.Column("cid", sa.String(128), primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
)
states = sa.Table(
    "ms_states", METADATA,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("campaign", sa.String(200), nullable=False, index=True),
    sa.Column("body", sa.Text, nullable=False),
)
files = sa.Table(
    "ms_files", METADATA,
    sa.Column("campaign", sa.String(200), primary_key=True),
    sa.Column("path", sa.String(300), primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
)
claims = sa.Table(
    "ms_claims", METADATA,
    sa.Column("campaign", sa.String(200), primary_key=True),
    sa.Column("cid", sa.String(128), primary_key=True),
    sa.Column("worker", sa.String(200), nullable=False),
    sa.Column("lease_until", sa.Float, nullable=False),
)
workers = sa.Table(
    "ms_workers", METADATA,
    sa.Column("campaign", sa.String(200), primary_key=True),
    sa.Column("worker", sa.String(200), primary_key=True),
    sa.Column("heartbeat", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
)
cache = sa.Table(
    "ms_cache", METADATA,
    sa.Column("campaign", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
budget = sa.Table(
    "ms_budget", METADATA,
    sa.Column("campaign", sa.String(200), primary_key=True),
    sa.Column("calls", sa.Integer, nullable=False, default=0),
    sa.Column("usd", sa.Float, nullable=False, default=0.0),
    sa.Column("tokens", sa.Integer, nullable=False, default=0),
)


def is_db_url(text: str) -> bool:
    """A database URL this store opens (not a directory path)."""
    return text.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres", "sqlite")


def split_campaign(location: str) -> tuple[str, str | None]:
    """``postgresql://host/db#name`` -> (URL, campaign name or None)."""
    url, _, name = location.partition("#")
    return url, (name or None)


def driver_url(url: str) -> str:
    """Plain ``postgresql://`` (and ``postgres://``) go through psycopg 3."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


_ENGINES: dict[tuple[str, bool], sa.Engine] = {}


def open_engine(url: str, *, durable: bool = True) -> sa.Engine:
    """One engine per URL in a process, its tables created; a clear error if it cannot open.

    ``durable=False`` (the response cache and the budget counter) commits on PostgreSQL
    without waiting for the WAL flush (``synchronous_commit = off``): as atomic and as
    visible to other workers at once, but a crash of the *server* may forget its last
    few hundred milliseconds of cache entries and counts. That halves the database cost of
    a billed call; records, claims and checkpoints always wait for the flush.
    """
    url = driver_url(url)
    if (url, durable) in _ENGINES:
        return _ENGINES[(url, durable)]
    if not is_db_url(url):
        raise ConfigError(f"{redact(url)!r} is not a database URL. Give postgresql://user:"
                          "password@host:5432/db (shared by several workers) or sqlite:///path.db.")
    try:
        kw: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            kw["connect_args"] = {"timeout": 60}
        else:
            kw |= {"pool_size": 4, "max_overflow": 8}
            if not durable:
                kw["connect_args"] = {"options": "-c synchronous_commit=off"}
        engine = sa.create_engine(url, **kw)
        if url.startswith("sqlite"):
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        METADATA.create_all(engine, checkfirst=True)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"Cannot open {redact(url)}: the database driver {exc.name!r} is not installed. "
            "Install the cluster extra: pip install 'metasearch[cluster]'.") from None
    except sa.exc.SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(
            f"Cannot open the shared-state database {redact(url)}: {first}. Check that the "
            "server is running and reachable, and the user, password and database name in "
            "the URL (postgresql://user:password@host:5432/db).") from None
    _ENGINES[(url, durable)] = engine
    return engine


def _sqlite_pragmas(conn: Any, _record: Any) -> None:
    cur = conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()


#: Flat config keys that may differ between the workers of one campaign (where and
#: how fast each runs); every other key must match for a worker to join.
PER_WORKER = ("run.", "search.optuna.storage")


def campaign_hash(flat_params: Mapping[str, Any]) -> str:
    """sha256 of the config fields every worker of a campaign must share."""
    shared = {k: str(v) for k, v in flat_params.items() if not k.startswith(PER_WORKER)}
    return hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()


def join_campaign(engine: sa.Engine, name: str, flat_params: Mapping[str, Any]) -> bool:
    """Create the campaign row, or check that the config matches it; True if it was new.

    A worker whose suite, models, search, budget or pruning settings differ
    from the campaign's is refused: its scores would not be comparable.
    """
    digest = campaign_hash(flat_params)
    shared = {k: str(v) for k, v in flat_params.items() if not k.startswith(PER_WORKER)}
    with engine.begin() as conn:
        row = conn.execute(sa.select(campaigns).where(campaigns.c.name == name)).first()
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(campaigns.insert().values(
                        name=name, config_hash=digest, config_json=json.dumps(shared),
                        created_at=time.time()))
                return True
            except sa.exc.IntegrityError:  # another worker created it a moment ago
                row = conn.execute(sa.select(campaigns).where(campaigns.c.name == name)).one()
    if row.config_hash != digest:
        theirs = json.loads(row.config_json)
        diff = sorted(k for k in set(theirs) | set(shared) if theirs.get(k) != shared.get(k))
        what = "; ".join(f"{k} is {theirs.get(k)!r} there, {shared.get(k)!r} here"
                         for k in diff[:6])
        raise ConfigError(
            f"Cannot join campaign {name!r}: its config differs from this one ({what}). "
            "Every worker of a campaign runs the same config (only run.* settings may "
            "differ); use the campaign's config, or a new run.out name for a new campaign.")
    return False
