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

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metasearch import atomic
from metasearch.campaign.summary import best_of
from metasearch.evaluation.stats import interval_verdict
from metasearch.reporting.importance import SEED, Importance, param_importance
from metasearch.reporting.pareto import Front, front_of_records
from metasearch.store.records import CandidateRecord, SplitScore, progress_curve

__all__ = ["PairedSummary", "fault_line", "plot_front", "plot_progress", "read_faults",
           "render_markdown", "write_report"]

REPORT_FILE = "report.md"
PLOT_FILE = "progress.png"
FRONT_PLOT_FILE = "pareto.png"
FRONT_FILE = "pareto.json"  # the front, for the MLflow tags (Tracker.log_report) and for tools
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
    pairs: Sequence[PairedSummary] = (),
    notes: Sequence[str] = (),
    faults: Mapping[str, Mapping[str, int]] | None = None,
) -> Path:
    """Write ``progress.png``, ``pareto.png``, ``pareto.json`` and ``report.md`` into ``campaign_dir``.

    The Pareto front and the parameter importances are computed here from
    ``records`` (see :mod:`.pareto` and :mod:`.importance`); ``faults`` (calls
    retried and failed by kind) default to what the archive's last checkpoint
    says (:func:`read_faults`). Returns the report path.
    """
    root = Path(campaign_dir)
    if faults is None:
        faults = read_faults(root)
    root.mkdir(parents=True, exist_ok=True)
    plotted = plot_progress(records, root / PLOT_FILE) if records else None
    front = front_of_records(records)
    front_plot = plot_front(front, root / FRONT_PLOT_FILE) if front.points else None
    atomic.write_text(root / FRONT_FILE, json.dumps(front.to_json(), indent=2) + "\n")
    text = render_markdown(
        records,
        title=title or f"Campaign {root.resolve().name}",
        yield_counts=yield_counts,
        paired=paired,
        pairs=pairs,
        plot_name=plotted.name if plotted else None,
        notes=notes,
        front=front,
        front_plot=front_plot.name if front_plot else None,
        importance=param_importance(records),
        faults=faults,
    )
    path = root / REPORT_FILE
    atomic.write_text(path, text)
    return path


def render_markdown(
    records: Sequence[CandidateRecord],
    *,
    title: str = "Campaign",
    yield_counts: Mapping[str, int] | None = None,
    paired: PairedSummary | None = None,
    pairs: Sequence[PairedSummary] = (),
    plot_name: str | None = None,
    notes: Sequence[str] = (),
    front: Front | None = None,
    front_plot: str | None = None,
    importance: Importance | None = None,
    faults: Mapping[str, Mapping[str, int]] | None = None,
) -> str:
    out = [f"# {title}", ""]
    out += _summary(records, faults)
    if plot_name:
        out += ["## Search progress", "", f"![best-so-far validation score]({plot_name})", ""]
    if front is not None and front.points:
        out += _front_section(front, front_plot)
    if importance is not None:
        out += _importance_section(importance)
    out += _archive_table(records)
    if yield_counts:
        out += _yield_table(yield_counts)
    out += _test_section(records, paired)
    out += _pairs_section(pairs)
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


def read_faults(campaign_dir: str | Path) -> dict[str, dict[str, int]] | None:
    """Calls retried and calls failed by kind, over all runs, from the archive's last checkpoint.

    ``{"retried": {"rate_limited": 3, ...}, "failed": {...}}``; None when the
    directory has no archive or its checkpoints predate these counts.
    """
    from metasearch.store.archive import ARCHIVE_FILE, Archive

    root = Path(campaign_dir)
    if not (root / ARCHIVE_FILE).is_file():
        return None
    state = Archive.open(root, readonly=True).state()
    spent = dict(state.meta.get("spent") or {}) if state is not None else {}
    if "retried" not in spent and "failed" not in spent:
        return None
    return {k: {kind: int(n) for kind, n in dict(spent.get(k) or {}).items()}
            for k in ("retried", "failed")}


def fault_line(faults: Mapping[str, Mapping[str, int]]) -> str:
    """``calls retried: 5 (rate_limited 3, malformed 2); calls failed: 0``."""

    def part(label: str, by_kind: Mapping[str, int]) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items(), key=lambda p: (-p[1], p[0])))
        return f"{label}: {sum(by_kind.values())}" + (f" ({kinds})" if kinds else "")

    return (f"{part('calls retried', faults.get('retried') or {})}; "
            f"{part('calls failed', faults.get('failed') or {})}")


def _summary(records: Sequence[CandidateRecord],
             faults: Mapping[str, Mapping[str, int]] | None = None) -> list[str]:
    counts: dict[str, int] = {}
    for r in records:
        counts[r.status] = counts.get(r.status, 0) + 1
    by_status = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
    calls = sum(r.calls for r in records)
    tokens = sum(r.tokens for r in records)
    cost = sum(r.cost_usd for r in records)
    wall = sum(r.wall_s for r in records)
    best = best_of(records)
    lines = [
        f"- Candidates: {len(records)} ({by_status})",
        f"- LLM calls: {calls:,}; tokens: {tokens:,}; cost: ${cost:.4f}; "
        f"candidate wall time: {wall / 60:.1f} min",
    ]
    if faults is not None:
        lines.append(f"- Provider faults, by kind: {fault_line(faults)} (a failed call is one "
                     "that still failed after its retries: an error of the candidate that made it)")
    if best is not None:
        lines.append(f"- Best on validation: `{best.id}` {_cell(best.name)}: {_score(best.val)}")
    return [*lines, "", "Scores are percentages with 95% bootstrap confidence intervals.", ""]


def _cost(front: Front, cost: float) -> str:
    return f"${cost:.4g}" if front.unit == "usd" else f"{cost:.1f}"


def _front_section(front: Front, plot_name: str | None) -> list[str]:
    unit = ("USD per validation task" if front.unit == "usd"
            else "LLM calls per validation task, cached ones included (no call cost money)")
    pruned = (f"; {front.pruned} pruned candidate(s) are left out: they were evaluated on "
              "fewer tasks" if front.pruned else "")
    out = ["## Validation score against cost", ""]
    if plot_name:
        out += [f"![validation score against cost per task]({plot_name})", ""]
    out += [
        "The Pareto front: the candidates that no other candidate beats on validation score "
        f"without costing more. Cost is {unit}: everything spent on the candidate (for `adas`, "
        "the meta agent's calls for it too) over the tasks it was scored on. "
        f"{len(front.points)} scored (`ok`) candidate(s) take part{pruned}.",
        "",
        f"| id | name | validation | cost ({'$' if front.unit == 'usd' else 'calls'}/task) |",
        "|---|---|---|---:|",
    ]
    for p in front.front:
        out.append(f"| `{p.id}` | {_cell(p.name)} | {_pct(p.score)} [{_pct(p.ci_low)}, "
                   f"{_pct(p.ci_high)}] (n={p.n}) | {_cost(front, p.cost)} |")
    return [*out, ""]


def _importance_section(imp: Importance) -> list[str]:
    out = ["## Which knobs mattered", ""]
    if not imp.ok:
        return [*out, f"Parameter importances are not computed: {imp.skipped}", ""]
    left = (f" Conditional parameters absent from some trials are left out (Optuna uses the "
            f"intersection search space): {', '.join(f'`{n}`' for n in imp.left_out)}."
            if imp.left_out else "")
    excluded = (f"; {imp.excluded} other record(s) with parameters (pruned, failed or outside "
                "the space) are left out" if imp.excluded else "")
    out += [
        "Share of the validation score's variance each parameter explains (fANOVA, "
        f"`optuna.importance`, seed {SEED}), over {imp.trials} scored trials of "
        f"`{_cell(imp.space_file)}`{excluded}.{left} With few trials these are rough.",
        "",
        "| parameter | importance |",
        "|---|---:|",
        *[f"| `{name}` | {value:.3f} |" for name, value in imp.importances],
    ]
    return [*out, ""]


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
    best = best_of(records)
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


def _pairs_section(pairs: Sequence[PairedSummary]) -> list[str]:
    if not pairs:
        return []
    out = [
        "## Paired differences on test",
        "",
        "The pick (best on validation) and the best generated agent against every seed the final "
        "test scored, each on the test tasks both were scored on (95% paired bootstrap CI, "
        "one-sided p for A > B). Each interval holds for its own comparison: among several, "
        "one may exclude 0 by chance.",
        "",
        "| A − B | n | difference (points) | 95% CI | p | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for p in pairs:
        verdict = interval_verdict(p.ci_low, p.ci_high)
        pv = f"{p.p_value:.3f}" if p.p_value is not None else "–"
        out.append(f"| `{p.best_id}` − `{p.baseline_id}` | {p.n} | {100 * p.mean:+.1f} | "
                   f"[{100 * p.ci_low:+.1f}, {100 * p.ci_high:+.1f}] | {pv} | {verdict} |")
    return [*out, ""]


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
    if axes[1].get_legend_handles_labels()[0]:  # nothing scored yet: no empty-legend warning
        axes[1].legend(loc="best", fontsize=8)
    fig.suptitle("Best-so-far validation score")
    fig.tight_layout()
    return atomic.write_with(Path(path), fig.savefig)


def plot_front(front: Front, path: str | Path) -> Path:
    """Every scored candidate's validation score (95% CI) against its cost per task.

    The Pareto front is drawn as a step line, its members labelled by id.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.subplots()
    pts = front.points
    means = [100 * p.score for p in pts]
    err = [[m - 100 * p.ci_low for m, p in zip(means, pts, strict=True)],
           [100 * p.ci_high - m for m, p in zip(means, pts, strict=True)]]
    ax.errorbar([p.cost for p in pts], means, yerr=err, fmt="o", ms=4, capsize=3, alpha=0.35,
                color="tab:gray", label="scored candidate, 95% CI")
    xs = [p.cost for p in front.front]
    ys = [100 * p.score for p in front.front]
    ax.step(xs, ys, where="post", color="tab:red", alpha=0.7)
    ax.scatter(xs, ys, s=36, color="tab:red", zorder=3, label="Pareto front")
    for p in front.front:
        ax.annotate(p.id, (p.cost, 100 * p.score), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)
    ax.set_xlabel(front.cost_label + ("" if front.unit == "usd" else " (all calls cost $0)"))
    ax.set_ylabel("validation score (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Validation score against cost per task", fontsize=10)
    fig.tight_layout()
    return atomic.write_with(Path(path), fig.savefig)
