"""Thread-safe accounting of calls, tokens, cost, latency, errors and reply-protocol events.

Kept in total, per role (``meta``/``task``) and per candidate id. A
:class:`LedgerSnapshot` is a plain, JSON-able copy; ``after.minus(before)``
gives what happened in between (e.g. the cost of one candidate evaluation).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

EVENTS = ("parse_failure", "repair", "missing_field", "truncated")


@dataclass(frozen=True)
class Counts:
    """Totals for one slice of the ledger. ``calls`` includes ``cached_calls``."""

    calls: int = 0
    cached_calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    events: dict[str, int] = field(default_factory=dict)
    retried: dict[str, int] = field(default_factory=dict)  # transient failures retried, by kind
    failed: dict[str, int] = field(default_factory=dict)  # calls that failed, by kind of last error

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def minus(self, other: Counts) -> Counts:
        def sub(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
            c = Counter(a)
            c.subtract(b)
            return {k: v for k, v in c.items() if v}

        return Counts(
            calls=self.calls - other.calls,
            cached_calls=self.cached_calls - other.cached_calls,
            errors=self.errors - other.errors,
            prompt_tokens=self.prompt_tokens - other.prompt_tokens,
            completion_tokens=self.completion_tokens - other.completion_tokens,
            cost_usd=self.cost_usd - other.cost_usd,
            latency_s=self.latency_s - other.latency_s,
            events=sub(self.events, other.events),
            retried=sub(self.retried, other.retried),
            failed=sub(self.failed, other.failed),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LedgerSnapshot:
    total: Counts = field(default_factory=Counts)
    by_role: dict[str, Counts] = field(default_factory=dict)
    by_candidate: dict[str, Counts] = field(default_factory=dict)

    def minus(self, before: LedgerSnapshot) -> LedgerSnapshot:
        """What was recorded between ``before`` and this snapshot."""

        def diff(now: dict[str, Counts], then: dict[str, Counts]) -> dict[str, Counts]:
            out = {k: v.minus(then.get(k, Counts())) for k, v in now.items()}
            return {k: v for k, v in out.items() if v != Counts()}

        return LedgerSnapshot(
            total=self.total.minus(before.total),
            by_role=diff(self.by_role, before.by_role),
            by_candidate=diff(self.by_candidate, before.by_candidate),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def delta(before: LedgerSnapshot, after: LedgerSnapshot) -> LedgerSnapshot:
    """``after.minus(before)``."""
    return after.minus(before)


class _Acc:
    __slots__ = ("calls", "cached", "errors", "pt", "ct", "cost", "lat", "events", "retried",
                 "failed")

    def __init__(self) -> None:
        self.calls = self.cached = self.errors = self.pt = self.ct = 0
        self.cost = self.lat = 0.0
        self.events: Counter[str] = Counter()
        self.retried: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()

    def freeze(self) -> Counts:
        return Counts(
            self.calls, self.cached, self.errors, self.pt, self.ct, self.cost, self.lat,
            dict(self.events), dict(self.retried), dict(self.failed),
        )  # fmt: skip


class Ledger:
    """Records what the gateway did. All methods are thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = _Acc()
        self._roles: dict[str, _Acc] = {}
        self._cands: dict[str, _Acc] = {}

    def _slices(self, role: str | None, candidate: str | None) -> list[_Acc]:
        out = [self._total]
        if role is not None:
            out.append(self._roles.setdefault(role, _Acc()))
        if candidate is not None:
            out.append(self._cands.setdefault(candidate, _Acc()))
        return out

    def record_call(
        self,
        *,
        role: str | None,
        candidate: str | None,
        prompt_tokens: int,
        completion_tokens: int,
        cost_usd: float,
        latency_s: float,
        cached: bool = False,
    ) -> None:
        with self._lock:
            for acc in self._slices(role, candidate):
                acc.calls += 1
                acc.cached += int(cached)
                acc.pt += prompt_tokens
                acc.ct += completion_tokens
                acc.cost += cost_usd
                acc.lat += latency_s

    def record_error(self, *, role: str | None, candidate: str | None,
                     kind: str = "other") -> None:
        """A call that failed; ``kind`` is what its last attempt hit (``backend.fault_kind``)."""
        with self._lock:
            for acc in self._slices(role, candidate):
                acc.errors += 1
                acc.failed[kind] += 1

    def record_retry(self, kind: str, *, role: str | None, candidate: str | None) -> None:
        """One transient failure that the gateway retries (``rate_limited``, ``malformed``, ...)."""
        with self._lock:
            for acc in self._slices(role, candidate):
                acc.retried[kind] += 1

    def note(
        self, event: str, *, candidate: str | None = None, n: int = 1, role: str | None = "task"
    ) -> None:
        """Count a reply-protocol event (``parse_failure``, ``repair``, ``missing_field``, ``truncated``)."""
        with self._lock:
            for acc in self._slices(role, candidate):
                acc.events[event] += n

    def add(self, counts: Counts, *, role: str | None, candidate: str | None) -> None:
        """Add counts recorded by another ledger (a Ray node's gateway) to these slices."""
        with self._lock:
            for acc in self._slices(role, candidate):
                acc.calls += counts.calls
                acc.cached += counts.cached_calls
                acc.errors += counts.errors
                acc.pt += counts.prompt_tokens
                acc.ct += counts.completion_tokens
                acc.cost += counts.cost_usd
                acc.lat += counts.latency_s
                acc.events.update(counts.events)
                acc.retried.update(counts.retried)
                acc.failed.update(counts.failed)

    def snapshot(self) -> LedgerSnapshot:
        with self._lock:
            return LedgerSnapshot(
                total=self._total.freeze(),
                by_role={k: v.freeze() for k, v in self._roles.items()},
                by_candidate={k: v.freeze() for k, v in self._cands.items()},
            )
