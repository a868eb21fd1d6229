"""``metasearch archive list``, ``show`` and ``diff``: read a campaign's archive."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from metasearch.cli._output import archive_table, print_json, table_console


def list_cmd(
    campaign: Annotated[str, typer.Argument(help="A campaign directory, or a database URL (postgresql://host/db#NAME).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
) -> None:
    """Every candidate of a campaign, including invalid, failed and pruned ones."""

    archive = _open(campaign)
    records = archive.records()
    if as_json:
        print_json([r.to_json() for r in records])
        return

    table_console().print(archive_table(records, title=f"Archive of {campaign}"))


def show_cmd(
    campaign: Annotated[str, typer.Argument(help="A campaign directory, or a database URL (postgresql://host/db#NAME).")],
    candidate: Annotated[str | None, typer.Argument(help="Candidate id, e.g. g001-00 or seed-chain_of_thought.")] = None,
    best: Annotated[bool, typer.Option("--best", help="The best agent on validation (never test): the one `export --best` takes.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON record.")] = False,
) -> None:
    """One candidate: its record, thought and code."""
    from metasearch.errors import ConfigError, DataError

    if (candidate is None) == (not best):
        raise ConfigError("Pass either a candidate id or --best (the best agent on validation), "
                          "not both and not neither.")
    archive = _open(campaign)
    if best:
        top = archive.best()
        if top is None:
            raise DataError(f"{campaign} has no ok agent with a validation score yet, so it has "
                            "no best agent; `metasearch archive list` shows what it holds.")
        candidate = top.id
    assert candidate is not None
    record = archive.get(candidate)
    code = archive.read_agent(candidate) if record.code_path else ""
    chain = lineage(archive, candidate)
    if as_json:
        print_json(record.to_json() | {"code": code, "lineage": chain})
        return
    from rich.console import Console
    from rich.syntax import Syntax

    console = Console()
    console.print(f"[bold]{record.id}[/] {record.name} — {record.status}"
                  + (f" ({record.reason})" if record.reason else ""), highlight=False)
    for label, s in (("validation", record.val), ("test", record.test)):
        if s is not None:
            console.print(f"{label}: {s.mean:.1%} [95% CI {s.ci_low:.1%}, {s.ci_high:.1%}], n={s.n}")
    console.print(f"calls {record.calls}, tokens {record.tokens}, cost ${record.cost_usd:.4f}, "
                  f"wall {record.wall_s:.1f} s, generation {record.generation}")
    if len(record.parent_ids) > 1:
        console.print("parents: " + ", ".join(record.parent_ids), highlight=False)
    if len(chain) > 1:
        console.print("lineage (parent first, back to the root):", highlight=False)
        for cid in chain[1:]:
            console.print(f"  <- {_ancestor(archive, cid)}", highlight=False, soft_wrap=True)
    if record.thought:
        console.print("\n[bold]thought[/]\n" + record.thought, highlight=False)
    if code:
        console.print(Syntax(code, "python"))


def diff_cmd(
    campaign: Annotated[str, typer.Argument(help="A campaign directory, or a database URL (postgresql://host/db#NAME).")],
    a: Annotated[str, typer.Argument(help="Candidate id of A, e.g. g003-01.")],
    b: Annotated[str, typer.Argument(help="Candidate id of B, e.g. seed-self_refine.")],
    split: Annotated[str, typer.Option(help="test (the honest estimate) or validation.")] = "test",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """A − B on the tasks both were scored on: a paired bootstrap with its 95% CI.

    ``compare`` pairs the best agents of whole campaigns; this pairs any two agents of one
    campaign, e.g. the pick against a seed that is not the best one.
    """
    from metasearch.errors import ConfigError, DataError
    from metasearch.evaluation.stats import paired_by_task

    if split not in ("test", "validation"):
        raise ConfigError(f"--split must be 'test' or 'validation', not {split!r}.")
    archive = _open(campaign)
    recs = [archive.get(a), archive.get(b)]
    scores = []
    for rec in recs:
        s = rec.test if split == "test" else rec.val
        if s is None or not s.scores:
            hint = (" Only the agents of a campaign's final test have test scores (the pick, the "
                    "best generated agent and the seeds; see search.test_seeds)."
                    if split == "test" else "")
            raise DataError(f"{rec.id} in {campaign} has no per-task {split} scores "
                            f"(status {rec.status}).{hint}")
        scores.append({str(k): float(v) for k, v in s.scores.items()})
    d = paired_by_task(scores[0], scores[1])
    if d is None:
        raise DataError(f"{a} and {b} in {campaign} share no {split} task, so there is no "
                        "paired difference.")
    note = ("Validation scores chose the agents, so a difference on validation is biased "
            "upwards; the test split gives the honest estimate." if split == "validation" else "")
    n, verdict = d.n, d.verdict()
    if as_json:
        print_json({"split": split, "a": a, "b": b, "n": n, "mean_diff": d.mean_diff,
                    "ci_low": d.ci_low, "ci_high": d.ci_high, "p_value": d.p_value,
                    "verdict": verdict, "note": note,
                    "a_mean": sum(scores[0].values()) / len(scores[0]),
                    "b_mean": sum(scores[1].values()) / len(scores[1])})
        return
    from rich.console import Console

    console = Console()
    for label, rec, sc in (("A", recs[0], scores[0]), ("B", recs[1], scores[1])):
        s = rec.test if split == "test" else rec.val
        console.print(f"{label}: {rec.id} {rec.name}: {s.mean:.1%} [95% CI {s.ci_low:.1%}, "
                      f"{s.ci_high:.1%}], n={len(sc)}", highlight=False)
    console.print(f"A − B on {n} shared {split} tasks: {100 * d.mean_diff:+.1f} points "
                  f"[95% CI {100 * d.ci_low:+.1f}, {100 * d.ci_high:+.1f}], "
                  f"p (A ≤ B) = {d.p_value:.3f}: {verdict}", highlight=False, soft_wrap=True)
    if note:
        console.print(f"note: {note}", highlight=False)


def lineage(archive: Any, cid: str) -> list[str]:
    """``cid`` and its ancestors while each names one parent (an edit strategy's chain)."""
    chain = [cid]
    rec = archive.get(cid)
    while (len(rec.parent_ids) == 1 and archive.has(rec.parent_ids[0])
           and rec.parent_ids[0] not in chain):
        chain.append(rec.parent_ids[0])
        rec = archive.get(rec.parent_ids[0])
    return chain


def _ancestor(archive: Any, cid: str) -> str:
    rec = archive.get(cid)
    score = f" {rec.val.mean:.0%}" if rec.val is not None and rec.status == "ok" else \
        f" {rec.status}"
    return f"{cid} ({rec.name}{score})"


def _open(campaign: str):  # type: ignore[no-untyped-def]
    """A JSONL campaign directory, a ``--worker`` one (its store.json), or a database URL."""
    from metasearch.store.locate import open_archive

    return open_archive(campaign)
