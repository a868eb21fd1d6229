"""The library's front door: run a campaign, score an agent. The CLI is a shell over these.

Example::

    import metasearch

    config = metasearch.load_config("experiments/quickstart.toml",
                                    {"run.out": "runs/mine", "run.parallel_candidates": 2})
    result = metasearch.run_campaign(config)
    print(result.best.name, result.best.val.mean, result.paired)

    ev = metasearch.evaluate("archive/chain_of_thought.py", suite="arith", limit=8)
    print(ev.summary()["score"])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from metasearch.diskfull import campaign_disk_full, is_disk_full
from metasearch.errors import AgentCodeError, DataError
from metasearch.runtime.call_cap import DEFAULT_MAX_CALLS_PER_TASK

SANDBOX_MODES = ("auto", "bwrap", "unshare", "none")


def run_campaign(
    config: Any,
    *,
    resume: bool = False,
    tracking_uri: str | None = None,
    reporter: Any = None,
    overrides: Mapping[str, Any] | None = None,
    config_text: str | None = None,
    storage: str | None = None,
    worker: bool = False,
) -> Any:
    """Run (or ``resume``) one campaign and return its ``CampaignResult``.

    ``storage`` (a database URL) keeps its records, response cache and budget
    there; ``worker`` joins a campaign other processes are running on it.

    ``config`` is a ``CampaignConfig`` or the path of a campaign TOML file
    (``overrides`` are dotted keys merged before validation); the file's text
    (or ``config_text``) is kept as the campaign's ``config.toml``. Everything
    the campaign started is closed when it returns or raises; the archive
    keeps what was computed either way. A full disk (or quota) anywhere in the
    campaign directory raises :class:`~metasearch.diskfull.DiskFullError`,
    which names the directory; ``resume=True`` continues once there is room.
    """
    from metasearch.campaign.build import build_campaign, close_campaign
    from metasearch.config import load_config

    if isinstance(config, str | Path):
        config_text = Path(config).read_text(encoding="utf-8") if Path(config).is_file() else None
        config = load_config(config, overrides)
    elif overrides:
        raise TypeError("overrides apply to a config file; pass a path, or change the config")
    try:
        campaign = build_campaign(config, resume=resume, tracking_uri=tracking_uri,
                                  reporter=reporter, config_text=config_text, storage=storage,
                                  worker=worker)
        try:
            return campaign.run()
        finally:
            close_campaign(campaign)
    except Exception as exc:  # a full disk, wherever it struck: one paragraph, then --resume
        if is_disk_full(exc):
            raise campaign_disk_full(config.run.out_dir, exc) from exc
        raise


def evaluate(
    agent: str | Path,
    *,
    suite: str = "arith",
    split: str = "validation",
    data: Path | None = None,
    limit: int | None = None,
    model: str = "local/qwen2.5-coder-0.5b",
    api_base: str | None = None,
    protocol: str = "auto",
    concurrency: int = 4,
    max_tokens: int = 768,
    seed: int = 0,
    n_val: int = 128,
    difficulty: int | None = None,
    sandbox: str = "auto",
    validate: bool = True,
    cache: bool = True,
    cache_dir: Path | None = None,
    task_timeout_s: float = 300.0,
    memory_mb: int = 2048,
    max_pids: int = 256,
    max_calls_per_task: int = DEFAULT_MAX_CALLS_PER_TASK,
    on_outcome: Callable[[Any], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> Any:
    """Score one agent (a ``.py`` path, or its source) on a suite split, in the sandbox.

    Returns an ``Evaluation`` (``summary()`` gives score, CI, calls, cost,
    cache hits and wall time). ``split="validation"`` with ``n_val`` and
    ``seed`` gives exactly the tasks a campaign with those settings sees.
    ``on_start(n_tasks)`` and ``on_outcome(outcome)`` report progress. ``memory_mb``
    and ``max_pids`` hold the agent's whole process tree, as a campaign's ``[sandbox]``;
    ``max_calls_per_task`` is a campaign's ``run.max_calls_per_task`` (0: no limit).
    """
    from metasearch.campaign.build import build_bench
    from metasearch.candidate.validate import format_findings, validate_code
    from metasearch.suites import get_suite, load_split

    if split not in ("validation", "test"):
        raise DataError(f"--split must be 'validation' or 'test', not {split!r}.")
    if sandbox not in SANDBOX_MODES:
        raise DataError(f"--sandbox must be one of {', '.join(SANDBOX_MODES)}, not {sandbox!r}.")
    if concurrency < 1:
        raise DataError(f"--concurrency must be an integer >= 1, not {concurrency}: it is how "
                        "many tasks run at once.")
    path = None if isinstance(agent, str) and "\n" in agent else Path(agent)  # else source
    code = read_agent(path) if path is not None else str(agent)
    name = path.name if path is not None else "agent"
    if validate:
        findings = validate_code(code)
        if findings:
            raise AgentCodeError(
                f"{path or 'The agent'} failed static validation, so it was not run: "
                + format_findings(findings).replace("\n", " ")
                + " Fix the code, or pass --skip-validation to run it in the sandbox anyway."
            )
    the_suite = get_suite(suite, **({"difficulty": difficulty} if difficulty is not None else {}))
    tasks = load_split(the_suite, split, data_path=data, seed=seed, n_val=n_val, n_test=None)
    if limit is not None:
        tasks = tasks[: max(0, limit)]
    if not tasks:
        raise DataError(f"The {split} split of {suite!r} has no tasks; raise --limit or --n-val.")
    if on_start is not None:
        on_start(len(tasks))
    with build_bench(the_suite, task_model=model, api_base=api_base, protocol=protocol,
                     cache_dir=cache_dir, cache_enabled=cache, concurrency=concurrency,
                     sandbox=sandbox, max_tokens=max_tokens,
                     task_timeout_s=task_timeout_s, memory_mb=memory_mb,
                     max_pids=max_pids, max_calls_per_task=max_calls_per_task) as bench:
        evaluation = bench.evaluate(code, tasks, candidate=f"eval:{name}", on_outcome=on_outcome)
        return replace(evaluation, sandbox=bench.runner.mode)


def read_agent(path: Path) -> str:
    """An agent file's source, or a one-paragraph error saying what is wrong with the path."""
    if not path.exists():
        raise AgentCodeError(f"Agent file {path} does not exist. Give the path of a .py file that "
                             "defines `def forward(self, taskInfo):` (see archive/ for examples).")
    if path.is_dir():
        raise AgentCodeError(f"{path} is a directory; give one agent .py file.")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AgentCodeError(f"Cannot read agent file {path}: {exc}.") from None
