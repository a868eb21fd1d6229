"""Compare campaigns from what their tracking store holds (local sqlite or a server).

For each campaign: the best agent on validation, its validation and test
scores with 95% CIs, spend (calls, tokens, cost, wall time) and candidates by
status. Between every two campaigns on the same suite: a paired bootstrap of
their best agents' per-task scores on the tasks both were scored on.

Example::

    data = load_campaigns(["runs/a", "runs/b"])
    result = compare_campaigns(data, split="test")
    plot_comparison(result.campaigns, "compare.png")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

from metasearch import atomic
from metasearch.errors import ConfigError, DataError
from metasearch.reporting.pareto import Front, FrontPoint, front_of_points
from metasearch.store.tracking import (
    CampaignData,
    CandidateRow,
    default_tracking_uri,
    read_campaign,
)

__all__ = [
    "CampaignSummary",
    "Comparison",
    "PairComparison",
    "ScoreCI",
    "compare_campaigns",
    "front_of_rows",
    "load_campaigns",
    "paired_difference",
    "plot_comparison",
    "summarize",
]

Split = Literal["validation", "test"]
_SUITE_KEYS = ("suite.name", "suite.data", "suite.difficulty")


@dataclass(frozen=True)
class ScoreCI:
    mean: float
    ci_low: float
    ci_high: float
    n: int

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n}


def _score(metrics: Mapping[str, float], prefix: str) -> ScoreCI | None:
    if f"{prefix}_score" not in metrics:
        return None
    mean = float(metrics[f"{prefix}_score"])
    return ScoreCI(
        mean=mean,
        ci_low=float(metrics.get(f"{prefix}_ci_low", mean)),
        ci_high=float(metrics.get(f"{prefix}_ci_high", mean)),
        n=int(metrics.get(f"{prefix}_n", 0)),
    )


@dataclass(frozen=True)
class CampaignSummary:
    """One campaign as ``metasearch compare`` shows it."""

    name: str
    tracking_uri: str
    suite: str
    suite_key: tuple[str, ...]
    best_id: str | None
    best_name: str
    val: ScoreCI | None
    test: ScoreCI | None
    n_candidates: int
    by_status: Mapping[str, int]
    calls: int
    tokens: int
    cost_usd: float
    wall_s: float
    curve: tuple[tuple[float, float, float], ...] = ()  # (cum cost, cum calls, best val)
    front: Front | None = None  # validation score against cost per task

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tracking_uri": self.tracking_uri,
            "suite": self.suite,
            "best": {
                "id": self.best_id,
                "name": self.best_name,
                "validation": self.val.to_json() if self.val else None,
                "test": self.test.to_json() if self.test else None,
            },
            "candidates": self.n_candidates,
            "by_status": dict(self.by_status),
            "calls": self.calls,
            "tokens": self.tokens,
            "cost_usd": self.cost_usd,
            "wall_s": self.wall_s,
            "curve": [{"cum_cost_usd": c, "cum_calls": n, "best_val": b} for c, n, b in self.curve],
            "pareto_front": self.front.to_json() if self.front else None,
        }


@dataclass(frozen=True)
class PairComparison:
    """``a`` − ``b`` (best agents) on their shared tasks; ``note`` says why it is missing."""

    a: str
    b: str
    split: str
    a_id: str | None = None
    b_id: str | None = None
    n: int = 0
    mean_diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Comparison:
    split: str
    campaigns: tuple[CampaignSummary, ...]
    pairs: tuple[PairComparison, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "campaigns": [c.to_json() for c in self.campaigns],
            "pairs": [p.to_json() for p in self.pairs],
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------- reading


def load_campaigns(
    campaign_dirs: Sequence[str | Path], *, tracking_uri: str | None = None
) -> list[CampaignData]:
    """Read each campaign from its store: its own ``mlflow.db``, or ``tracking_uri``.

    The experiment is named after the directory, so with a server the
    directories need not exist locally.
    """
    from metasearch.store.locate import STORE_FILE, is_location_url

    out = []
    for d in campaign_dirs:
        if tracking_uri is None and (is_location_url(str(d)) or (Path(d) / STORE_FILE).is_file()):
            out.append(_from_database(d))  # records in a database: read from the archive
            continue
        root = Path(d)
        if tracking_uri is None:
            if not (root / "mlflow.db").is_file():
                raise DataError(
                    f"{root} has no tracking store (mlflow.db). Pass a campaign directory "
                    "written by `metasearch run`, or --tracking-uri for a tracking server."
                )
            uri = default_tracking_uri(root)
        else:
            uri = tracking_uri
        out.append(read_campaign(uri, root.resolve().name))
    return out


def _from_database(location: str | Path) -> CampaignData:
    from metasearch.reporting.compare_archive import campaign_from_archive
    from metasearch.store.locate import open_archive

    archive = open_archive(location)
    return campaign_from_archive(archive, archive.campaign, archive.config_params())


def _best(rows: Sequence[CandidateRow]) -> CandidateRow | None:
    scored = [r for r in rows if r.status == "ok" and "val_score" in r.metrics]
    if not scored:
        return None
    order = sorted(scored, key=lambda r: r.start_time)
    rank = {r.id: i for i, r in enumerate(order)}
    return max(
        scored,
        key=lambda r: (r.metrics["val_score"], r.metrics.get("val_ci_low", 0.0), -rank[r.id]),
    )


def _curve(data: CampaignData) -> tuple[tuple[float, float, float], ...]:
    """(cumulative cost, cumulative calls, best-so-far val) per step."""
    if data.best_so_far:
        cost = dict(data.cum_cost)
        calls = dict(data.cum_calls)
        return tuple(
            (cost.get(step, 0.0), calls.get(step, 0.0), best) for step, best in data.best_so_far
        )
    out = []  # no step metrics on a parent run: rebuild from the candidate runs
    cost = calls = 0.0
    best: float | None = None
    for r in sorted(data.candidates, key=lambda r: r.start_time):
        cost += r.metrics.get("cost_usd", 0.0)
        calls += r.metrics.get("calls", 0.0)
        v = r.metrics.get("val_score")
        if r.status == "ok" and v is not None and (best is None or v > best):
            best = v
        if best is not None:
            out.append((cost, calls, best))
    return tuple(out)


def front_of_rows(rows: Sequence[CandidateRow]) -> Front:
    """The Pareto front from a tracking store's candidate runs (as ``front_of_records``).

    Cost per task is the run's ``cost_usd`` (when any run cost more than $0) or
    ``calls``, over its ``val_n``; only ``ok`` runs with a validation score count.
    """
    usd = any(r.metrics.get("cost_usd", 0.0) > 0 for r in rows)
    points = []
    for r in sorted(rows, key=lambda r: r.start_time):
        m = r.metrics
        n = int(m.get("val_n", 0))
        if r.status != "ok" or "val_score" not in m or n <= 0:
            continue
        spent = m.get("cost_usd", 0.0) if usd else m.get("calls", 0.0)
        points.append(FrontPoint(id=r.id, name=r.name, score=m["val_score"],
                                 ci_low=m.get("val_ci_low", m["val_score"]),
                                 ci_high=m.get("val_ci_high", m["val_score"]), n=n,
                                 cost=float(spent) / n))
    pruned = sum(1 for r in rows if r.status == "pruned")
    return front_of_points(points, unit="usd" if usd else "calls", pruned=pruned)


def summarize(data: CampaignData) -> CampaignSummary:
    rows = data.candidates
    best = _best(rows)
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r.status or "unknown"] = by_status.get(r.status or "unknown", 0) + 1

    def total(key: str) -> float:
        return float(sum(r.metrics.get(key, 0.0) for r in rows))

    return CampaignSummary(
        name=data.experiment_name,
        tracking_uri=data.tracking_uri,
        suite=data.params.get("suite.name", ""),
        suite_key=tuple(data.params.get(k, "") for k in _SUITE_KEYS),
        best_id=best.id if best else None,
        best_name=best.name if best else "",
        val=_score(best.metrics, "val") if best else None,
        test=_score(best.metrics, "test") if best else None,
        n_candidates=len(rows),
        by_status=dict(sorted(by_status.items())),
        calls=int(total("calls")),
        tokens=int(total("tokens")),
        cost_usd=total("cost_usd"),
        wall_s=total("wall_s"),
        curve=_curve(data),
        front=front_of_rows(rows),
    )


# --------------------------------------------------------------------------- statistics


def paired_difference(
    a: Mapping[str, float],
    b: Mapping[str, float],
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[int, Any]:
    """Paired bootstrap of mean(a) − mean(b) over the task ids both hold.

    Returns ``(n_shared, PairedDiff | None)``; ``None`` when no task is shared.
    """
    from metasearch.evaluation.stats import paired_by_task

    diff = paired_by_task(a, b, n_resamples=n_resamples, seed=seed)
    return (diff.n if diff is not None else 0), diff


def _task_scores(data: CampaignData, cid: str, split: Split) -> dict[str, float]:
    doc = data.candidate_scores(cid).get(split) or {}
    return {str(k): float(v) for k, v in (doc.get("scores") or {}).items()}


def compare_campaigns(
    campaigns: Sequence[CampaignData],
    *,
    split: Split = "test",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Summaries of every campaign, and paired differences between those on one suite."""
    if split not in ("validation", "test"):
        raise ConfigError(f"--split must be 'validation' or 'test', not {split!r}.")
    summaries = [summarize(d) for d in campaigns]
    notes: list[str] = []
    if split == "validation":
        notes.append(
            "Validation scores chose the best agents, so their differences on validation are "
            "biased upwards; compare on test for an honest estimate."
        )
    cache: dict[int, dict[str, float]] = {}

    def scores(i: int) -> dict[str, float]:
        if i not in cache:
            cid = summaries[i].best_id
            cache[i] = _task_scores(campaigns[i], cid, split) if cid else {}
        return cache[i]

    pairs: list[PairComparison] = []
    for i, j in combinations(range(len(summaries)), 2):
        a, b = summaries[i], summaries[j]
        base = {"a": a.name, "b": b.name, "split": split, "a_id": a.best_id, "b_id": b.best_id}
        if not a.suite or a.suite_key != b.suite_key:
            why = (
                "the suite of one campaign is unknown"
                if not a.suite or not b.suite
                else (f"they ran different suites ({a.suite} vs {b.suite}) or suite settings")
            )
            pairs.append(PairComparison(**base, note=f"not compared: {why}"))
            continue
        if a.best_id is None or b.best_id is None:
            pairs.append(PairComparison(**base, note="not compared: a campaign has no ok agent"))
            continue
        sa, sb = scores(i), scores(j)
        if not sa or not sb:
            pairs.append(
                PairComparison(
                    **base,
                    note=f"not compared: a best agent has no per-task {split} scores"
                    + (" (was the final test evaluation run?)" if split == "test" else ""),
                )
            )
            continue
        n, diff = paired_difference(sa, sb, n_resamples=n_resamples, seed=seed)
        if diff is None:
            pairs.append(PairComparison(**base, note=f"not compared: no shared {split} tasks"))
            continue
        pairs.append(
            PairComparison(
                **base,
                n=n,
                mean_diff=diff.mean_diff,
                ci_low=diff.ci_low,
                ci_high=diff.ci_high,
                p_value=diff.p_value,
            )
        )
    return Comparison(
        split=split, campaigns=tuple(summaries), pairs=tuple(pairs), notes=tuple(notes)
    )


# --------------------------------------------------------------------------- plot


def plot_comparison(summaries: Sequence[CampaignSummary], path: str | Path) -> Path:
    """PNG: best-so-far validation score against cumulative cost, one line per campaign.

    When every campaign cost $0 (local models), the x axis is cumulative LLM calls.
    """

    from matplotlib.figure import Figure

    by_calls = all(not c.curve or c.curve[-1][0] == 0 for c in summaries)
    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.subplots()
    for c in summaries:
        if not c.curve:
            continue
        xs = [(p[1] if by_calls else p[0]) for p in c.curve]
        ys = [100 * p[2] for p in c.curve]
        ax.step(xs, ys, where="post", label=c.name)
        ax.scatter(xs[-1:], ys[-1:], s=16)
    ax.set_xlabel("cumulative LLM calls" if by_calls else "cumulative cost (USD)")
    ax.set_ylabel("best-so-far validation score (%)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # no campaign has a scored candidate: no legend
        ax.legend(loc="lower right", fontsize=8)
    title = "Best-so-far validation score"
    if by_calls:
        title += " (all calls cost $0: x is LLM calls)"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic.write_with(path, fig.savefig)
