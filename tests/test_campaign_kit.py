"""The kit of the campaign tests (no tests here): a toy suite, a scripted model, a builder.

The scripted model plays both roles of a campaign:

- the **meta agent** (``role == "meta"``): replies come from a table keyed by
  candidate id and stage (``propose``, ``reflexion``, ``repair``, ``debug``);
  the n-th call of a stage gets the n-th reply (the last one repeats);
- the **task model** (``role == "task"``): it finds the question in the prompt
  and answers the gold answer or a wrong one, as the agent's instruction asks
  with a ``MODE-<mode>`` marker (see :func:`agent`).

Run as a script it is the child process of the SIGKILL tests: it builds a
campaign whose response cache lives on disk in the campaign directory, logs
the cache key of every real backend call to ``calls.log`` (one fsynced line
each) and can SIGKILL itself at a chosen point.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from metasearch.campaign.loop import Campaign  # noqa: E402
from metasearch.campaign.summary import prior_spend  # noqa: E402
from metasearch.candidate.validate import validate_code  # noqa: E402
from metasearch.execution.inprocess import InProcessRunner  # noqa: E402
from metasearch.llm import Budget, BudgetSettings, ResponseCache, scripted_gateway  # noqa: E402
from metasearch.llm.billed_log import BILLED_FILE, BilledLog  # noqa: E402
from metasearch.llm.cache import cache_key  # noqa: E402
from metasearch.llm.replies import open_owed  # noqa: E402
from metasearch.llm.types import LLMRequest  # noqa: E402
from metasearch.runtime.seeds import load_seed  # noqa: E402
from metasearch.runtime.settings import AgentSettings  # noqa: E402
from metasearch.scoring import numeric_match  # noqa: E402
from metasearch.search.adas.context import TaskBrief  # noqa: E402
from metasearch.search.adas.proposer import Proposer  # noqa: E402
from metasearch.search.adas.strategy import AdasStrategy  # noqa: E402
from metasearch.store.archive import Archive  # noqa: E402
from metasearch.suites.registry import Suite  # noqa: E402
from metasearch.suites.task import Task  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "archive"
META_MODEL = "local/meta-scripted"
TASK_MODEL = "local/task-scripted"

TASKS = [
    Task(id=f"q{i:02d}", question=f"Ann has {10 + i} apples and buys {i + 3} more. How many?",
         answer=str(13 + 2 * i))
    for i in range(16)
]
VAL = TASKS[:8]
TEST = TASKS[8:14]
VAL_IDS = {t.id for t in VAL}
SUITE = Suite(name="toy", description="Count apples: add two numbers.",
              answer_hint="an integer", scorer=numeric_match, source="generated in the test")


def agent(mode: str, *, calls: int = 1) -> str:
    """An agent whose task-model replies follow ``mode`` (see :func:`task_reply`).

    ``calls`` > 1 asks several times and returns the last answer (a
    different fingerprint and a different number of calls per task).
    """
    body = "".join(
        f"    thinking, answer = a([taskInfo], 'Solve it, attempt {k}. MODE-{mode}')\n"
        for k in range(calls)
    )
    return (
        "def forward(self, taskInfo):\n"
        f"    a = LLMAgentBase(['thinking', 'answer'], '{mode.title()} Agent')\n"
        f"{body}    return answer\n"
    )


RAISES = (
    "def forward(self, taskInfo):\n"
    "    a = LLMAgentBase(['thinking', 'answer'], 'Broken Agent')\n"
    "    thinking, answer = a([taskInfo], 'Solve it. MODE-GOOD')\n"
    "    return answer.content + 1\n"
)


def sections(code: str, name: str = "Agent", thought: str = "An idea.") -> str:
    return f"## thought\n{thought}\n\n## name\n{name}\n\n## code\n```python\n{code}```\n"


def as_json(code: str, name: str = "Agent", thought: str = "An idea.") -> str:
    return json.dumps({"thought": thought, "name": name, "code": code})


def debug_reply(code: str) -> str:
    return f"## debug_thought\nFixed the bug.\n\n## code\n```python\n{code}```\n"


def task_reply(mode: str, task: Task) -> str:
    """``GOOD`` gold everywhere; ``WRONG`` never; ``VALHIGH`` gold on validation only;
    ``TESTHIGH`` gold on test and on half of validation; ``HALF`` gold on even tasks;
    ``QUARTER`` gold on every fourth task."""
    gold = int(task.answer)
    val = task.id in VAL_IDS
    right = {
        "GOOD": True,
        "WRONG": False,
        "VALHIGH": val,
        "TESTHIGH": (not val) or int(task.id[1:]) % 2 == 0,
        "HALF": int(task.id[1:]) % 2 == 0,
        "QUARTER": int(task.id[1:]) % 4 == 0,
    }[mode]
    return f"## thinking\nI add the numbers.\n\n## answer\n{gold if right else gold + 1}"


def meta_stage(req: LLMRequest) -> str:
    last = req.messages[-1]["content"]
    if "We ran your agent on" in last or "could not be loaded" in last:
        return "debug"
    if "Review the agent you just proposed" in last or "Check your code once more" in last:
        return "reflexion"
    if ("could not read your reply" in last or "cannot be run yet" in last
            or "same as one already in the archive" in last):
        return "repair"
    return "propose"


class Script:
    """The scripted model; a picklable-free callable for ``scripted_gateway``.

    ``meta`` maps candidate id → stage → replies (a string is one reply). A
    candidate missing from the table proposes ``default(cid)``.
    """

    def __init__(
        self,
        meta: Mapping[str, Mapping[str, str | Sequence[str]]] | None = None,
        *,
        log: Path | None = None,
        kill: Any = None,
        seed_mode: str = "GOOD",
        delay_s: float = 0.0,
    ) -> None:
        self.meta = {k: dict(v) for k, v in (meta or {}).items()}
        self.log = log
        self.kill = kill  # callable(req, n_real_calls) -> bool: SIGKILL before answering
        self.delay_s = delay_s
        self.seed_mode = seed_mode  # how the task model answers agents without a MODE marker
        self.seen: Counter[tuple[str, str]] = Counter()
        self.requests: list[LLMRequest] = []

    def __call__(self, req: LLMRequest) -> str:
        self.requests.append(req)
        if self.delay_s:
            time.sleep(self.delay_s)  # an external kill then lands between calls or inside one
        if self.kill is not None and self.kill(req, len(self.requests)):
            os.kill(os.getpid(), signal.SIGKILL)
        if self.log is not None:
            with open(self.log, "a", encoding="utf-8") as f:
                stage = meta_stage(req) if req.role == "meta" else "task"
                f.write(json.dumps({"key": cache_key(req), "role": req.role,
                                    "candidate": req.candidate, "stage": stage}) + "\n")
                f.flush()
                os.fsync(f.fileno())
        if req.role == "meta":
            return self._meta(req)
        return self._task(req)

    def _meta(self, req: LLMRequest) -> str:
        cid = req.candidate or ""
        stage = meta_stage(req)
        n = self.seen[(cid, stage)]
        self.seen[(cid, stage)] += 1
        table = self.meta.get(cid)
        if table is None:
            return sections(default_code(cid), name=f"Agent {cid}")
        replies = table.get(stage, table.get("propose", ""))
        if isinstance(replies, str):
            return replies
        return replies[min(n, len(replies) - 1)]

    def _task(self, req: LLMRequest) -> str:
        user = req.messages[1]["content"]
        task = next((t for t in TASKS if t.question in user), None)
        m = re.search(r"MODE-(\w+)", user)
        mode = m.group(1) if m else self.seed_mode  # the seeds have no marker
        if task is None:  # a call without the task in it (e.g. a refine step)
            return "## thinking\nok\n\n## answer\n0"
        return task_reply(mode, task)


def default_code(cid: str) -> str:
    """A distinct, half-right agent for a slot the table does not mention."""
    n = sum(ord(c) for c in cid) % 5 + 2
    return agent("HALF", calls=n)


def make_campaign(
    directory: Path,
    script: Script,
    *,
    seeds: Sequence[str] = ("chain_of_thought",),
    generations: int = 1,
    attempts: int = 1,
    near_duplicates: bool = False,
    idea_hints: bool = False,
    reflexion_rounds: int = 0,
    repair_rounds: int = 1,
    debug_rounds: int = 1,
    pruning: bool = False,
    minibatch: int = 4,
    max_calls: int | None = None,
    max_search_calls: int | None = None,
    disk_cache: bool = False,
    tracker: Any = None,
    output_format: str = "sections",
    val: Sequence[Task] = VAL,
    test: Sequence[Task] = TEST,
    threads: int = 4,
    sandbox: str | None = None,
    parallel: int = 1,
    width: int | None = None,
) -> Campaign:
    """A campaign over the toy suite, wired like ``build_campaign`` but with test doubles."""
    archive = Archive.open(directory)
    cache = ResponseCache(directory=directory / "cache" / "responses") if disk_cache else None
    budget = Budget(BudgetSettings(max_calls=max_calls))
    budget.add_prior(**prior_spend(archive))
    gateway = scripted_gateway(script, cache=cache, budget=budget,
                               default_concurrency=1 if threads == 1 else 4)
    gateway.owed = open_owed(directory)  # as build_campaign: set by `cache import --continue-spend`
    gateway.billed_log = BilledLog(directory / BILLED_FILE)  # and its log of billed calls
    proposer = Proposer(
        complete=gateway.complete, model=META_MODEL, output_format=output_format,  # type: ignore[arg-type]
        reflexion_rounds=reflexion_rounds, repair_rounds=repair_rounds, validate=validate_code,
    )
    strategy = AdasStrategy(proposer=proposer, task=TaskBrief.from_suite(SUITE),
                            generations=generations, attempts=attempts,
                            width=width or parallel, debug_rounds=debug_rounds,
                            idea_hints=idea_hints, near_duplicates=near_duplicates)
    settings = AgentSettings(model=TASK_MODEL, answer_hint=SUITE.answer_hint,
                             protocol="sections", max_tokens=64, threads=threads)
    return Campaign(
        directory=directory, archive=archive, strategy=strategy,
        runner=runner(sandbox, gateway), gateway=gateway, suite=SUITE,
        val_tasks=list(val), test_tasks=list(test),
        seeds=[load_seed(SEEDS / f"{s}.py") for s in seeds], settings=settings,
        parallel_candidates=parallel, pruning=pruning, minibatch=minibatch, tracker=tracker,
        max_search_calls=max_search_calls,
    )


def runner(sandbox: str | None, gateway: Any) -> Any:
    """In-process (trusted test agents) or a real sandbox mode such as ``"bwrap"``."""
    if sandbox is None:
        return InProcessRunner(gateway=gateway)
    from metasearch.execution.sandbox import SandboxRunner

    return SandboxRunner(mode=sandbox, gateway=gateway, allowed_models=[TASK_MODEL])


def close(campaign: Campaign) -> None:
    getattr(campaign.runner, "close", lambda: None)()
    campaign.gateway.close()
    campaign.archive.close()


def archive_lines(directory: Path) -> list[dict[str, Any]]:
    text = (directory / "archive.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------- the child process

KILL_POINTS = {
    # the first call of the second seed: the first seed record is durable
    "after_first_seed": lambda req, n: req.candidate == "seed-self_consistency",
    # the 3rd task call of generation 1's candidate: its meta calls are done
    "mid_generation": lambda req, n: req.candidate == "g001-00" and req.role == "task"
    and _count(req, "g001-00") == 3,
    # the 8th test-split call: the first agent (6 tasks, 1 call each) has its test result
    # the 10th task call of g001-00: inside the evaluation of its debug-round fix
    "mid_debug": lambda req, n: req.candidate == "g001-00" and req.role == "task"
    and _count(req, "g001-00") == 10,
    "during_test": lambda req, n: (req.candidate or "").endswith(":test")
    and _count(req, ":test") == 8,
}
_counts: Counter[str] = Counter()
_started: set[str] = set()
_lock = threading.Lock()


def _count(req: LLMRequest, what: str) -> int:
    with _lock:
        _counts[what] += 1
        return _counts[what]


def _all_in_flight(req: LLMRequest, generation: str, n: int) -> bool:
    """True at the n-th task call of ``generation`` once its three candidates all called."""
    cid = req.candidate or ""
    if req.role != "task" or not cid.startswith(generation):
        return False
    with _lock:
        _started.add(cid)
        ready = len({c for c in _started if c.startswith(generation)}) == 3
    return ready and _count(req, generation) == n


# with three candidates in flight (parallel = 3): SIGKILL lands among their calls
PAR_KILL_POINTS = {
    "par_gen1": lambda req, n: _all_in_flight(req, "g001-", 12),
    "par_debug": lambda req, n: req.candidate == "g001-00" and req.role == "task"
    and _count(req, "g001-00") == 12,
    "par_gen2": lambda req, n: _all_in_flight(req, "g002-", 8),
}
KILL_POINTS.update(PAR_KILL_POINTS)


def child(directory: Path, kill_point: str, tracking_uri: str | None, delay_s: float = 0.0,
          parallel: int = 1, width: int = 1) -> None:
    """One campaign run (2 seeds, 2 generations, test) that may SIGKILL itself.

    With ``width`` 3 each generation has three candidates (``CHILD_PAR_META``),
    of which ``parallel`` run at once.
    """
    from metasearch.store.tracking import Tracker

    kill = KILL_POINTS.get(kill_point)
    meta = CHILD_PAR_META if width > 1 else CHILD_META
    script = Script(meta, log=directory / "calls.log", kill=kill, delay_s=delay_s)
    tracker = None
    if tracking_uri:
        tracker = Tracker(tracking_uri=tracking_uri, experiment_name=directory.name,
                          artifact_location=(directory / "mlartifacts").as_uri())
        tracker.start({"search.generations": "2"}, models={"meta": META_MODEL})
    campaign = make_campaign(directory, script, seeds=("chain_of_thought", "self_consistency"),
                             generations=2, disk_cache=True, tracker=tracker, threads=1,
                             pruning=True, minibatch=4, parallel=parallel, width=width)
    if kill_point == "after_append":  # right after a record is durable, before MLflow sees it
        add = campaign.archive.add

        def add_then_die(record: Any, *, code: str | None = None) -> Any:
            stored = add(record, code=code)
            if record.id == "g001-00":
                os.kill(os.getpid(), signal.SIGKILL)
            return stored

        campaign.archive.add = add_then_die  # type: ignore[method-assign]
    result = campaign.run()
    close(campaign)
    print(json.dumps({"stopped": result.stopped, "n": len(result.records)}))


CHILD_META: dict[str, dict[str, Any]] = {
    # g001-00 raises on every task: a debug round fixes it
    "g001-00": {"propose": sections(RAISES, "Broken"), "debug": debug_reply(agent("GOOD", calls=2))},
    "g002-00": {"propose": sections(agent("HALF"), "Half")},
}


CHILD_PAR_META: dict[str, dict[str, Any]] = {
    # three lanes a generation: one debugged, one pruned early, one plain
    "g001-00": {"propose": sections(RAISES, "Broken"), "debug": debug_reply(agent("GOOD", calls=2))},
    "g001-01": {"propose": sections(agent("WRONG", calls=3), "Wrong")},
    "g001-02": {"propose": sections(agent("HALF", calls=2), "Half")},
    "g002-00": {"propose": sections(agent("QUARTER"), "Quarter")},
    "g002-01": {"propose": sections(agent("VALHIGH", calls=2), "ValHigh")},
    "g002-02": {"propose": sections(agent("TESTHIGH"), "TestHigh")},
}


@functools.cache
def mlflow_store() -> str:
    """One sqlite MLflow store per test process: creating its tables takes seconds."""
    from mlflow import MlflowClient

    root = Path(tempfile.mkdtemp(prefix="metasearch-campaign-mlflow-"))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).search_experiments()
    return uri


def candidate_runs(uri: str, experiment: str) -> list[Any]:
    """Every candidate run of an experiment, duplicates included."""
    from mlflow import MlflowClient

    c = MlflowClient(tracking_uri=uri)
    exp = c.get_experiment_by_name(experiment)
    return list(c.search_runs([exp.experiment_id], "tags.`metasearch.role` = 'candidate'",
                              max_results=1000))


if __name__ == "__main__":
    child(Path(sys.argv[1]), sys.argv[2], sys.argv[3] or None, float(sys.argv[4]),
          *(int(a) for a in sys.argv[5:7]))
