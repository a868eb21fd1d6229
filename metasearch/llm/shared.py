"""The response cache and the budget on the shared database, for several workers.

:class:`SqlResponseCache` keeps the diskcache one's keys (:func:`cache_key`)
in a table, so a reply one worker has paid for is a hit for every other
worker of the campaign. :class:`SqlBudget` keeps the campaign's spend in one
row: a call is reserved by one conditional ``UPDATE`` (``calls = calls + 1``
only while every cap still holds), which the database runs atomically
across processes and machines, so the call cap is exact for any number of
workers. Spend is counted in the database from the first call, so a
resumed or joining worker adds nothing from the records (``add_prior`` is a
no-op).

A worker killed between a reservation and its reply leaves that one call
counted: the caps err on the side of spending less, never more. Both commit
without waiting for the server's WAL flush (``db.open_engine(durable=False)``):
atomicity and what other workers see are unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from metasearch.llm.budget import Budget, BudgetUsage
from metasearch.llm.settings import BudgetSettings
from metasearch.store import db

__all__ = ["SqlBudget", "SqlResponseCache"]


class SqlResponseCache:
    """The :class:`~metasearch.llm.cache.ResponseCache` interface on the ``ms_cache`` table."""

    def __init__(self, *, url: str, campaign: str, enabled: bool = True) -> None:
        self.engine = db.open_engine(url, durable=False)
        self.campaign, self.enabled = campaign, enabled

    def get(self, key: str) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        t = db.cache
        with self.engine.connect() as conn:
            text = conn.execute(sa.select(t.c.value).where(
                t.c.campaign == self.campaign, t.c.key == key)).scalar()
        value = json.loads(text) if text is not None else None
        return value if isinstance(value, dict) else None

    def set(self, key: str, value: dict[str, Any]) -> None:
        if not self.enabled:
            return
        t = db.cache
        text = json.dumps(value, ensure_ascii=False, default=str)
        try:
            with self.engine.begin() as conn:
                conn.execute(t.insert().values(campaign=self.campaign, key=key, value=text))
        except sa.exc.IntegrityError:  # another worker stored the same reply first
            pass

    def __len__(self) -> int:
        t = db.cache
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t).where(
                t.c.campaign == self.campaign)).scalar() or 0)

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every (key, reply) of this campaign, for ``metasearch cache export``."""
        t = db.cache
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.key, t.c.value).where(
                t.c.campaign == self.campaign)).all()
        for key, text in rows:
            value = json.loads(text)
            if isinstance(value, dict):
                yield key, value

    def clear(self) -> None:
        t = db.cache
        with self.engine.begin() as conn:
            conn.execute(t.delete().where(t.c.campaign == self.campaign))

    def close(self) -> None:
        pass  # the engine is shared by the process


class SqlBudget(Budget):
    """:class:`~metasearch.llm.budget.Budget` with its counters in one database row."""

    def __init__(self, settings: BudgetSettings | None = None, *, url: str,
                 campaign: str) -> None:
        super().__init__(settings)
        self.engine = db.open_engine(url, durable=False)
        self.campaign = campaign
        t = db.budget
        try:
            with self.engine.begin() as conn:
                conn.execute(t.insert().values(campaign=campaign, calls=0, usd=0.0, tokens=0))
        except sa.exc.IntegrityError:
            pass  # the campaign's row exists: another worker (or an earlier run) made it

    def _where(self) -> Any:
        return db.budget.c.campaign == self.campaign

    def usage(self) -> BudgetUsage:
        t = db.budget
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.c.usd, t.c.calls, t.c.tokens).where(
                self._where())).one()
        return BudgetUsage(float(row.usd), int(row.calls), int(row.tokens))

    def _refuse(self) -> None:
        """Raise the cap that is reached, with the in-process message."""
        u = self.usage()
        with self._lock:
            self._usd, self._calls, self._tokens = u.usd, u.calls, u.tokens
            self._check_locked()

    def check(self) -> None:
        self._refuse()

    def reserve(self) -> None:
        """Count one call if every cap still holds, in one atomic ``UPDATE``; else refuse."""
        t, s = db.budget, self.settings
        cond = [self._where()]
        for limit, col in ((s.max_calls, t.c.calls), (s.max_usd, t.c.usd),
                           (s.max_tokens, t.c.tokens)):
            if limit is not None:
                cond.append(col < limit)
        while True:
            with self.engine.begin() as conn:
                done = conn.execute(t.update().where(*cond).values(calls=t.c.calls + 1))
            if done.rowcount == 1:
                return
            self._refuse()  # raises, unless another worker released a call meanwhile: retry

    def release(self) -> None:
        t = db.budget
        with self.engine.begin() as conn:
            conn.execute(t.update().where(self._where()).values(calls=t.c.calls - 1))

    def charge(self, *, usd: float, tokens: int, reserved: bool = True) -> None:
        t = db.budget
        with self.engine.begin() as conn:
            conn.execute(t.update().where(self._where()).values(
                usd=t.c.usd + float(usd), tokens=t.c.tokens + int(tokens),
                calls=t.c.calls + (0 if reserved else 1)))

    def add_prior(self, *, usd: float = 0.0, calls: int = 0, tokens: int = 0) -> None:
        """Nothing to add: the database row already holds every run's and worker's spend."""
