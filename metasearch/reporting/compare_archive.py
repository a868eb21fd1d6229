"""``metasearch compare`` on campaigns whose records live in a database (``--worker``).

Such a campaign has one MLflow store per worker, none of which holds every
record, so it is compared from its archive instead: each record becomes the
row a tracking store would hold (the same metric names), and per-task scores
come from the records themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from metasearch.store.records import CandidateRecord
from metasearch.store.tracking import CampaignData, CandidateRow

__all__ = ["campaign_from_archive"]


@dataclass(frozen=True)
class ArchiveCampaign(CampaignData):
    records: tuple[CandidateRecord, ...] = field(default=())

    def candidate_scores(self, cid: str) -> dict[str, Any]:
        rec = next((r for r in self.records if r.id == cid), None)
        if rec is None:
            raise KeyError(cid)
        return {split: s.to_json() for split, s in (("validation", rec.val), ("test", rec.test))
                if s is not None}


def _metrics(rec: CandidateRecord) -> dict[str, float]:
    m = {"calls": float(rec.calls), "tokens": float(rec.tokens), "cost_usd": rec.cost_usd,
         "wall_s": rec.wall_s}
    for prefix, s in (("val", rec.val), ("test", rec.test)):
        if s is not None:
            m |= {f"{prefix}_score": s.mean, f"{prefix}_ci_low": s.ci_low,
                  f"{prefix}_ci_high": s.ci_high, f"{prefix}_n": float(s.n)}
    return m


def campaign_from_archive(archive: Any, name: str, params: dict[str, str]) -> ArchiveCampaign:
    """The compare view of a campaign read from its archive (any backend)."""
    records = archive.records()
    rows = tuple(CandidateRow(
        id=r.id, run_id="", name=r.name, generation=str(r.generation), status=r.status,
        params={k: str(v) for k, v in dict(r.meta.get("params") or {}).items()},
        metrics=_metrics(r), start_time=i) for i, r in enumerate(records))
    return ArchiveCampaign(
        tracking_uri=getattr(archive, "path", ""), experiment_name=name, experiment_id="",
        parent_run_id=None, params=params, candidates=rows, best_so_far=(), cum_cost=(),
        cum_calls=(), records=records)
