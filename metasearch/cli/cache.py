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
        n = export_replies(cache, file, skip=skipped, spent=_spent_of(campaign))
        total = len(cache)
    finally:
        cache.close()
    if as_json:
        print_json({"file": str(file), "exported": n, "cached": total})
    else:
        extra = f" ({total - n} already in the --skip files)" if skip else ""
        typer.echo(f"exported {n} of {total} cached replies to {file}{extra}")


def _spent_of(campaign: str) -> dict | None:
    """A campaign directory's billed spend so far (None for a cache or a database)."""
    from metasearch.campaign.summary import prior_spend
    from metasearch.store.archive import ARCHIVE_FILE, Archive

    if not (Path(campaign) / ARCHIVE_FILE).is_file():
        return None
    with Archive.open(campaign, readonly=True) as archive:
        return prior_spend(archive)


def import_cmd(
    campaign: Annotated[str, typer.Argument(help=_WHERE + " A new directory is created; "
                                            "`metasearch run --out DIR --resume` then replays.")],
    files: Annotated[list[Path], typer.Argument(help="Replies files (or directories of them).")],
    continue_spend: Annotated[bool, typer.Option(
        "--continue-spend", help="The files are this campaign's own: its budget counts "
        "(max_calls, max_usd, max_search_calls) go on from what the files record it had been "
        "billed, instead of 0 (replayed replies are free cache hits).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Add exported replies to a campaign's cache: a rerun replays them at no cost."""
    from metasearch.errors import DataError
    from metasearch.llm.replies import carry_spend, import_replies, open_cache, spent_in
    from metasearch.store.locate import is_location_url, read_store

    if continue_spend and (is_location_url(campaign) or (
            Path(campaign).is_dir() and read_store(Path(campaign)) is not None)):
        raise DataError(f"--continue-spend needs a campaign directory, not {campaign}: a "
                        "shared campaign's budget row is in its database already.")
    cache = open_cache(campaign, create=True)
    try:
        count = import_replies(cache, files)
    finally:
        cache.close()
    carried = None
    if continue_spend:
        spent = spent_in(files)
        carried = carry_spend(campaign, spent) if spent is not None else None
    if as_json:
        print_json({"added": count.added, "present": count.present,
                    "differing": count.differing, "spent_before": carried})
        return
    typer.echo(f"imported {count.added} replies into {campaign} ({count.present} already there)")
    if continue_spend:
        typer.echo(f"its budget counts go on from {carried['calls']:,} calls billed, "
                   f"${carried['usd']:.4f}, {carried['tokens']:,} tokens"
                   if carried is not None else
                   "these files record no spend (exported from a cache directory, or by a "
                   "metasearch before 2026-12-02): nothing is carried over, and the budget "
                   "counts are what the directory's own archive records (0 without one)")
    if count.differing:
        typer.echo(f"{count.differing} keys already held another reply; the campaign's own "
                   "were kept (a rerun replays what this cache holds).")
