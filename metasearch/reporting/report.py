"""Render a campaign's ``report.md`` and ``progress.png``. This module only renders.

Everything comes in as data: the archive records, the meta agent's yield
counts (stage → count) and the paired test comparison computed by the
caller. matplotlib is imported lazily, with the Agg backend.

Example::

    write_report(
        "runs/quickstart",
        archive.records(),
        yield_counts={"proposed": 8, "parsed": 7, "normalised": 6, "valid": 4, "ran": 4, "scored>0": 3},
        paired=PairedSummary(best_id="g001-00", baseline_id="seed-cot", mean=0.05, ci_low=-0.1, ci_high=0.2, n=60),
    )
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metasearch.store.records import CandidateRecord, SplitScore, progress_curve

__all__ = ["PairedSummary", "render_markdown", "plot_progress", "write_report"]

REPORT_FILE = "report.md"
PLOT_FILE = "progress.png"
YIELD_STAGES = ("proposed", "parsed", "normalised", "valid", "new structure", "ran", "scored>0")


@dataclass(frozen=True)
class PairedSummary:
    """Paired test difference (best − baseline) on the same tasks, with its 95% CI."""

    best_id: str
    baseline_id: str
    mean: float
    ci_low: float
    ci_high: float
    n: int
    p_value: float | None = None

    @classmethod
    def of(cls, diff: Any, *, best_id: str, baseline_id: str) -> PairedSummary:
        """From a :class:`metasearch.evaluation.stats.PairedDiff` (``mean_diff``, ``ci_low``, ``ci_high``,
        ``n``, ``p_value``) or any object with ``mean`` instead of ``mean_diff``."""
        mean = diff.mean_diff if hasattr(diff, "mean_diff") else diff.mean
        p = getattr(diff, "p_value", None)
        return cls(
            best_id=best_id,
            baseline_id=baseline_id,
            mean=float(mean),
            ci_low=float(diff.ci_low),
            ci_high=float(diff.ci_high),
            n=int(diff.n),
            p_value=float(p) if p is not None else None,
        )


def write_report(
    campaign_dir: str | Path,
    records: Sequence[CandidateRecord],
    *,
    title: str | None = None,
    yield_counts: Mapping[str, int] | None = None,
    paired: PairedSummary | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write ``progress.png`` and ``report.md`` into ``campaign_dir``; returns the report path."""
    root = Path(campaign_dir)
    root.mkdir(parents=True, exist_ok=True)
    plotted = plot_progress(records, root / PLOT_FILE) if records else None
    text = render_markdown(
        records,
        title=title or f"Campaign {root.resolve().name}",
        yield_counts=yield_counts,
        paired=paired,
        plot_name=plotted.name if plotted else None,
        notes=notes,
    )
    path = root / REPORT_FILE
    _atomic_write(path, text)
    return path


def render_markdown(
    records: Sequence[CandidateRecord],
    *,
    title: str = "Campaign",
    yield_counts: Mapping[str, int] | None = None,
    paired: PairedSummary | None = None,
    plot_name: str | None = None,
    notes: Sequence[str] = (),
) -> str:
    out = [f"# {title}", ""]
    out += _summary(records)
    if plot_name:
        out += ["## Search progress", "", f"![best-so-far validation score]({plot_name})", ""]
    out += _archive_table(records)
    if yield_counts:
        out += _yield_table(yield_counts)
    out += _test_section(records, paired)
    if notes:
        out += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(out).rstrip() + "\n"


# --------------------------------------------------------------------------- sections


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _score(s: SplitScore | None) -> str:
    if s is None:
        return "–"
    return f"{_pct(s.mean)} [{_pct(s.ci_low)}, {_pct(s.ci_high)}] (n={s.n})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def _summary(records: Sequence[CandidateRecord]) -> list[str]:
    counts: dict[str, int] = {}
    for r in records:
        counts[r.status] = counts.get(r.status, 0) + 1
    by_status = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
    calls = sum(r.calls for r in records)
    tokens = sum(r.tokens for r in records)
    cost = sum(r.cost_usd for r in records)
    wall = sum(r.wall_s for r in records)
    best = _best(records)
    lines = [
        f"- Candidates: {len(records)} ({by_status})",
        f"- LLM calls: {calls:,}; tokens: {tokens:,}; cost: ${cost:.4f}; "
        f"candidate wall time: {wall / 60:.1f} min",
    ]
    if best is not None:
        lines.append(f"- Best on validation: `{best.id}` {_cell(best.name)}: {_score(best.val)}")
    return [*lines, "", "Scores are percentages with 95% bootstrap confidence intervals.", ""]


def _best(records: Sequence[CandidateRecord]) -> CandidateRecord | None:
    scored = [r for r in records if r.status == "ok" and r.val is not None]
    if not scored:
        return None
    return max(scored, key=lambda r: (r.val.mean, r.val.ci_low))  # type: ignore[union-attr]


def _archive_table(records: Sequence[CandidateRecord]) -> list[str]:
    out = [
        "## Archive",
        "",
        "| id | name | gen | status | validation | test | calls | cost ($) | reason |",
        "|---|---|---|---|---|---|---:|---:|---|",
    ]
    for r in records:
        reason = _cell(r.reason)
        if len(reason) > 80:
            reason = reason[:77] + "..."
        out.append(
            f"| `{r.id}` | {_cell(r.name)} | {r.generation} | {r.status} | {_score(r.val)} "
            f"| {_score(r.test)} | {r.calls:,} | {r.cost_usd:.4f} | {reason} |"
        )
    return [*out, ""]


def _yield_table(counts: Mapping[str, int]) -> list[str]:
    stages = [s for s in YIELD_STAGES if s in counts] + [s for s in counts if s not in YIELD_STAGES]
    first = counts.get(stages[0], 0) if stages else 0
    out = [
        "## Meta agent yield",
        "",
        "How many proposals survived each stage.",
        "",
        "| stage | count | share of proposed |",
        "|---|---:|---:|",
    ]
    for s in stages:
        share = f"{100 * counts[s] / first:.0f}%" if first else "–"
        out.append(f"| {s} | {counts[s]} | {share} |")
    return [*out, ""]


def _test_section(records: Sequence[CandidateRecord], paired: PairedSummary | None) -> list[str]:
    tested = [r for r in records if r.test is not None]
    if not tested and paired is None:
        return []
    best = _best(records)
    out = [
        "## Final test results",
        "",
        "Selection used the validation split only; each agent below was evaluated once on test.",
        "",
        "| id | name | role | validation | test |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(tested, key=lambda r: (r.id != (best.id if best else ""), not r.is_seed)):
        role = (
            "best on validation"
            if best is not None and r.id == best.id
            else ("seed" if r.is_seed else "candidate")
        )
        out.append(f"| `{r.id}` | {_cell(r.name)} | {role} | {_score(r.val)} | {_score(r.test)} |")
    out.append("")
    if paired is not None:
        if paired.ci_low > 0:
            verdict = "better than"
        elif paired.ci_high < 0:
            verdict = "worse than"
        else:
            verdict = "not distinguishable from"
        out += [
            f"Paired difference on the same {paired.n} test tasks, `{paired.best_id}` − "
            f"`{paired.baseline_id}`: **{100 * paired.mean:+.1f} points**, 95% CI "
            f"[{100 * paired.ci_low:+.1f}, {100 * paired.ci_high:+.1f}]"
            + (
                f", one-sided bootstrap p = {paired.p_value:.3f}. "
                if paired.p_value is not None
                else ". "
            )
            + f"At this sample size the best generated agent is {verdict} the best seed.",
            "",
        ]
    return out


# --------------------------------------------------------------------------- plot


def plot_progress(records: Sequence[CandidateRecord], path: str | Path) -> Path:
    """Best-so-far validation score against cumulative cost and against LLM calls.

    Each evaluated candidate is drawn with its 95% CI, so a step up that sits
    inside the previous best's interval reads as what it is. When every call
    cost $0 (local models) the cost panel shows cumulative tokens instead.
    """
    from matplotlib.figure import Figure  # no pyplot: Agg canvas, no global figure state

    pts = progress_curve(records)
    fig = Figure(figsize=(10, 4), dpi=100)
    axes = fig.subplots(1, 2, sharey=True)
    costs = [p.cum_cost_usd for p in pts]
    free = not costs or max(costs) == 0
    xs_specs = (
        ("cumulative tokens (all calls cost $0)", [float(p.cum_tokens) for p in pts])
        if free else ("cumulative cost (USD)", costs),
        ("cumulative LLM calls", [float(p.cum_calls) for p in pts]),
    )
    ok_idx = [i for i, r in enumerate(records) if r.val is not None]
    for ax, (label, xs) in zip(axes, xs_specs, strict=True):
        best = [
            (x, 100 * p.best_val) for x, p in zip(xs, pts, strict=True) if p.best_val is not None
        ]
        if best:
            ax.step([b[0] for b in best], [b[1] for b in best], where="post", label="best so far")
        for status, marker in (("ok", "o"), ("pruned", "x")):
            sel = [i for i in ok_idx if records[i].status == status]
            if not sel:
                continue
            vals = [records[i].val for i in sel]
            means = [100 * v.mean for v in vals]  # type: ignore[union-attr]
            err = [[m - 100 * v.ci_low for m, v in zip(means, vals, strict=True)],  # type: ignore[union-attr]
                   [100 * v.ci_high - m for m, v in zip(means, vals, strict=True)]]  # type: ignore[union-attr]
            ax.errorbar([xs[i] for i in sel], means, yerr=err, fmt=marker, ms=4, capsize=3,
                        alpha=0.6, label=f"candidate ({status}), 95% CI")
        ax.set_xlabel(label)
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation score (%)")
    axes[1].legend(loc="best", fontsize=8)
    fig.suptitle("Best-so-far validation score")
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)
    return path


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
