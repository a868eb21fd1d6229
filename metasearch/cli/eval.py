"""``metasearch eval``: score one agent file on a suite split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from metasearch.cli._output import print_json, quiet_native_logs, sandbox_notices


def eval_cmd(
    agent: Annotated[Path, typer.Argument(help="Agent file: the source of `def forward(self, taskInfo)`.")],
    suite: Annotated[str, typer.Option(help="Task suite (see `metasearch suites`).")] = "arith",
    data: Annotated[Path | None, typer.Option(help="Data file for suites that need one.")] = None,
    split: Annotated[str, typer.Option(help="validation or test.")] = "validation",
    limit: Annotated[int | None, typer.Option(help="Use only the first N tasks of the split.")] = None,
    model: Annotated[str, typer.Option(help="Task model (litellm string or local/<name>).")] = "local/qwen2.5-coder-0.5b",
    api_base: Annotated[str | None, typer.Option(help="Endpoint URL for the model, e.g. a vLLM server.")] = None,
    protocol: Annotated[str, typer.Option(help="Reply protocol: auto, json or sections.")] = "auto",
    concurrency: Annotated[int, typer.Option(help="Tasks run at once (threads in the worker).")] = 4,
    max_tokens: Annotated[int, typer.Option(help="max_tokens of each agent call.")] = 768,
    seed: Annotated[int, typer.Option(help="Seed of the validation/test split.")] = 0,
    n_val: Annotated[int, typer.Option(help="Validation split size (the campaign's n_val).")] = 128,
    difficulty: Annotated[int | None, typer.Option(help="arith only: difficulty 1-5.")] = None,
    sandbox: Annotated[str, typer.Option(help="Sandbox mode: auto, bwrap, unshare or none.")] = "auto",
    skip_validation: Annotated[bool, typer.Option("--skip-validation", help="Skip static checks (the sandbox stays on).")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the response cache.")] = False,
    cache_dir: Annotated[Path | None, typer.Option(help="Response cache directory (default ~/.cache/metasearch; local weights always stay in the user cache).")] = None,
    task_timeout: Annotated[float, typer.Option(help="Wall-clock seconds per task.")] = 300.0,
    max_calls_per_task: Annotated[int, typer.Option(help="LLM calls the agent may make per task before they are refused (a campaign's run.max_calls_per_task; 0: no limit).")] = 50,
    memory_mb: Annotated[int, typer.Option(help="Memory of the agent's processes together, in MB (a campaign's sandbox.memory_mb).")] = 2048,
    max_pids: Annotated[int, typer.Option(help="Processes and threads of the agent together (a campaign's sandbox.max_pids).")] = 256,
    baseline: Annotated[Path | None, typer.Option(help="A second agent file scored on the same tasks, then A − baseline paired, with its 95% CI (e.g. archive/chain_of_thought.py).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Score AGENT on a suite split in the sandbox, with a 95% bootstrap CI.

    With ``--baseline``, the second agent runs on the same tasks with the same settings, and
    the paired difference says whether AGENT is better there, not just whether its CI is higher.
    """
    from metasearch.api import evaluate, read_agent

    if baseline is not None:
        read_agent(baseline)  # a bad path fails now, before the first agent spends anything
    _check_options(concurrency=concurrency, max_tokens=max_tokens, seed=seed, n_val=n_val,
                   difficulty=difficulty, task_timeout=task_timeout, limit=limit,
                   cache_dir=cache_dir, protocol=protocol, memory_mb=memory_mb,
                   max_pids=max_pids, max_calls_per_task=max_calls_per_task)
    quiet_native_logs(cache_dir)

    def score(path: Path) -> tuple[dict[str, Any], Any]:
        with sandbox_notices():
            evaluation = _run_with_progress(
                lambda start, cb: evaluate(
                    path, suite=suite, split=split, data=data, limit=limit, model=model,
                    api_base=api_base, protocol=protocol, concurrency=concurrency,
                    max_tokens=max_tokens, seed=seed, n_val=n_val, difficulty=difficulty,
                    sandbox=sandbox, validate=not skip_validation, cache=not no_cache,
                    cache_dir=cache_dir, task_timeout_s=task_timeout, memory_mb=memory_mb,
                    max_pids=max_pids, max_calls_per_task=max_calls_per_task,
                    on_outcome=cb, on_start=start),
                quiet=as_json, label=f"{path.name} on {suite}/{split}",
            )
        return evaluation.summary() | {"suite": suite, "split": split, "model": model,
                                       "agent": str(path), "sandbox": evaluation.sandbox}, evaluation

    summary, evaluation = score(agent)
    if not as_json:
        _print_table(summary, evaluation)
    if baseline is None:
        if as_json:
            print_json(summary)
        return
    base, base_eval = score(baseline)
    diff = _paired(evaluation, base_eval)
    paired = {k: getattr(diff, k) for k in ("n", "mean_diff", "ci_low", "ci_high", "p_value")}
    if as_json:
        print_json(summary | {"baseline": base, "paired": paired})
        return
    _print_table(base, base_eval)
    from rich.console import Console

    Console().print(
        f"{agent.name} − {baseline.name} on the same {paired['n']} tasks: "
        f"{100 * paired['mean_diff']:+.1f} points [95% CI {100 * paired['ci_low']:+.1f}, "
        f"{100 * paired['ci_high']:+.1f}], p (agent ≤ baseline) = {paired['p_value']:.3f}: "
        f"{diff.verdict('agent', 'baseline')}", highlight=False, soft_wrap=True)


def _paired(a: Any, b: Any) -> Any:
    """The paired bootstrap of two evaluations of the same task list."""
    from metasearch.evaluation.stats import paired_by_task

    d = paired_by_task({r.task_id: r.score for r in a.result.results},
                       {r.task_id: r.score for r in b.result.results})
    assert d is not None  # the same task list, so never disjoint
    return d


def _check_options(*, concurrency: int, max_tokens: int, seed: int, n_val: int,
                   difficulty: int | None, task_timeout: float, limit: int | None,
                   cache_dir: Path | None, protocol: str, memory_mb: int = 2048,
                   max_pids: int = 256, max_calls_per_task: int = 50) -> None:
    """Every number by the rule of its config field, and the cache directory, before any work."""
    from pydantic import Field

    from metasearch.checks import check_option, check_output_dir
    from metasearch.config import RunConfig, SandboxConfig, SuiteConfig, TaskModelConfig

    check_option("--concurrency", concurrency, RunConfig, "concurrency")
    check_option("--max-tokens", max_tokens, TaskModelConfig, "max_tokens")
    check_option("--protocol", protocol, TaskModelConfig, "protocol")
    check_option("--seed", seed, SuiteConfig, "seed")
    check_option("--n-val", n_val, SuiteConfig, "n_val")
    check_option("--difficulty", difficulty, SuiteConfig, "difficulty")
    check_option("--task-timeout", task_timeout, RunConfig, "task_timeout_s")
    check_option("--memory-mb", memory_mb, SandboxConfig, "memory_mb")
    check_option("--max-pids", max_pids, SandboxConfig, "max_pids")
    check_option("--max-calls-per-task", max_calls_per_task, RunConfig, "max_calls_per_task")
    check_option("--limit", limit, rule=Field(ge=1, description="a number of tasks, an integer >= 1"))
    if cache_dir is not None:
        check_output_dir(cache_dir, "--cache-dir")


def _run_with_progress(fn: Any, *, quiet: bool, label: str) -> Any:
    if quiet:
        return fn(None, None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=True) as progress:
        bar = progress.add_task(label, total=None)
        return fn(lambda n: progress.update(bar, total=n),
                  lambda _outcome: progress.advance(bar))


def _print_table(s: dict[str, Any], evaluation: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{s['agent']} on {s['suite']}/{s['split']} with {s['model']}")
    for col in ("score", "95% CI", "n", "errors", "calls", "tokens", "cost", "cache hits", "wall"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{s['score']:.1%}", f"{s['ci_low']:.1%} – {s['ci_high']:.1%}", str(s["n"]),
        str(s["errors"]), str(s["calls"]), str(s["tokens"]), f"${s['cost_usd']:.4f}",
        str(s["cached_calls"]), f"{s['wall_s']:.1f} s",
    )
    console = Console()
    console.print(table)
    notes = []
    if s["parse_failures"]:
        notes.append(f"{s['parse_failures']} replies could not be parsed even after repair")
    if s["truncated"]:
        notes.append(f"{s['truncated']} replies hit max_tokens")
    if notes:
        console.print("note: " + "; ".join(notes) + ".")
    errors = evaluation.result.errors
    if errors:
        first = errors[0].error
        console.print(f"first error ({errors[0].task_id}): {first.type}: {first.message}",
                      highlight=False)
    console.print(f"sandbox: {s['sandbox']}")
