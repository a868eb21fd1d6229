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
        "--continue-spend", help="The files are this campaign's own: each reply they add is "
        "billed once more as `run --resume` replays it (budget counts, records and costs as "
        "the original run's), instead of free. Import into a directory that holds what the "
        "campaign started with (a copied cache): those replies stay free.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Add exported replies to a campaign's cache: a rerun replays them at no cost."""
    from metasearch.errors import DataError
    from metasearch.llm.replies import import_replies, open_cache, open_owed
    from metasearch.store.locate import is_location_url, read_store

    if continue_spend and (is_location_url(campaign) or (
            Path(campaign).is_dir() and read_store(Path(campaign)) is not None)):
        raise DataError(f"--continue-spend needs a campaign directory, not {campaign}: a "
                        "shared campaign's budget row is in its database already.")
    cache = open_cache(campaign, create=True)
    owed = open_owed(campaign, create=True) if continue_spend else None
    try:
        count = import_replies(cache, files, owed=owed)
        pending = len(owed) if owed is not None else 0
    finally:
        cache.close()
        if owed is not None:
            owed.close()
    if as_json:
        print_json({"added": count.added, "present": count.present,
                    "differing": count.differing, "owed": count.owed, "owed_in_all": pending,
                    "spent_recorded": count.spent})
        return
    typer.echo(f"imported {count.added} replies into {campaign} ({count.present} already there)")
    if continue_spend:
        recorded = (f"; the files record {count.spent['calls']:,} calls billed in all, "
                    f"${count.spent['usd']:.4f}" if count.spent is not None else "")
        typer.echo(f"{count.owed:,} of them are the campaign's own: `run --resume` bills each "
                   f"once more as it replays it, as the campaign was billed ({pending:,} owed "
                   f"in all){recorded}" if count.owed else
                   f"none is new here, so none is owed ({pending:,} owed in all){recorded}")
    if count.differing:
        typer.echo(f"{count.differing} keys already held another reply; the campaign's own "
                   "were kept (a rerun replays what this cache holds).")
