"""The ``metasearch`` command line: the Typer app, its small commands, and registration.

The big commands live in sibling modules (``run``, ``eval``, ``export``,
``compare``, ``archive_view``, ``archive_import``) and share the output helpers
of :mod:`metasearch.cli._output`; this module imports them and registers them.
Each command parses its options, calls library functions, and renders with
rich. Heavy imports happen inside the command bodies so ``--help`` is fast.
User errors (:class:`~metasearch.errors.MetasearchError`) are printed as one
paragraph with a non-zero exit and no traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from metasearch.cli._output import escape, friendly_errors, print_json
from metasearch.cli.archive_import import import_cmd
from metasearch.cli.archive_view import diff_cmd, list_cmd, show_cmd
from metasearch.cli.cache import export_cmd as cache_export_cmd
from metasearch.cli.cache import import_cmd as cache_import_cmd
from metasearch.cli.compare import compare_cmd
from metasearch.cli.doctor import doctor_cmd
from metasearch.cli.eval import eval_cmd
from metasearch.cli.export import export_cmd
from metasearch.cli.run import run_cmd

app = typer.Typer(
    name="metasearch",
    help="Automated design of LLM agents: search strategies over sandboxed, cached, honestly scored candidates.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
archive_app = typer.Typer(help="Inspect and import campaign archives.", no_args_is_help=True)
app.add_typer(archive_app, name="archive")
cache_app = typer.Typer(help="Export and import a campaign's cached replies.",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@app.command("models")
@friendly_errors
def models_cmd(
    config: Annotated[Path | None, typer.Argument(help="A campaign config (TOML): show which client each of its models uses.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The embedded local models, and which client (fast path or litellm) each configured model uses."""
    from metasearch.campaign.build import model_settings
    from metasearch.config import CampaignConfig, load_config
    from metasearch.llm.local import list_local_models
    from metasearch.llm.settings import GatewaySettings
    from metasearch.llm.transport import choose_transport

    cfg = load_config(config) if config is not None else CampaignConfig()
    configured = []
    roles: list[tuple[str, Any]] = [("meta", cfg.models.meta), ("task", cfg.models.task)]
    roles += [("task (alternative)", alt) for alt in cfg.models.task.alternatives]
    for role, mc in roles:
        choice = choose_transport(mc.model, model_settings(mc, cfg.local))
        configured.append({"role": role, "model": mc.model, "transport": choice.name,
                           "reason": choice.reason})
    rows = [m.__dict__ for m in list_local_models(GatewaySettings())]
    if as_json:
        print_json({"local": rows, "configured": configured})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Embedded local models (no key, no network)")
    for col in ("model", "assembled", "size", "path"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], "yes" if r["assembled"] else "no (assembled on first use)",
                      f"{r['size'] / 1e9:.2f} GB", r["path"])
    source = str(config) if config is not None else "the defaults; pass a config to see its models"
    paths = Table(title=f"Configured models ({escape(source)})")
    for col in ("role", "model", "client", "why"):
        paths.add_column(col)
    for c in configured:
        label = "fast path (direct HTTP)" if c["transport"] == "http" else "litellm"
        paths.add_row(c["role"], escape(c["model"]), label, escape(c["reason"]))
    console = Console()
    console.print(table)
    console.print(paths)
    console.print(
        "Hosted models use litellm names, e.g. openai/gpt-4o-mini (OPENAI_API_KEY), "
        "anthropic/claude-3-5-haiku-latest (ANTHROPIC_API_KEY), ollama/llama3, or "
        "openai/<name> with --api-base for a vLLM or llama.cpp server. "
        "A campaign's endpoints are set in its [models.*] sections; local/ models and "
        "OpenAI-compatible servers (openai/ or hosted_vllm/ with an api_base) take the fast "
        'path unless transport = "litellm".',
        markup=False,
    )


@app.command("suites")
@friendly_errors
def suites_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The built-in task suites and where their data comes from."""
    from metasearch.suites import list_suites

    rows = [
        {"name": s.name, "metric": s.metric, "answer": s.answer_hint, "source": s.source}
        for s in list_suites()
    ]
    if as_json:
        print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Task suites")
    for col in ("suite", "metric", "answer format", "data"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["metric"], r["answer"], r["source"])
    Console().print(table)


@app.command("strategies")
@friendly_errors
def strategies_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The search strategies (built-in and installed plugins) and their settings."""
    from metasearch.search.registry import get_strategy, strategy_names

    rows = []
    for name in strategy_names():
        spec = get_strategy(name)
        fields = {k: {"default": f.get_default(call_default_factory=True),
                      "description": f.description or ""}
                  for k, f in spec.settings.model_fields.items()}
        rows.append({"name": name, "summary": spec.summary, "settings": fields})
    if as_json:
        print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=escape("Search strategies ([search] strategy = NAME; settings in "
                               "[search.NAME])"))
    for col in ("strategy", "what it does", "settings (default)"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["summary"], ", ".join(
            f"{k} = {v['default']!r}" for k, v in r["settings"].items()))
    Console().print(table, markup=False)


@app.command("validate")
@friendly_errors
def validate_cmd(
    path: Annotated[Path, typer.Argument(help="An agent .py file or an ADAS archive .json.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Static checks of agent code (libcst); exit 0 when clean, 1 with findings."""
    from metasearch.candidate.validate import validate_path

    report = validate_path(path)
    if as_json:
        print_json(report)
    else:
        _print_validation(report)
    if not report.get("ok", False):
        raise typer.Exit(1)


def _print_validation(report: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console(highlight=False)
    for entry in report.get("entries", [report]):
        label = entry.get("name") or entry.get("path") or str(report.get("path", ""))
        findings = entry.get("findings", [])
        if not findings:
            console.print(f"[green]ok[/] {label}")
            continue
        console.print(f"[red]{len(findings)} finding(s)[/] {label}")
        for f in findings:
            console.print(f"  line {f['line']}:{f['column']} {f['code']}: {f['message']}")
            if f.get("hint"):
                console.print(f"    hint: {f['hint']}")


@app.command("ui")
@friendly_errors
def ui_cmd(
    campaign: Annotated[Path, typer.Argument(help="A campaign directory.")] = Path("."),
    port: Annotated[int | None, typer.Option(
        help="Port on 127.0.0.1 (default 5000 for MLflow, 8080 with --optuna).")] = None,
    optuna: Annotated[bool, typer.Option(
        "--optuna", help="Serve optuna-dashboard on the campaign's study instead.")] = False,
    storage: Annotated[str | None, typer.Option(
        help="With --optuna: the study's storage URL, for one whose password optuna.json "
             "redacts.")] = None,
    tracking_uri: Annotated[str | None, typer.Option(
        help="An MLflow tracking server the campaign logged to: print its page there (the "
             "server has the UI) instead of serving mlflow.db.")] = None,
) -> None:
    """Open a campaign's MLflow store in the MLflow UI (or its Optuna study) on 127.0.0.1."""
    import os
    import subprocess

    from pydantic import Field

    from metasearch.checks import check_option

    check_option("--port", port, rule=Field(ge=1, le=65535,
                                            description="a TCP port, an integer from 1 to 65535"))

    if optuna:
        _serve_optuna(campaign, storage, 8080 if port is None else port)
        return
    if tracking_uri:
        typer.echo(_served_page(campaign, tracking_uri))
        return
    port = 5000 if port is None else port
    db = campaign / "mlflow.db"
    if not db.exists():
        from metasearch.errors import DataError

        raise DataError(f"No MLflow store at {db}. Give a campaign directory made by "
                        "`metasearch run` (it holds mlflow.db).")
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{db.resolve()}"]
    typer.echo(f"MLflow UI on http://127.0.0.1:{port} (Ctrl-C to stop)")
    subprocess.run(cmd, env=env, check=False)


def _served_page(campaign: Path, tracking_uri: str) -> str:
    """The campaign's experiment page on an MLflow server (its experiment must be there)."""
    from metasearch.store.tracking import read_campaign

    data = read_campaign(tracking_uri, campaign.resolve().name)  # a clear error if absent
    return (f"MLflow UI for {campaign.resolve().name}: "
            f"{tracking_uri.rstrip('/')}/#/experiments/{data.experiment_id}")


def _serve_optuna(campaign: Path, storage: str | None, port: int) -> None:
    """optuna-dashboard on the study the campaign's ``optuna.json`` names, until Ctrl-C."""
    from metasearch.errors import DataError
    from metasearch.search.optuna.storage import open_storage, read_location, redact

    try:
        loc = read_location(campaign, storage)
    except DataError as exc:
        raise DataError(f"{exc} Without --optuna, `metasearch ui {campaign}` opens the MLflow "
                        "UI, which every campaign has.") from None
    where = loc.storage
    if not loc.is_url and not Path(where).is_file():
        moved = campaign / Path(where).name  # the directory was moved or copied
        if not moved.is_file():
            raise DataError(f"The Optuna journal {where} named in {campaign / 'optuna.json'} "
                            "does not exist (nor does it sit in the campaign directory). Pass "
                            "the journal's path or the study's RDB URL with --storage.")
        where = str(moved)
    opened = open_storage(where)
    try:
        study_id = opened.get_study_id_from_name(loc.study)
    except KeyError:
        raise DataError(f"The Optuna storage {redact(loc.storage)} has no study named {loc.study!r}. "
                        "Pass the storage that campaign used with --storage.") from None
    import optuna_dashboard

    typer.echo(f"optuna-dashboard on http://127.0.0.1:{port}/dashboard/studies/{study_id} "
               f"(study {loc.study}; Ctrl-C to stop)")
    try:
        optuna_dashboard.run_server(opened, host="127.0.0.1", port=port)
    except KeyboardInterrupt:
        pass


app.command("run")(friendly_errors(run_cmd))
app.command("eval")(friendly_errors(eval_cmd))
app.command("export")(friendly_errors(export_cmd))
app.command("compare")(friendly_errors(compare_cmd))
app.command("doctor")(friendly_errors(doctor_cmd))
archive_app.command("list")(friendly_errors(list_cmd))
archive_app.command("show")(friendly_errors(show_cmd))
archive_app.command("diff")(friendly_errors(diff_cmd))
archive_app.command("import")(friendly_errors(import_cmd))
cache_app.command("export")(friendly_errors(cache_export_cmd))
cache_app.command("import")(friendly_errors(cache_import_cmd))


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
