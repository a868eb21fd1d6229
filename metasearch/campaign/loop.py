"""A search campaign: seeds, generations of proposals, a final test, a report.

The runner owns the order of things and nothing else: the strategy proposes,
the sandbox runs, the evaluator scores, the archive stores, the tracker
mirrors. Everything it needs is injected (see :func:`build_campaign`).

Durability: candidate ids are fixed before anything is spent and every
finished candidate is one appended line, so ``--resume`` skips what is done
and replays an interrupted candidate from the response cache (no re-billing).
Selection uses validation only; the test split is evaluated once, at the end,
for the best validation candidate and the seeds.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from metasearch.store.archive import (
    Archive,
    CampaignState,
    CandidateRecord,
    SplitScore,
    candidate_id,
    seed_id,
)
from metasearch.evaluation.run import AgentRunner, Evaluation, evaluate_agent
from metasearch.llm.ledger import Counts
from metasearch.llm.types import BudgetExceeded
from metasearch.campaign.racing import race
from metasearch.runtime.settings import AgentSettings
from metasearch.search.base import SearchStrategy, Slot
from metasearch.search.adas.prompts import debug_feedback_from_outcomes
from metasearch.search.adas.proposer import ProposalOutcome
from metasearch.suites.registry import Suite
from metasearch.suites.task import Task
from metasearch.candidate.validate import fingerprint


class Reporter(Protocol):
    """Live progress; the CLI renders it with rich, tests pass :class:`NullReporter`."""

    def phase(self, text: str) -> None: ...
    def tasks(self, label: str, total: int) -> None: ...
    def task_done(self) -> None: ...
    def candidate(self, record: CandidateRecord, best: CandidateRecord | None) -> None: ...


class NullReporter:
    def phase(self, text: str) -> None:
        pass

    def tasks(self, label: str, total: int) -> None:
        pass

    def task_done(self) -> None:
        pass

    def candidate(self, record: CandidateRecord, best: CandidateRecord | None) -> None:
        pass


#: Candidate statuses after which a generation makes its next attempt.
_RETRY = frozenset({"invalid", "failed"})


@dataclass(frozen=True)
class CampaignResult:
    directory: Path
    records: tuple[CandidateRecord, ...]
    best: CandidateRecord | None
    best_seed: CandidateRecord | None
    paired: Any | None  # stats.PairedDiff on test: best generated − best seed (same tasks)
    yield_counts: dict[str, int]
    stopped: str = ""  # why the campaign stopped early ("" = it finished)
    report: Path | None = None
    best_generated: CandidateRecord | None = None  # best non-seed on validation (paired vs seed)
    time_limit: str = ""  # what budget.max_search_minutes cut short ("" = nothing)


@dataclass
class Campaign:
    """The wired-up parts of one campaign. Build it with :func:`build_campaign`."""

    directory: Path
    archive: Archive
    strategy: SearchStrategy
    runner: AgentRunner
    gateway: Any
    suite: Suite
    val_tasks: list[Task]
    test_tasks: list[Task]
    seeds: list[Any]  # runtime.seeds.SeedAgent
    settings: AgentSettings
    generations: int
    debug_rounds: int = 1
    attempts: int = 1  # fresh proposals per generation until one runs
    pruning: bool = True
    minibatch: int = 8
    confidence: float = 0.95
    tracker: Any | None = None
    reporter: Reporter = field(default_factory=NullReporter)
    title: str = ""
    max_search_s: float | None = None  # wall time for new attempts in this run (None: no limit)
    clock: Callable[[], float] = time.monotonic
    _prior: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _deadline: float | None = field(default=None, init=False, repr=False)
    _time_notes: list[str] = field(default_factory=list, init=False, repr=False)
    _base: Counts = field(default_factory=Counts, init=False, repr=False)

    # ------------------------------------------------------------------ run

    def run(self) -> CampaignResult:
        stopped = ""
        self._prior = prior_spend(self.archive)
        self._base = self.gateway.snapshot().total
        try:
            if self.tracker is not None:
                self.tracker.sync(self.archive)
            self._seeds()
            if self.max_search_s is not None:
                self._deadline = self.clock() + self.max_search_s
            for g in range(1, self.generations + 1):
                state = self.archive.state()
                if state is not None and state.generation >= g:
                    continue  # finished before a resume: its attempts are settled
                if not self._generation(g):
                    break  # out of search time: the generation stays open for --resume
                self._checkpoint("generation_done", generation=g)
            self._final_test()
        except BudgetExceeded as exc:
            stopped = str(exc)
            self._checkpoint("stopped")  # keeps what the unfinished candidate spent
            self.reporter.phase(f"stopped: {exc}")
        except BaseException as exc:  # Ctrl-C or a bug: the parent run must not stay RUNNING
            if self.tracker is not None:
                status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
                with contextlib.suppress(Exception):
                    self.tracker.finish(status)
            raise
        return self._finish(stopped)

    def _checkpoint(self, step: str, *, generation: int | None = None) -> None:
        """Append a state line carrying the campaign's total real spend so far."""
        if generation is None:
            state = self.archive.state()
            generation = state.generation if state is not None else -1
        now = self.gateway.snapshot().total.minus(self._base)
        spent = {
            "usd": self._prior["usd"] + now.cost_usd,
            "calls": self._prior["calls"] + now.calls - now.cached_calls,
            "tokens": self._prior["tokens"] + now.tokens,
        }
        self.archive.checkpoint(CampaignState(generation=generation, step=step,
                                              meta={"spent": spent}))

    # ---------------------------------------------------------------- seeds

    def _seeds(self) -> None:
        for seed in self.seeds:
            cid = seed_id(Path(seed.path).stem if seed.path else seed.name)
            if self.archive.has(cid) or self.archive.has(seed_id(seed.name)):  # older ids: name
                continue
            self.reporter.phase(f"seed {seed.name}")
            start = time.monotonic()
            evaluation = self._evaluate(seed.code, self.val_tasks, cid, f"{seed.name} (seed)")
            record = _scored_record(
                cid, seed.name, "initial", seed.thought, seed.code, evaluation,
                wall_s=time.monotonic() - start, strategy="seed", parents=(),
            )
            self._store(record, seed.code, evaluation=evaluation)

    # ---------------------------------------------------------- generations

    def _generation(self, g: int) -> bool:
        """Fresh proposals, up to ``attempts``, until one runs (is valid and not failed).

        Each attempt is its own slot (``g001-00``, ``g001-01``, ...) with its
        own sample index, so an invalid or failed attempt stays in the archive
        with its reason and a resumed campaign replays the same attempts. An
        agent that crashed on every task, even after its debug rounds, teaches
        the archive nothing, so it does not end the generation. False when the
        search time ran out before the generation finished.
        """
        for index in range(self.attempts):
            slot = Slot(candidate_id(g, index), g, index)
            if not self.archive.has(slot.candidate_id):
                if self._out_of_time(slot):
                    return False
                self._attempt(slot)
            if self.archive.get(slot.candidate_id).status not in _RETRY:
                return True
        return True

    def _past_deadline(self) -> bool:
        return self._deadline is not None and self.clock() >= self._deadline

    def _out_of_time(self, slot: Slot) -> bool:
        """Past ``max_search_s``: start nothing new (the attempt in flight was allowed to end)."""
        if not self._past_deadline():
            return False
        minutes = f"{(self.max_search_s or 0.0) / 60:g}"
        self._time_notes.append(
            f"The search time limit (budget.max_search_minutes = {minutes}) was reached before "
            f"{slot.candidate_id}; no later attempt or generation started, and the final test "
            "ran on what was found. `--resume` continues the search."
        )
        self.reporter.phase(f"search time limit reached before {slot.candidate_id}")
        return True

    def _attempt(self, slot: Slot) -> None:
        g = slot.generation
        self.reporter.phase(f"generation {g}: the meta agent proposes {slot.candidate_id}")
        before = self._spent(slot.candidate_id)
        start = time.monotonic()
        outcome = self.strategy.ask(slot, self.archive)
        transcript = [outcome.transcript_markdown()]
        stages = list(outcome.stages)
        if not outcome.ok or outcome.proposal is None:
            self._store_invalid(slot, outcome, transcript, stages, before, start)
            return
        proposal = outcome.proposal
        incumbent = self.archive.best()
        inc_score = incumbent.val if incumbent is not None else None
        label = f"{slot.candidate_id} {proposal.name}"
        result = race(
            self.val_tasks,
            evaluate=lambda ts: self._evaluate(proposal.code, ts, slot.candidate_id, label),
            incumbent=inc_score, minibatch=self.minibatch, confidence=self.confidence,
            enabled=self.pruning,
        )
        evaluation = result.evaluation
        for round_no in range(1, self.debug_rounds + 1):
            # Errors and all-zero scores are debugged even when the minibatch
            # was pruned: a crashing agent is the one that most needs feedback.
            scores = [r.score for r in evaluation.result.results]
            outcomes = [_outcome_of(r) for r in evaluation.result.results]
            feedback = debug_feedback_from_outcomes(outcomes, self.val_tasks, scores)
            if feedback is None:
                break
            if self._past_deadline():
                self._time_notes.append(
                    f"The search time limit was reached during {slot.candidate_id}: its debug "
                    "rounds were skipped and it is recorded as first evaluated.")
                break
            self.reporter.phase(f"{slot.candidate_id}: debug round {round_no} ({feedback.kind})")
            fixed = self.strategy.fix(slot, proposal, feedback, round_no)
            transcript.append(fixed.transcript_markdown())
            stages.append(f"debug-{round_no}:" + ",".join(fixed.stages))
            if not fixed.ok or fixed.proposal is None:
                break
            proposal = fixed.proposal
            result = race(
                self.val_tasks,
                evaluate=lambda ts, p=proposal: self._evaluate(p.code, ts, slot.candidate_id, label),
                incumbent=inc_score, minibatch=self.minibatch, confidence=self.confidence,
                enabled=self.pruning,
            )
            evaluation = result.evaluation
        spent = self._spent(slot.candidate_id).minus(before)
        record = _scored_record(
            slot.candidate_id, proposal.name, g, proposal.thought, proposal.code, evaluation,
            wall_s=time.monotonic() - start, strategy=self.strategy.name,
            parents=_parents(self.archive), spent=spent,
        )
        meta = dict(record.meta) | {
            "stages": stages + _run_stages(evaluation),
            "changes": list(outcome.changes),
            "calls_saved_by_pruning": result.calls_saved,
        }
        status, reason = record.status, record.reason
        if result.pruned and status == "ok":  # failed / timeout say more than pruned
            status, reason = "pruned", result.reason
        record = _replace(record, status=status, reason=reason, meta=meta)
        self._store(record, proposal.code, evaluation=evaluation, transcript="\n\n".join(transcript))

    def _store_invalid(
        self, slot: Slot, outcome: ProposalOutcome, transcript: list[str], stages: list[str],
        before: Counts, start: float,
    ) -> None:
        spent = self._spent(slot.candidate_id).minus(before)
        proposal = outcome.proposal
        record = CandidateRecord(
            id=slot.candidate_id, name=proposal.name if proposal else "(unparsed)",
            generation=slot.generation, status="invalid",
            thought=proposal.thought if proposal else "", reason=outcome.reason,
            parent_ids=_parents(self.archive), calls=spent.calls, tokens=spent.tokens,
            cost_usd=spent.cost_usd, wall_s=time.monotonic() - start,
            fingerprint=fingerprint(proposal.code) if proposal and proposal.code else "",
            strategy=self.strategy.name,
            meta={"stages": stages, "failure": outcome.failure, "cached_calls": spent.cached_calls,
                  "changes": list(outcome.changes)},
        )
        code = proposal.code if proposal and proposal.code else None
        self._store(record, code, transcript="\n\n".join(transcript))

    # ------------------------------------------------------------ final test

    def _final_test(self) -> None:
        best = self.archive.best()
        if best is None or not self.test_tasks:
            return
        records = self.archive.records()
        chosen = [best, best_generated(records)] + [
            r for r in records if r.is_seed and r.status == "ok"
        ]
        for rec in {r.id: r for r in chosen if r is not None}.values():
            if rec.test is not None:
                continue
            self.reporter.phase(f"test split: {rec.id} ({rec.name})")
            code = self.archive.read_agent(rec.id)
            evaluation = self._evaluate(code, self.test_tasks, f"{rec.id}:test", f"{rec.name} on test")
            score = _split_score(evaluation)
            self.archive.write_results(rec.id, evaluation.result.to_json(), split="test")
            updated = self.archive.add_test_result(rec.id, score)
            self._checkpoint(f"tested {rec.id}")
            if self.tracker is not None:
                self.tracker.log_test(updated)

    # ---------------------------------------------------------------- finish

    def _finish(self, stopped: str) -> CampaignResult:
        from metasearch.reporting.report import PairedSummary, write_report
        from metasearch.evaluation.stats import paired_bootstrap

        records = self.archive.records()
        best = self.archive.best()
        best_gen = best_generated(records)
        best_seed = _best_of([r for r in records if r.is_seed])
        paired = None
        summary = None
        if best_gen is not None and best_seed is not None and best_gen.test and best_seed.test:
            shared = sorted(set(best_gen.test.scores) & set(best_seed.test.scores))
            if shared:
                paired = paired_bootstrap(
                    [best_gen.test.scores[t] for t in shared],
                    [best_seed.test.scores[t] for t in shared],
                )
                summary = PairedSummary.of(paired, best_id=best_gen.id, baseline_id=best_seed.id)
        counts = yield_counts(records, lambda r: self.archive.read_agent(r.id))
        notes = [f"Stopped early: {stopped}"] if stopped else []
        notes += self._time_notes
        saved = sum(int(r.meta.get("calls_saved_by_pruning", 0)) for r in records)
        if saved:
            notes.append(f"Pruning saved an estimated {saved} LLM calls.")
        report = write_report(self.directory, records, title=self.title or None,
                              yield_counts=counts, paired=summary, notes=notes)
        if self.tracker is not None:
            self.tracker.log_report(self.directory)
            self.tracker.finish("KILLED" if stopped else "FINISHED")
        return CampaignResult(self.directory, records, best, best_seed, paired, counts,
                              stopped, report, best_generated=best_gen,
                              time_limit=" ".join(self._time_notes))

    # -------------------------------------------------------------- helpers

    def _evaluate(self, code: str, tasks: Sequence[Task], key: str, label: str) -> Evaluation:
        self.reporter.tasks(label, len(tasks))
        settings = AgentSettings(**(self.settings.to_json() | {"candidate": key}))
        evaluation = evaluate_agent(
            code, tasks, scorer=self.suite.scorer, runner=self.runner, settings=settings,
            gateway=self.gateway, on_outcome=lambda _o: self.reporter.task_done(),
        )
        budget = [r.error for r in evaluation.result.results
                  if r.error is not None and r.error.kind == "budget"]
        if budget:
            why = next((e.message for e in budget if not e.message.startswith("not started")),
                       budget[0].message)
            raise BudgetExceeded(
                f"{why.rstrip('.')}. The budget ran out while evaluating {key}; that "
                "evaluation is not recorded and will be re-run (from the cache) on --resume.",
                cap="", limit=0, used=0,
            )
        return evaluation

    def _spent(self, key: str) -> Counts:
        return self.gateway.snapshot().by_candidate.get(key, Counts())

    def _store(self, record: CandidateRecord, code: str | None, *,
               evaluation: Evaluation | None = None, transcript: str | None = None) -> None:
        if evaluation is not None:
            self.archive.write_results(record.id, evaluation.result.to_json())
        if transcript:
            self.archive.write_transcript(record.id, transcript)
        stored = self.archive.add(record, code=code)
        self._checkpoint(f"stored {record.id}")
        if self.tracker is not None:
            self.tracker.sync(self.archive)
        self.strategy.tell(stored)
        self.reporter.candidate(stored, self.archive.best())


# ------------------------------------------------------------------ records


def _split_score(evaluation: Evaluation) -> SplitScore:
    scores = {r.task_id: r.score for r in evaluation.result.results}
    return SplitScore.of(evaluation.result.fitness, scores=scores)


def _scored_record(
    cid: str, name: str, generation: int | str, thought: str, code: str,
    evaluation: Evaluation, *, wall_s: float, strategy: str, parents: tuple[str, ...],
    spent: Counts | None = None,
) -> CandidateRecord:
    res = evaluation.result
    cost = spent if spent is not None else evaluation.cost
    kinds = {r.error.kind for r in res.results if r.error is not None}
    status, reason = "ok", ""
    if res.n and res.n_errors == res.n:
        status = "timeout" if kinds == {"timeout"} else "failed"
        first = res.errors[0].error
        reason = f"every task failed; first error: {first.brief()}" if first else "every task failed"
    return CandidateRecord(
        id=cid, name=name, generation=generation, status=status,  # type: ignore[arg-type]
        thought=thought, reason=reason, parent_ids=parents, val=_split_score(evaluation),
        calls=cost.calls, tokens=cost.tokens, cost_usd=cost.cost_usd, wall_s=wall_s,
        errors=res.n_errors, fingerprint=fingerprint(code), strategy=strategy,
        meta={"cached_calls": cost.cached_calls, "events": dict(cost.events)},
    )


def _replace(record: CandidateRecord, **changes: Any) -> CandidateRecord:
    from dataclasses import replace

    return replace(record, **changes)


def _parents(archive: Archive) -> tuple[str, ...]:
    """ADAS conditions each proposal on the whole archive: the parents are what it was shown."""
    return tuple(r.id for r in archive.records() if r.status == "ok")


def _run_stages(evaluation: Evaluation) -> list[str]:
    """``ran``: some task finished without an error; ``scored``: the score is above zero."""
    res = evaluation.result
    ran = res.n > res.n_errors
    return (["ran"] if ran else []) + (["scored"] if ran and res.fitness.mean > 0 else [])


def _outcome_of(result: Any) -> Any:
    from metasearch.outcomes import TaskOutcome

    return TaskOutcome(task_id=result.task_id, answer=result.answer, error=result.error)


def _best_of(records: Sequence[CandidateRecord]) -> CandidateRecord | None:
    """The ``ok`` record with the best validation score (ties as :meth:`Archive.best`)."""
    scored = [(i, r) for i, r in enumerate(records) if r.status == "ok" and r.val is not None]
    if not scored:
        return None
    return max(scored, key=lambda p: (p[1].val.mean, p[1].val.ci_low, -p[0]))[1]  # type: ignore[union-attr]


def best_generated(records: Sequence[CandidateRecord]) -> CandidateRecord | None:
    """The best candidate the search wrote (not a seed), chosen on validation only."""
    return _best_of([r for r in records if not r.is_seed])


def prior_spend(archive: Archive) -> dict[str, Any]:
    """What a resumed campaign already spent, for ``Budget.add_prior``.

    The last checkpoint carries the total real spend (test runs and a
    candidate cut off by the budget included); the records' own costs are
    the floor when it is missing or older. Cached calls were free.
    """
    records = archive.records()
    floor = {
        "usd": sum(r.cost_usd for r in records),
        "calls": sum(r.calls - int(r.meta.get("cached_calls", 0)) for r in records),
        "tokens": sum(r.tokens for r in records),
    }
    state = archive.state()
    saved = dict(state.meta.get("spent") or {}) if state is not None else {}
    return {k: max(v, type(v)(saved.get(k, 0))) for k, v in floor.items()}


def yield_counts(
    records: Sequence[CandidateRecord], read_code: Callable[[CandidateRecord], str] | None = None
) -> dict[str, int]:
    """How many proposals survived each stage: the meta agent's yield.

    With ``read_code``, also how many valid proposals were structurally new:
    a design skeleton (:mod:`metasearch.candidate.skeleton`) unlike any earlier seed or valid
    proposal and unlike the propose prompt's correct example (small meta agents often
    resubmit an archive agent with new prompts, or the example itself).
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
        counts["new structure"] = _structurally_new(records, read_code)
    return counts


def _structurally_new(
    records: Sequence[CandidateRecord], read_code: Callable[[CandidateRecord], str]
) -> int:
    from metasearch.search.adas.prompts import EXAMPLE_CODE
    from metasearch.candidate.skeleton import structure_fingerprint

    seen: set[str] = {structure_fingerprint(EXAMPLE_CODE)}  # copying the prompt's example is not new
    new = 0
    for r in records:
        valid = r.is_seed or "valid" in r.meta.get("stages", ())
        if not valid or not r.code_path:
            continue
        fp = structure_fingerprint(read_code(r))
        new += int(not r.is_seed and fp not in seen)
        seen.add(fp)
    return new
