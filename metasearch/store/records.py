"""The record schema of a campaign archive: plain frozen data and id helpers, no I/O.

- :class:`CandidateRecord`: one candidate, including the invalid, failed,
  pruned and budget-stopped ones, with the reason;
- :class:`SplitScore`: fitness on one split (validation, or test added later);
- :class:`CampaignState`: a resume checkpoint;
- :class:`ProgressPoint` and :func:`progress_curve`: the best-so-far curve;
- :func:`candidate_id`, :func:`seed_id`, :func:`imported_id`: deterministic ids.

Each type round-trips through ``to_json``/``from_json`` (or ``asdict``) as one
line of ``archive.jsonl``; :mod:`metasearch.store.archive` stores them.
Records are frozen and never change once made.

Example::

    rec = CandidateRecord(id=candidate_id(1, 0), name="Vote", generation=1, status="ok")
    CandidateRecord.from_json(rec.to_json()) == rec
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

from metasearch.errors import MetasearchError

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "CampaignState",
    "CandidateRecord",
    "DuplicateRecordError",
    "Generation",
    "ProgressPoint",
    "SplitScore",
    "Status",
    "UnknownCandidateError",
    "candidate_id",
    "imported_id",
    "progress_curve",
    "seed_id",
]

Status = Literal["ok", "invalid", "failed", "timeout", "pruned", "budget"]
STATUSES: tuple[str, ...] = ("ok", "invalid", "failed", "timeout", "pruned", "budget")
Generation = int | Literal["initial", "imported"]
SCHEMA_VERSION = 1
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def candidate_id(generation: int, index: int) -> str:
    """Deterministic id of the ``index``-th candidate of a generation: ``g003-01``."""
    return f"g{generation:03d}-{index:02d}"


def seed_id(name: str) -> str:
    """Id of a hand-written seed agent: ``seed-chain_of_thought``."""
    return f"seed-{_slug(name)}"


def imported_id(index: int, name: str = "") -> str:
    """Id of the ``index``-th agent imported from an ADAS archive: ``imp-003-debate``."""
    return f"imp-{index:03d}" + (f"-{_slug(name)}" if name else "")


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_\-]+", "_", text.strip()).strip("_-")
    return s[:60] or "unnamed"


def _checked_id(cid: str) -> str:
    if not _ID_RE.match(cid):
        raise ValueError(f"candidate id {cid!r} must match {_ID_RE.pattern}")
    return cid


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class SplitScore:
    """Fitness on one split: mean score in [0, 1], its 95% CI, and per-task scores.

    ``scores`` maps task id → score, so two candidates can be compared with a
    paired statistic on the same tasks. It may be empty when the caller keeps
    per-task results only in ``results/<id>.json``.
    """

    mean: float
    ci_low: float
    ci_high: float
    n: int
    scores: Mapping[str, float] = field(default_factory=dict)
    median: float | None = None  # median of the bootstrap means (ADAS fitness strings)

    @classmethod
    def of(cls, fitness: Any, scores: Mapping[str, float] | None = None) -> SplitScore:
        """Copy any object with ``mean``, ``ci_low``, ``ci_high``, ``n`` (e.g. stats.Fitness)."""
        return cls(
            mean=float(fitness.mean),
            ci_low=float(fitness.ci_low),
            ci_high=float(fitness.ci_high),
            n=int(fitness.n),
            scores=dict(scores if scores is not None else getattr(fitness, "scores", None) or {}),
            median=float(fitness.median) if getattr(fitness, "median", None) is not None else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n": self.n,
            "scores": dict(self.scores),
            "median": self.median,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SplitScore:
        return cls(
            mean=float(d["mean"]),
            ci_low=float(d["ci_low"]),
            ci_high=float(d["ci_high"]),
            n=int(d["n"]),
            scores={str(k): float(v) for k, v in (d.get("scores") or {}).items()},
            median=float(d["median"]) if d.get("median") is not None else None,
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class CandidateRecord:
    """One candidate, whatever became of it. ``status`` says what; ``reason`` says why.

    ``code_path`` is relative to the campaign directory (``agents/<id>.py``),
    or ``""`` when no code was produced. ``val`` may hold a partial score for
    a pruned candidate; :meth:`Archive.best` considers ``ok`` records only.
    ``calls``/``tokens``/``cost_usd``/``wall_s`` cover everything spent on the
    candidate (meta agent and validation runs), not the later test run.
    """

    id: str
    name: str
    generation: Generation
    status: Status
    thought: str = ""
    code_path: str = ""
    parent_ids: tuple[str, ...] = ()
    reason: str = ""
    val: SplitScore | None = None
    test: SplitScore | None = None
    calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    errors: int = 0
    fingerprint: str = ""
    strategy: str = "adas"
    created_at: str = field(default_factory=_now)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _ID_RE.match(self.id):
            raise ValueError(f"candidate id {self.id!r} must match {_ID_RE.pattern}")
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {STATUSES}")
        if not (isinstance(self.generation, int) or self.generation in ("initial", "imported")):
            raise ValueError(
                f"generation {self.generation!r} must be an int, 'initial' or 'imported'"
            )
        if not isinstance(self.parent_ids, tuple):
            object.__setattr__(self, "parent_ids", tuple(self.parent_ids))

    @property
    def is_seed(self) -> bool:
        return self.generation == "initial"

    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["parent_ids"] = list(self.parent_ids)
        d["val"] = self.val.to_json() if self.val else None
        d["test"] = self.test.to_json() if self.test else None
        d["meta"] = dict(self.meta)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CandidateRecord:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["parent_ids"] = tuple(kw.get("parent_ids") or ())
        kw["val"] = SplitScore.from_json(d["val"]) if d.get("val") else None
        kw["test"] = SplitScore.from_json(d["test"]) if d.get("test") else None
        return cls(**kw)


@dataclass(frozen=True)
class CampaignState:
    """Where a campaign stopped: resume reads the last one.

    ``generation`` is the last *completed* generation (``-1``: none yet, the
    seeds may be done); ``step`` is a free label such as ``"seeds"``,
    ``"generation"``, ``"test"`` or ``"done"``.
    """

    generation: int
    step: str
    at: str = field(default_factory=_now)
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProgressPoint:
    """One step of the search curve (step = candidate index in archive order)."""

    step: int
    id: str
    best_val: float | None
    cum_cost_usd: float
    cum_calls: int
    cum_tokens: int


def progress_curve(records: Iterable[CandidateRecord]) -> list[ProgressPoint]:
    """Best-so-far validation score (``ok`` records) against cumulative spend."""
    out: list[ProgressPoint] = []
    best: float | None = None
    cost, calls, tokens = 0.0, 0, 0
    for i, r in enumerate(records):
        cost += r.cost_usd
        calls += r.calls
        tokens += r.tokens
        if r.status == "ok" and r.val is not None and (best is None or r.val.mean > best):
            best = r.val.mean
        out.append(ProgressPoint(i, r.id, best, cost, calls, tokens))
    return out


# --------------------------------------------------------------------------- errors


class DuplicateRecordError(ValueError):
    """A record with this id (or a test result for it) is already in the archive."""


class UnknownCandidateError(MetasearchError):
    """No candidate with that id in the archive."""
