"""One search worker of a shared toy campaign, in its own process, for tests/test_postgres_workers.py.

    python tests/postgres_worker_kit.py URL CAMPAIGN DIR [--delay S] [--max-calls N]
        [--lease S] [--parallel N] [--generations G] [--width W] [--strategy random|optuna|hybrid]
        [--max-search-calls N]

The campaign is the toy suite with the random strategy, or the optuna one on a
study in the same database (no meta model either way), or hybrid (the scripted
meta model of test_hybrid_strategy, its studies in the database), and the
scripted task model; its archive, response cache and budget are the
shared database ones, and a :class:`Coordinator` makes it one worker of
CAMPAIGN. Every reply the worker is billed for is appended to
``DIR/paid.log`` after it is cached (so a kill can lose a line, never add
one): a key in two workers' logs was paid twice. ``DIR/worker.json`` names
the worker; ``DIR/result.json`` says how it ended.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # test_hybrid_strategy

from metasearch.llm.settings import BudgetSettings  # noqa: E402
from metasearch.llm.shared import SqlBudget, SqlResponseCache  # noqa: E402
from metasearch.search.hybrid import open_shared_studies  # noqa: E402
from metasearch.search.optuna import (  # noqa: E402
    OptunaSettings,
    OptunaStrategy,
    open_shared_study,
)
from metasearch.search.random import RandomStrategy  # noqa: E402
from metasearch.search.spaces import load_space  # noqa: E402
from metasearch.store import db  # noqa: E402
from metasearch.store.coordinator import Coordinator  # noqa: E402
from metasearch.store.sql_archive import SqlArchive  # noqa: E402
from metasearch.testing.campaigns import ScriptedModel, close_campaign, toy_campaign  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class PaidLog(SqlResponseCache):
    """The shared cache, logging each billed reply's key once it is stored."""

    def __init__(self, log: Path, **kw: Any) -> None:
        super().__init__(**kw)
        self.log, self._lock = log, threading.Lock()

    def set(self, key: str, value: dict[str, Any]) -> None:
        super().set(key, value)
        with self._lock:
            fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (key + "\n").encode())
            finally:
                os.close(fd)


class SlowModel(ScriptedModel):
    def __init__(self, delay_s: float, meta: Any = None) -> None:
        super().__init__(meta)
        self.delay_s = delay_s

    def __call__(self, req: Any) -> str:
        if self.delay_s:
            threading.Event().wait(self.delay_s)
        return super().__call__(req)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("campaign")
    p.add_argument("dir", type=Path)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--max-calls", type=int, default=None)
    p.add_argument("--lease", type=float, default=2.0)
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--generations", type=int, default=2)
    p.add_argument("--width", type=int, default=3)
    p.add_argument("--strategy", choices=("random", "optuna", "hybrid"),
                   default="random")
    p.add_argument("--max-search-calls", type=int, default=None)
    a = p.parse_args()
    a.dir.mkdir(parents=True, exist_ok=True)
    flat = {"suite.name": "toy", "search.strategy": a.strategy, "search.width": a.width,
            "search.generations": a.generations, "budget.max_calls": a.max_calls,
            "run.out": str(a.dir)}
    db.join_campaign(db.open_engine(a.url), a.campaign, flat)
    archive = SqlArchive.open(a.url, campaign=a.campaign, root=a.dir)
    cache = PaidLog(a.dir / "paid.log", url=a.url, campaign=a.campaign)
    budget = SqlBudget(BudgetSettings(max_calls=a.max_calls), url=a.url, campaign=a.campaign)
    coordinator = Coordinator(archive.engine, a.campaign, has=archive.has, lease_s=a.lease,
                              poll_s=0.1).start()
    (a.dir / "worker.json").write_text(json.dumps({"worker": coordinator.worker,
                                                   "pid": os.getpid()}))
    space = load_space(ROOT / "search_spaces/reasoning.toml")

    def strategy(_gw: Any, _n: int) -> Any:
        if a.strategy == "random":
            return RandomStrategy(space=space, generations=a.generations, width=a.width, seed=0)
        shared = SimpleNamespace(name=a.campaign, url=a.url, coordinator=coordinator)
        if a.strategy == "hybrid":
            from test_hybrid_strategy import hybrid

            return hybrid(a.dir, _gw, generations=a.generations, width=a.width, trials=3,
                          claims=coordinator, studies=open_shared_studies(shared, a.dir))
        settings = OptunaSettings(space=str(ROOT / "search_spaces/reasoning.toml"),
                                  width=a.width, seed=0, startup_trials=2)
        study = open_shared_study(shared, a.dir, settings, space)
        return OptunaStrategy(space=space, study=study, settings=settings,
                              generations=a.generations, claims=coordinator)

    meta = None
    if a.strategy == "hybrid":
        from test_hybrid_strategy import hybrid_reply as meta
    campaign = toy_campaign(a.dir, SlowModel(a.delay, meta), strategy, parallel=a.parallel,
                            archive=archive, cache=cache, budget=budget,
                            max_search_calls=a.max_search_calls)
    campaign.coordinator = coordinator
    try:
        result = campaign.run()
    finally:
        coordinator.close()
        close_campaign(campaign)
    tested = [r.id for r in result.records if r.test is not None]
    (a.dir / "result.json").write_text(json.dumps({
        "stopped": result.stopped, "tester": coordinator.tester(), "tested": tested,
        "records": [r.id for r in result.records]}))


if __name__ == "__main__":
    main()
