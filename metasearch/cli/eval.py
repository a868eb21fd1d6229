"""``metasearch eval``: score one agent file on a suite split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from metasearch.cli._output import print_json, quiet_native_logs
from metasearch.errors import AgentCodeError, DataError

SANDBOX_MODES = ("auto", "bwrap", "unshare", "none")


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
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Score AGENT on a suite split in the sandbox, with a 95% bootstrap CI."""
    from metasearch.campaign.build import build_gateway, build_sandbox
    from metasearch.candidate.validate import format_findings, validate_code
    from metasearch.evaluation.run import evaluate_agent
    from metasearch.runtime.settings import AgentSettings
    from metasearch.suites import get_suite, load_split

    if split not in ("validation", "test"):
        raise DataError(f"--split must be 'validation' or 'test', not {split!r}.")
    if sandbox not in SANDBOX_MODES:
        raise DataError(f"--sandbox must be one of {', '.join(SANDBOX_MODES)}, not {sandbox!r}.")
    code = _read_agent(agent)
    if not skip_validation:
        findings = validate_code(code)
        if findings:
            raise AgentCodeError(
                f"{agent} failed static validation, so it was not run: "
                + format_findings(findings).replace("\n", " ")
                + " Fix the code, or pass --skip-validation to run it in the sandbox anyway."
            )
    options: dict[str, Any] = {}
    if difficulty is not None:
        options["difficulty"] = difficulty
    the_suite = get_suite(suite, **options)
    n_test = None
    tasks = load_split(the_suite, split, data_path=data, seed=seed, n_val=n_val, n_test=n_test)
    if limit is not None:
        tasks = tasks[: max(0, limit)]
    if not tasks:
        raise DataError(f"The {split} split of {suite!r} has no tasks; raise --limit or --n-val.")

    quiet_native_logs(cache_dir)
    gateway = build_gateway(
        task_model=model, api_base=api_base, protocol=protocol,
        cache_dir=cache_dir, cache_enabled=not no_cache, concurrency=concurrency,
    )
    with gateway:
        gateway.preflight(model)
        settings = AgentSettings(
            model=model, answer_hint=the_suite.answer_hint,
            protocol=gateway.resolve_protocol(model), candidate=f"eval:{agent.name}",
            max_tokens=max_tokens, task_timeout_s=task_timeout, threads=concurrency,
        )
        with build_sandbox(sandbox, gateway, allowed_models=[model]) as runner:
            evaluation = _run_with_progress(
                lambda cb: evaluate_agent(
                    code, tasks, scorer=the_suite.scorer, runner=runner,
                    settings=settings, gateway=gateway, on_outcome=cb,
                ),
                total=len(tasks), quiet=as_json, label=f"{agent.name} on {suite}/{split}",
            )
    summary = evaluation.summary() | {"suite": suite, "split": split, "model": model,
                                      "agent": str(agent), "sandbox": runner.mode}
    if as_json:
        print_json(summary)
    else:
        _print_table(summary, evaluation)


def _read_agent(path: Path) -> str:
    if not path.exists():
        raise AgentCodeError(f"Agent file {path} does not exist. Give the path of a .py file that "
                             "defines `def forward(self, taskInfo):` (see archive/ for examples).")
    if path.is_dir():
        raise AgentCodeError(f"{path} is a directory; give one agent .py file.")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AgentCodeError(f"Cannot read agent file {path}: {exc}.") from None


def _run_with_progress(fn: Any, *, total: int, quiet: bool, label: str) -> Any:
    if quiet:
        return fn(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=True) as progress:
        bar = progress.add_task(label, total=total)
        return fn(lambda _outcome: progress.advance(bar))


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
