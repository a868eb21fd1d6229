"""``metasearch cache export`` and ``cache import``: a campaign's replies as portable files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from metasearch.cli._output import print_json

_WHERE = ("A campaign directory, a --worker one, an eval --cache-dir, or a database URL "
          "(postgresql://host/db#NAME).")


def export_cmd(
    campaign: Annotated[str, typer.Argument(help=_WHERE)],
    file: Annotated[Path, typer.Argument(help="The replies file to write (.jsonl.gz).")],
    skip: Annotated[
        list[Path] | None,
        typer.Option("--skip", help="Replies files (or directories of them) whose keys to "
                     "leave out: export only what is new since. Repeatable."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Write the campaign's cached replies to a file, to replay the campaign elsewhere."""
    from metasearch.llm.replies import export_replies, known_keys, open_cache

    cache = open_cache(campaign)
    skipped = known_keys(skip or [])
    try:
        n = export_replies(cache, file, skip=skipped)
        total = len(cache)
    finally:
        cache.close()
    if as_json:
        print_json({"file": str(file), "exported": n, "cached": total})
    else:
        extra = f" ({total - n} already in the --skip files)" if skip else ""
        typer.echo(f"exported {n} of {total} cached replies to {file}{extra}")


def import_cmd(
    campaign: Annotated[str, typer.Argument(help=_WHERE + " A new directory is created; "
                                            "`metasearch run --out DIR --resume` then replays.")],
    files: Annotated[list[Path], typer.Argument(help="Replies files (or directories of them).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Add exported replies to a campaign's cache: a rerun replays them at no cost."""
    from metasearch.llm.replies import import_replies, open_cache

    cache = open_cache(campaign, create=True)
    try:
        count = import_replies(cache, files)
    finally:
        cache.close()
    if as_json:
        print_json({"added": count.added, "present": count.present,
                    "differing": count.differing})
        return
    typer.echo(f"imported {count.added} replies into {campaign} ({count.present} already there)")
    if count.differing:
        typer.echo(f"{count.differing} keys already held another reply; the campaign's own "
                   "were kept (a rerun replays what this cache holds).")
