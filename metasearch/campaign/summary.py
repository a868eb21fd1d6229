"""What a campaign's records add up to: prior spend, best picks, the meta agent's yield.

Pure functions of records; the loop and the report call them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from metasearch.llm.ledger import Counts
from metasearch.store.records import CandidateRecord

#: The gateway's fault counts a checkpoint carries beside the spend: kind -> calls.
FAULTS = ("retried", "failed")


def best_of(records: Sequence[CandidateRecord]) -> CandidateRecord | None:
    """The ``ok`` record with the best validation score (ties: the earlier record)."""
    scored = [(i, r) for i, r in enumerate(records) if r.status == "ok" and r.val is not None]
    if not scored:
        return None
    return max(scored, key=lambda p: (p[1].val.mean, p[1].val.ci_low, -p[0]))[1]  # type: ignore[union-attr]


def best_generated(records: Sequence[CandidateRecord]) -> CandidateRecord | None:
    """The best candidate the search wrote (not a seed), chosen on validation only."""
    return best_of([r for r in records if not r.is_seed])


def paired_on_test(a: CandidateRecord, b: CandidateRecord) -> Any | None:
    """``a`` − ``b`` on the test tasks both were scored on (a ``stats.PairedDiff``), or None."""
    from metasearch.evaluation.stats import paired_by_task

    if a.test is None or b.test is None:
        return None
    return paired_by_task(a.test.scores, b.test.scores)


def pairs_on_test(records: Sequence[CandidateRecord]) -> list[tuple[str, str, Any]]:
    """``(a_id, b_id, PairedDiff)`` for the pick (best on validation) and the best generated
    agent against every other seed the final test scored.

    The run's headline pairs only the best generated agent with the best seed; a write-up
    usually needs the pick against a named baseline too (``search.test_seeds``).
    """
    subjects: list[CandidateRecord] = []
    for r in (best_of(records), best_generated(records)):
        if r is not None and r.test is not None and all(r.id != s.id for s in subjects):
            subjects.append(r)
    seeds = [r for r in records if r.is_seed and r.test is not None]
    out = []
    for a in subjects:
        for b in seeds:
            diff = paired_on_test(a, b) if b.id != a.id else None
            if diff is not None:
                out.append((a.id, b.id, diff))
    return out


def prior_spend(archive: Any) -> dict[str, Any]:
    """What a resumed campaign already spent, for ``Budget.add_prior``.

    The last checkpoint carries the total real spend (test runs and a
    candidate cut off by the budget included); the records' own costs are
    the floor when it is missing or older, and the directory's log of billed
    calls (``llm.billed_log``) counts what a ``kill -9`` cut off after the last
    checkpoint. Cached calls were free (a directory rebuilt from the
    campaign's own replies files bills them again as they replay instead:
    ``llm.replies.OwedReplies``).
    """
    from metasearch.llm.billed_log import logged_spend

    records = archive.records()
    floor = {
        "usd": sum(r.cost_usd for r in records),
        "calls": sum(r.calls - int(r.meta.get("cached_calls", 0)) for r in records),
        "tokens": sum(r.tokens for r in records),
    }
    state = archive.state()
    saved = dict(state.meta.get("spent") or {}) if state is not None else {}
    root = getattr(archive, "root", None)  # a directory's archive (not a database's)
    logged = (logged_spend(root) if root is not None else None) or {}
    return {k: max(v, type(v)(saved.get(k, 0)), type(v)(logged.get(k, 0)))
            for k, v in floor.items()}


def prior_state(archive: Any) -> dict[str, Any]:
    """:func:`prior_spend` plus the calls retried and failed by kind before this run.

    The loop adds this run's gateway counts to it at every checkpoint
    (:func:`spent_so_far`), so the counts survive ``--resume``, summed over runs.
    """
    state = archive.state()
    saved = dict(state.meta.get("spent") or {}) if state is not None else {}
    faults = {k: {kind: int(n) for kind, n in dict(saved.get(k) or {}).items()} for k in FAULTS}
    return prior_spend(archive) | faults


def spent_so_far(prior: dict[str, Any], now: Counts) -> dict[str, Any]:
    """A checkpoint's ``spent``: ``prior`` (:func:`prior_state`) plus what this run's gateway did."""
    return {
        "usd": prior["usd"] + now.cost_usd,
        "calls": prior["calls"] + now.calls - now.cached_calls,
        "tokens": prior["tokens"] + now.tokens,
    } | {k: dict(Counter(prior.get(k, {})) + Counter(getattr(now, k))) for k in FAULTS}


def yield_counts(
    records: Sequence[CandidateRecord],
    read_code: Callable[[CandidateRecord], str] | None = None,
    reference_code: Sequence[str] = (),
) -> dict[str, int]:
    """How many proposals survived each stage: the strategy's yield.

    With ``read_code``, also how many valid proposals were structurally new:
    a design skeleton (:mod:`metasearch.candidate.skeleton`) unlike any earlier
    seed or valid proposal and unlike ``reference_code`` (code the strategy
    showed as an example: small meta agents often resubmit the example itself,
    or an archive agent with new prompts).
    """
    proposals = [r for r in records if isinstance(r.generation, int)]

    def reached(stage: str) -> int:
        return sum(1 for r in proposals if stage in r.meta.get("stages", ()))

    counts = {
        "proposed": len(proposals),
        "parsed": reached("parsed"),
        "normalised": reached("normalised"),
        "valid": reached("valid"),
        "ran": reached("ran"),
        "scored>0": reached("scored"),
    }
    if read_code is not None:
        counts["new structure"] = _structurally_new(records, read_code, reference_code)
    return counts


def _structurally_new(
    records: Sequence[CandidateRecord], read_code: Callable[[CandidateRecord], str],
    reference_code: Sequence[str],
) -> int:
    from metasearch.candidate.skeleton import structure_fingerprint

    seen: set[str] = {structure_fingerprint(code) for code in reference_code}
    new = 0
    for r in records:
        valid = r.is_seed or "valid" in r.meta.get("stages", ())
        if not valid or not r.code_path:
            continue
        fp = structure_fingerprint(read_code(r))
        new += int(not r.is_seed and fp not in seen)
        seen.add(fp)
    return new
