"""``metasearch compare``: campaigns side by side, from their tracking stores."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from metasearch.cli._output import escape, print_json


def compare_cmd(
    campaigns: Annotated[
        list[str], typer.Argument(help="Campaign directories (experiment names on a server), or "
                                  "database URLs of shared campaigns (postgresql://host/db#NAME).")
    ],
    split: Annotated[
        str, typer.Option(help="Split of the paired comparison: test or validation.")
    ] = "test",
    plot: Annotated[
        Path | None,
        typer.Option(help="Write a PNG of best-so-far validation score against cumulative cost."),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow tracking URI holding all campaigns (default: each mlflow.db)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Best agents, scores with 95% CIs, spend, and paired differences between campaigns."""
    from metasearch.checks import check_output_file
    from metasearch.reporting.compare import compare_campaigns, load_campaigns, plot_comparison

    if plot is not None:
        check_output_file(plot, "--plot")
    # MLflow draws a progress bar per scores.json it downloads: noise between the tables
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    data = load_campaigns(campaigns, tracking_uri=tracking_uri)
    result = compare_campaigns(data, split=split)  # type: ignore[arg-type]
    plotted = plot_comparison(result.campaigns, plot) if plot is not None else None
    if as_json:
        print_json(result.to_json() | {"plot": str(plotted) if plotted else None})
        return
    _print(result, plotted)


def _ci(s: Any) -> str:
    if s is None:
        return "–"
    return f"{100 * s.mean:.1f} [{100 * s.ci_low:.1f}, {100 * s.ci_high:.1f}] (n={s.n})"


def _print(result: Any, plotted: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from metasearch.evaluation.stats import interval_verdict

    console = Console()
    table = Table(title="Campaigns (scores in %, 95% bootstrap CIs; best chosen on validation)")
    table.add_column("")
    for c in result.campaigns:
        table.add_column(c.name)
    rows = {
        "suite": [c.suite or "?" for c in result.campaigns],
        "best agent": [
            f"{c.best_id} {c.best_name}" if c.best_id else "–" for c in result.campaigns
        ],
        "validation": [_ci(c.val) for c in result.campaigns],
        "test": [_ci(c.test) for c in result.campaigns],
        "LLM calls": [f"{c.calls:,}" for c in result.campaigns],
        "tokens": [f"{c.tokens:,}" for c in result.campaigns],
        "cost": [f"${c.cost_usd:.4f}" for c in result.campaigns],
        "wall time": [f"{c.wall_s / 60:.1f} min" for c in result.campaigns],
        "candidates": [
            f"{c.n_candidates}: " + ", ".join(f"{k} {v}" for k, v in c.by_status.items())
            for c in result.campaigns
        ],
    }
    for label, cells in rows.items():
        table.add_row(label, *cells)
    console.print(table)
    if result.pairs:
        pairs = Table(title=f"Paired differences of the best agents on shared {result.split} tasks")
        for col in ("A − B", "n", "difference (points)", "95% CI", "p (A ≤ B)", "note"):
            pairs.add_column(col)
        for p in result.pairs:
            if p.mean_diff is None:
                pairs.add_row(f"{p.a} − {p.b}", "–", "–", "–", "–", p.note)
                continue
            verdict = interval_verdict(p.ci_low, p.ci_high)
            pairs.add_row(
                f"{p.a} − {p.b}",
                str(p.n),
                f"{100 * p.mean_diff:+.1f}",
                f"[{100 * p.ci_low:+.1f}, {100 * p.ci_high:+.1f}]",
                f"{p.p_value:.3f}",
                verdict,
            )
        console.print(pairs)
    for c in result.campaigns:
        if c.front is not None and c.front.points:
            console.print(_front_table(c.name, c.front))
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    if plotted is not None:
        console.print(f"Plot: {plotted}")


def _front_table(name: str, front: Any) -> Any:
    from rich.table import Table

    pruned = f"; {front.pruned} pruned left out" if front.pruned else ""
    table = Table(title=f"Pareto front of {escape(name)}: validation score against {front.cost_label} "
                        f"({len(front.points)} ok candidates{pruned})")
    for col in ("id", "name", "validation", front.cost_label):
        table.add_column(col)
    for p in front.front:
        cost = f"${p.cost:.4g}" if front.unit == "usd" else f"{p.cost:.1f}"
        table.add_row(escape(p.id), escape(p.name), f"{100 * p.score:.1f} [{100 * p.ci_low:.1f}, "
                      f"{100 * p.ci_high:.1f}] (n={p.n})", cost)
    return table
