"""A toy suite, a scripted model and a campaign wired with them: fast, offline, deterministic.

The scripted task model answers each task's gold answer or a wrong one by a
hash of the whole request, so two different agents score differently, the
same agent always scores the same, and no answer depends on timing. The meta
model's replies come from a function the caller gives (strategies that never
call a meta model give none).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from metasearch.campaign.loop import Campaign
from metasearch.campaign.summary import prior_spend
from metasearch.execution.inprocess import InProcessRunner
from metasearch.llm.billed_log import BILLED_FILE, BilledLog
from metasearch.llm.budget import Budget
from metasearch.llm.cache import ResponseCache
from metasearch.llm.scripted import scripted_gateway
from metasearch.llm.settings import BudgetSettings
from metasearch.llm.types import LLMRequest
from metasearch.runtime.seeds import SeedAgent
from metasearch.runtime.settings import AgentSettings
from metasearch.scoring import numeric_match
from metasearch.store.archive import Archive
from metasearch.suites.registry import Suite
from metasearch.suites.task import Task

TASK_MODEL = "local/task-scripted"
META_MODEL = "local/meta-scripted"

TOY_TASKS: tuple[Task, ...] = tuple(
    Task(id=f"t{i:02d}", question=f"Bea has {7 + i} pens and finds {2 * i + 1} more. How many?",
         answer=str(8 + 3 * i))
    for i in range(16)
)
TOY_SUITE = Suite(name="toy", description="Count pens: add two numbers.",
                  answer_hint="an integer", scorer=numeric_match, source="metasearch.testing")


def toy_agent(calls: int = 1, instruction: str = "Solve it step by step.") -> str:
    """A valid agent making ``calls`` sequential LLM calls per task."""
    body = "".join(
        f"    thinking, answer = a([taskInfo], {instruction + f' (pass {k})'!r})\n"
        for k in range(calls)
    )
    return ("def forward(self, taskInfo):\n"
            "    a = LLMAgentBase(['thinking', 'answer'], 'Solver')\n" + body + "    return answer\n")


class ScriptedModel:
    """Both models of a campaign; thread-safe, and a pure function of each request.

    ``meta(request) -> str`` answers role ``meta``; the task model answers
    right on about half the (agent, task) pairs, chosen by a hash.
    """

    def __init__(self, meta: Callable[[LLMRequest], str] | None = None) -> None:
        self.meta = meta
        self._lock = threading.Lock()
        self.requests: list[LLMRequest] = []

    def __call__(self, req: LLMRequest) -> str:
        with self._lock:
            self.requests.append(req)
        if req.role == "meta":
            if self.meta is None:
                raise AssertionError("this strategy called the meta model, but none was scripted")
            return self.meta(req)
        text = "\n".join(m["content"] for m in req.messages)
        task = next((t for t in TOY_TASKS if t.question in text), None)
        if task is None:
            return "## thinking\nok\n\n## answer\n0"
        digest = hashlib.sha256(f"{text}|{req.sample_index}".encode()).digest()
        right = digest[0] % 2 == 0
        gold = int(task.answer)
        return f"## thinking\nI add them.\n\n## answer\n{gold if right else gold + 1}"

    def calls(self, role: str) -> list[LLMRequest]:
        with self._lock:
            return [r for r in self.requests if r.role == role]


def seed_agent(name: str = "toy_seed", calls: int = 1) -> SeedAgent:
    return SeedAgent(name=name, thought=f"The {name} seed.", code=toy_agent(calls), path="")


def toy_campaign(
    directory: Path,
    model: ScriptedModel,
    make_strategy: Callable[[Any, int], Any],
    *,
    parallel: int = 1,
    seeds: Sequence[SeedAgent] | None = None,
    val: int = 6,
    test: int = 4,
    max_calls: int | None = None,
    clock: Callable[[], float] | None = None,
    max_search_s: float | None = None,
    pruning: bool = False,
    max_search_calls: int | None = None,
    archive: Any = None,
    cache: Any = None,
    budget: Any = None,
) -> Campaign:
    """A campaign over the toy suite; ``make_strategy(gateway, parallel)`` builds the strategy.

    The response cache lives on disk in ``directory`` (so a resumed run
    replays from it) and the budget counts what earlier runs spent. Close it
    with :func:`close_campaign`. ``archive``, ``cache`` and ``budget`` replace the
    directory's own (the shared database ones of a ``--worker``, say).
    """
    own = archive is None  # the directory's own archive: its log of billed calls too
    archive = archive if archive is not None else Archive.open(directory)
    budget = budget if budget is not None else Budget(BudgetSettings(max_calls=max_calls))
    budget.add_prior(**prior_spend(archive))
    if cache is None:
        cache = ResponseCache(directory=directory / "cache" / "responses")
    gateway = scripted_gateway(model, cache=cache, budget=budget, default_concurrency=8)
    if own:  # as build_campaign
        gateway.billed_log = BilledLog(Path(directory) / BILLED_FILE)
    settings = AgentSettings(model=TASK_MODEL, answer_hint=TOY_SUITE.answer_hint,
                             protocol="sections", max_tokens=64, threads=4)
    kw: dict[str, Any] = {} if clock is None else {"clock": clock}
    return Campaign(
        directory=directory, archive=archive, strategy=make_strategy(gateway, parallel),
        runner=InProcessRunner(gateway=gateway), gateway=gateway, suite=TOY_SUITE,
        val_tasks=list(TOY_TASKS[:val]), test_tasks=list(TOY_TASKS[val:val + test]),
        seeds=list(seeds if seeds is not None else [seed_agent()]), settings=settings,
        parallel_candidates=parallel, pruning=pruning, minibatch=3,
        max_search_s=max_search_s, max_search_calls=max_search_calls, **kw,
    )


def close_campaign(campaign: Campaign) -> None:
    campaign.gateway.close()
    campaign.archive.close()


def comparable(records: Sequence[Any]) -> list[tuple[Any, ...]]:
    """What must not change between equivalent runs: everything but timings and cache hits."""
    out = []
    for r in records:
        out.append((
            r.id, r.name, r.generation, r.status, re.sub(r"\d+\.\d+ s", "", r.reason),
            tuple(r.parent_ids), r.fingerprint, r.strategy, r.calls,
            tuple(sorted(r.val.scores.items())) if r.val else None,
            tuple(sorted(r.test.scores.items())) if r.test else None,
        ))
    return out
