"""``metasearch doctor``: what this machine offers, what is missing, the command that fixes it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from metasearch.cli._output import escape, print_json, table_console


def doctor_cmd(
    out: Annotated[Path, typer.Option(help="Where campaigns will write (checks the MLflow store and an Optuna journal can be created there).")] = Path("runs"),
    storage: Annotated[str | None, typer.Option(help="An Optuna RDB URL (postgresql://..., sqlite:///...) or journal file to check.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Check each isolation layer (bwrap, user namespaces, seccomp, cgroups), the local models, MLflow and Optuna storage."""
    from rich.table import Table

    from metasearch.campaign.doctor import diagnose

    diag = diagnose(out=out, storage=storage)
    if as_json:
        print_json(diag.to_json())
    else:
        console = table_console()
        who = diag.user if not diag.is_root or diag.user == "root" else f"{diag.user} (root)"
        table = Table(title=f"metasearch doctor, as {escape(who)}")
        for col in ("layer", "check", "status", "found"):
            table.add_column(col, overflow="fold")
        for c in diag.checks:
            status = "[green]ok[/]" if c.ok else "[red]missing[/]" if c.required else "[yellow]missing[/]"
            table.add_row(c.layer, escape(c.name), status, escape(c.detail))
        console.print(table)
        fixes = [c for c in diag.checks if not c.ok and c.fix]
        if fixes:
            console.print("To fix:")
            for c in fixes:
                console.print(f"  {escape(c.name)}: {escape(c.fix)}", highlight=False, soft_wrap=True)
        best = diag.best_sandbox or "none works"
        console.print(f"sandbox `auto` picks: {best}", highlight=False)
    if not diag.ok:
        raise typer.Exit(1)
