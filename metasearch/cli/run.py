"""``metasearch run``: a search campaign from a TOML config, with live progress."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from metasearch.cli._output import (
    archive_table,
    escape,
    quiet_native_logs,
    sandbox_notices,
    table_console,
)


def run_cmd(
    config: Annotated[Path, typer.Argument(help="Campaign config (TOML), e.g. experiments/quickstart.toml.")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue the campaign in run.out.")] = False,
    out: Annotated[Path | None, typer.Option(help="Campaign directory (overrides run.out).")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking server (default: sqlite in the campaign dir).")] = None,
    generations: Annotated[int | None, typer.Option(help="Shortcut for --set search.generations=N (raise it to extend a finished campaign with --resume).")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="Shortcut for --set budget.max_usd=X.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config field: --set search.generations=5 (repeatable).")] = None,
    storage: Annotated[str | None, typer.Option(help="The optuna strategy's study storage: an RDB URL (postgresql://..., sqlite:///...) or a journal file; shortcut for --set search.optuna.storage=URL. With --worker: the database holding the shared campaign.")] = None,
    worker: Annotated[bool, typer.Option("--worker", help="Join (or start) the campaign kept in the --storage database, beside other workers on this or other machines: they share its archive, response cache and budget.")] = False,
) -> None:
    """Run a search campaign: seeds, the strategy's candidates, a final test, a report."""
    from metasearch.api import run_campaign
    from metasearch.config import load_config, parse_override

    overrides = dict(parse_override(s) for s in (set_ or []))
    if out is not None:
        overrides["run.out"] = str(out)
    if generations is not None:
        overrides["search.generations"] = generations
    if budget_usd is not None:
        overrides["budget.max_usd"] = budget_usd
    if worker:
        _check_worker_storage(storage)
    elif storage is not None:
        overrides["search.optuna.storage"] = storage
    cfg = load_config(config, overrides or None)
    if storage is not None and not worker and cfg.search.strategy != "optuna":
        from metasearch.errors import ConfigError

        raise ConfigError(f"--storage is the optuna strategy's study storage, but {config} "
                          f"runs search.strategy = {cfg.search.strategy!r}. Drop --storage, or "
                          'set search.strategy = "optuna".')
    from metasearch.checks import check_output_dir

    check_output_dir(cfg.run.out_dir, "--out" if out is not None else f"run.out of {config}")
    import os

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # no table-creation chatter
    quiet_native_logs(cfg.run.out_dir / "cache")
    reporter = RichReporter()
    for note in cfg.notes:
        reporter.console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    with reporter, sandbox_notices():
        result = run_campaign(cfg, resume=resume, tracking_uri=tracking_uri, reporter=reporter,
                              config_text=config.read_text(encoding="utf-8"),
                              storage=storage if worker else None, worker=worker)
    print_summary(result)
    if result.stopped:
        raise typer.Exit(3)


def _check_worker_storage(storage: str | None) -> None:
    from metasearch.errors import ConfigError
    from metasearch.store.db import is_db_url

    if storage is None or not is_db_url(storage):
        raise ConfigError(
            "--worker needs --storage with the database that holds the shared campaign, e.g. "
            "--storage postgresql://user:password@host:5432/metasearch (every worker gives the "
            f"same one){'' if storage is None else f'; {storage!r} is not a database URL'}.")


class RichReporter:
    """Live progress: phases, one task bar per evaluation in flight, best-so-far and spend.

    Candidates run on their own threads (``run.parallel_candidates``), so
    every method takes the lock; a bar belongs to the thread that opened it.
    """

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.progress = Progress("[progress.description]{task.description}", BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=self.console)
        self._lock = threading.RLock()
        self._bars: dict[int, Any] = {}  # thread id -> its task bar
        self._calls = 0
        self._cached = 0  # of those, replies the cache served (free)
        self._cost = 0.0

    def __enter__(self) -> RichReporter:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def phase(self, text: str) -> None:
        with self._lock:
            self.progress.console.print(f"[bold]»[/] {escape(text)}", highlight=False)

    def tasks(self, label: str, total: int) -> None:
        me = threading.get_ident()
        with self._lock:
            if me in self._bars:
                self.progress.remove_task(self._bars.pop(me))
            self._bars[me] = self.progress.add_task(escape(label), total=total)

    def task_done(self) -> None:
        with self._lock:
            bar = self._bars.get(threading.get_ident())
            if bar is not None:
                self.progress.advance(bar)

    def candidate(self, record: Any, best: Any) -> None:
        with self._lock:
            self._calls += record.calls
            self._cached += int(record.meta.get("cached_calls", 0) or 0)
            self._cost += record.cost_usd
            for ident, bar in list(self._bars.items()):  # finished evaluations leave the screen
                task = next((t for t in self.progress.tasks if t.id == bar), None)
                if task is not None and task.finished:
                    self.progress.remove_task(self._bars.pop(ident))
            score = f"{record.val.mean:.1%}" if record.val is not None else "-"
            best_txt = (f"{escape(best.name)} {best.val.mean:.1%}"
                        if best is not None and best.val else "-")
            reason = f" ({escape(record.reason[:100])})" if record.reason else ""
            self.progress.console.print(
                f"  {record.id} [cyan]{escape(record.name)}[/]: {record.status} {score}{reason} "
                f"| best: {best_txt} | spent: {self._calls - self._cached} calls "
                f"(+{self._cached} from the cache), ${self._cost:.4f}",
                highlight=False)


def print_summary(result: Any) -> None:
    console = table_console()
    console.print(archive_table(result.records, title=f"Archive of {result.directory}"))
    if result.yield_counts.get("proposed"):
        y = result.yield_counts
        console.print("meta-agent yield: " + ", ".join(f"{k} {v}" for k, v in y.items()))
    if result.best is not None:
        b = result.best
        line = f"best on validation: {b.id} {escape(b.name)} {_ci(b.val)}"
        if b.test is not None:
            line += f"; test {_ci(b.test)}"
        console.print(line, highlight=False)
    if result.paired is not None and result.best_seed is not None:
        p = result.paired
        gen = result.best_generated or result.best
        console.print(
            f"best generated ({gen.id if gen else '?'}) vs best seed "
            f"({escape(result.best_seed.name)}) "
            f"on test: {p.mean_diff:+.1%} "
            f"[95% CI {p.ci_low:+.1%}, {p.ci_high:+.1%}], n={p.n}", highlight=False)
    from metasearch.reporting.report import fault_line, read_faults

    faults = read_faults(result.directory)
    if faults is not None:
        failed = sum((faults.get("failed") or {}).values())
        style = "yellow" if failed else "default"
        console.print(f"[{style}]provider faults:[/] {escape(fault_line(faults))}", highlight=False)
    if result.stopped:
        console.print(f"[yellow]stopped early:[/] {result.stopped} Resume with --resume.")
    if result.time_limit:
        console.print(f"[yellow]time limit:[/] {escape(result.time_limit)}")
    if result.report is not None:
        console.print(f"report: {result.report}")


def _ci(s: Any) -> str:
    if s is None:
        return "-"
    return f"{s.mean:.1%} [{s.ci_low:.1%}, {s.ci_high:.1%}] (n={s.n})"
