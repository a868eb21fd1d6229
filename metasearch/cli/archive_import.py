"""``metasearch archive import``: bring an ADAS archive's agents into a campaign."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from metasearch.cli._output import print_json, quiet_native_logs, sandbox_notices
from metasearch.errors import ConfigError


def import_cmd(
    file: Annotated[Path, typer.Argument(help="ADAS archive JSON (a list of entries).")],
    into: Annotated[Path, typer.Option("--into", help="Campaign directory to add them to.")],
    suite: Annotated[
        str | None,
        typer.Option(help="Suite the archive was made for (default: the campaign's)."),
    ] = None,
    evaluate: Annotated[
        bool,
        typer.Option("--evaluate", help="Re-score the agents in the sandbox on validation."),
    ] = False,
    model: Annotated[
        str | None, typer.Option(help="--evaluate: task model (default: the campaign's).")
    ] = None,
    api_base: Annotated[
        str | None, typer.Option(help="--evaluate: endpoint URL of the task model.")
    ] = None,
    sandbox: Annotated[
        str, typer.Option(help="--evaluate: sandbox mode auto, bwrap or unshare.")
    ] = "auto",
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI (default: the campaign's mlflow.db).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Validate every entry of an ADAS archive and add the valid ones as imported agents."""
    from metasearch.checks import check_output_dir
    from metasearch.interop.adas_json import import_adas, read_adas
    from metasearch.interop.export import campaign_info
    from metasearch.store.archive import Archive

    check_output_dir(into, "--into")
    entries = read_adas(file)
    info = campaign_info(into, tracking_uri=tracking_uri)
    notes: list[str] = []
    if suite and info.suite and suite != info.suite:
        notes.append(
            f"The archive was made for {suite}, this campaign runs {info.suite}: its original "
            "fitness strings are kept as metadata only."
        )
    with contextlib.ExitStack() as stack:
        evaluator = None
        if evaluate:  # the sandbox's fallback warning, as run and eval show it
            stack.enter_context(sandbox_notices())
            evaluator = _build_evaluator(
                stack,
                into,
                info.params,
                suite=info.suite or suite,
                model=model,
                api_base=api_base,
                sandbox=sandbox,
            )
        archive = stack.enter_context(Archive.open(into))
        report = import_adas(
            entries,
            archive,
            source=str(file),
            suite=suite or info.suite or None,
            evaluate=evaluator,
        )
    if report.added and ((into / "mlflow.db").is_file() or tracking_uri):
        notes.append(
            "The tracking store learns of the imported agents when the campaign next runs "
            "(`metasearch run CONFIG --resume`)."
        )
    if as_json:
        print_json(report.to_json() | {"into": str(into), "notes": notes})
    else:
        _print(report, into, notes)
    if entries and not report.added:
        raise typer.Exit(1)


def _print(report: Any, into: Path, notes: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Import of {report.source} into {into}")
    for col in ("#", "name", "outcome", "id / why"):
        table.add_column(col)
    for e in report.entries:
        if e.outcome == "added":
            detail = e.id + (f" (re-scored: {e.val.mean:.1%})" if e.val else "")
            if e.status and e.status != "ok":
                detail += f" [{e.status}]"
        else:
            detail = "; ".join(e.problems)
        if e.warnings:
            detail += " (warning: " + "; ".join(e.warnings) + ")"
        style = "green" if e.outcome == "added" else "red"
        table.add_row(str(e.index), e.name, f"[{style}]{e.outcome}[/]", detail)
    console = Console()
    console.print(table)
    console.print(f"{len(report.added)} added, {len(report.rejected)} not added.")
    for note in notes:
        console.print(note, highlight=False, soft_wrap=True)


def _build_evaluator(
    stack: contextlib.ExitStack,
    campaign: Path,
    params: Mapping[str, str],
    *,
    suite: str | None,
    model: str | None,
    api_base: str | None,
    sandbox: str,
) -> Any:
    """``evaluate_code(code) -> (SplitScore, calls, tokens, cost, errors)`` on the campaign's
    validation split, in the sandbox, through a gateway caching in ``<campaign>/cache``."""
    from metasearch.campaign.build import build_bench, model_settings
    from metasearch.config import load_config
    from metasearch.store.records import SplitScore
    from metasearch.suites import get_suite, split_tasks

    quiet_native_logs(campaign / "cache")

    if not suite:
        raise ConfigError(
            f"--evaluate needs the suite: {campaign} has no tracking store or config.toml "
            "naming one, so pass --suite NAME (see `metasearch suites`)."
        )
    task_model = model or params.get("models.task.model") or ""
    if not task_model:
        raise ConfigError("--evaluate needs the task model: pass --model (a litellm string).")
    models = {}
    alternatives: list[str] = []
    if (campaign / "config.toml").is_file() and not model and not api_base:
        cfg = load_config(campaign / "config.toml")  # the campaign's own model settings
        models[task_model] = model_settings(cfg.models.task, cfg.local)
        for alt in cfg.models.task.alternatives:  # the models its agents may name
            models.setdefault(alt.model, model_settings(alt, cfg.local))
            alternatives.append(alt.model)
    options: dict[str, Any] = {}
    if params.get("suite.difficulty"):
        options["difficulty"] = int(params["suite.difficulty"])
    the_suite = get_suite(suite, **options)
    data = params.get("suite.data") or None
    n_test = params.get("suite.n_test")
    tasks = split_tasks(
        the_suite.load(Path(data).expanduser() if data else None),
        seed=int(params.get("suite.seed") or 0),
        n_val=int(params.get("suite.n_val") or 30),
        n_test=int(n_test) if n_test else None,
    ).validation  # the same split as the campaign's (factory.build_campaign)
    base = api_base or params.get("models.task.api_base") or None
    bench = stack.enter_context(build_bench(
        the_suite, task_model=task_model, api_base=base,
        protocol=params.get("models.task.protocol") or "auto", models=models or None,
        cache_dir=campaign / "cache", concurrency=int(params.get("run.concurrency") or 4),
        sandbox=sandbox, max_tokens=int(params.get("models.task.max_tokens") or 512),
        alternatives=alternatives,
        max_calls_per_task=int(params.get("run.max_calls_per_task", 50)),
    ))
    counter = itertools.count()

    def evaluate_code(code: str) -> tuple[SplitScore, int, int, float, int]:
        ev = bench.evaluate(code, tasks, candidate=f"import-{next(counter)}")
        scores = {r.task_id: r.score for r in ev.result.results}
        return (
            SplitScore.of(ev.result.fitness, scores),
            ev.cost.calls,
            ev.cost.tokens,
            ev.cost.cost_usd,
            ev.result.n_errors,
        )

    return evaluate_code
