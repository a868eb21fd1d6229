"""A search campaign: seeds, the strategy's slots, a final test, a report.

The loop owns the order of things and nothing else: the strategy proposes,
the runner executes, the evaluator scores, the archive stores, the tracker
mirrors. Everything is injected (see :func:`metasearch.campaign.build.build_campaign`);
it imports no strategy.

Up to ``parallel_candidates`` candidates are in flight at once, through the
same gateway limits and sandbox pool. Their records are committed in the
order their slots were asked, and each slot sees only what its strategy says
it may (:class:`~metasearch.search.base.ArchiveView`), so the records are
the same for any N. Durability: slot ids are fixed before anything is spent
and every finished candidate is one appended line, so ``--resume`` skips what
is done and replays an interrupted candidate from the response cache (no
re-billing). Selection uses validation only; the test split is evaluated
once, at the end, for the best validation candidate, the best generated one
and the seeds (or the validation-best seed and those ``test_seeds`` names).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from metasearch.campaign.inorder import InOrder
from metasearch.campaign.racing import race, race_stepwise
from metasearch.campaign.recording import Done, invalid_record, scored_record, split_score
from metasearch.campaign.summary import (
    best_generated,
    best_of,
    paired_on_test,
    pairs_on_test,
    prior_state,
    spent_so_far,
    yield_counts,
)
from metasearch.evaluation.run import Evaluation, evaluate_agent
from metasearch.execution.base import AgentRunner
from metasearch.llm.ledger import Counts
from metasearch.llm.types import BudgetExceeded, ContextWindowError, ProviderError
from metasearch.runtime.settings import AgentSettings
from metasearch.search.base import (
    ArchiveView,
    Fixer,
    ProposalOutcome,
    Pruner,
    SearchStrategy,
    Slot,
)
from metasearch.search.feedback import debug_feedback_from_outcomes
from metasearch.store.archive import Archive
from metasearch.store.records import CampaignState, CandidateRecord, seed_id
from metasearch.suites.registry import Suite
from metasearch.suites.task import Task


class Reporter(Protocol):
    """Live progress; the CLI renders it with rich, tests pass :class:`NullReporter`.

    Called from candidate threads as well as the loop's: implementations lock.
    """

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
    """The wired-up parts of one campaign. Build it with ``campaign.build.build_campaign``."""

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
    parallel_candidates: int = 1
    pruning: bool = True
    minibatch: int = 8
    confidence: float = 0.95
    tracker: Any | None = None
    reporter: Reporter = field(default_factory=NullReporter)
    title: str = ""
    max_search_s: float | None = None  # wall time for new slots in this run (None: no limit)
    max_search_calls: int | None = None  # billed calls (all runs) after which no slot starts
    clock: Callable[[], float] = time.monotonic
    coordinator: Any | None = None  # store.coordinator.Coordinator: one of several workers
    test_seeds: Sequence[str] | None = None  # seed names to test (None: all; best always)
    _prior: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _deadline: float | None = field(default=None, init=False, repr=False)
    _time_notes: list[str] = field(default_factory=list, init=False, repr=False)
    _notes: list[str] = field(default_factory=list, init=False, repr=False)  # for the report
    _base: Counts = field(default_factory=Counts, init=False, repr=False)
    # ids of the records this process committed (one of several workers logs only these)
    committed: set[str] = field(default_factory=set, init=False, repr=False)

    # ------------------------------------------------------------------ run

    def run(self) -> CampaignResult:
        stopped = ""
        self._prior = prior_state(self.archive)
        self._base = self.gateway.snapshot().total
        try:
            if self.tracker is not None:
                self.tracker.sync(self.archive)
            self._seeds()
            if self.max_search_s is not None:
                self._deadline = self.clock() + self.max_search_s
            self._search()
            self._final_test()
        except BudgetExceeded as exc:
            stopped = str(exc)
            self._checkpoint("stopped")  # keeps what the unfinished candidates spent
            self.reporter.phase(f"stopped: {exc}")
        except BaseException as exc:  # Ctrl-C, SIGTERM or a bug
            # What unfinished candidates were billed: a resume replays their calls from the
            # cache for free, so a count without them would let the search buy them again.
            with contextlib.suppress(Exception):
                self._checkpoint("stopped")
            if self.tracker is not None:  # and the parent run must not stay RUNNING
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
        spent = spent_so_far(self._prior, now)  # spend, and calls retried / failed by kind
        self.archive.checkpoint(CampaignState(generation=generation, step=step,
                                              meta={"spent": spent}))

    # ---------------------------------------------------------------- seeds

    def _seeds(self) -> None:
        todo = []
        for seed in self.seeds:
            cid = seed_id(Path(seed.path).stem if seed.path else seed.name)
            if self.archive.has(cid) or self.archive.has(seed_id(seed.name)):  # older ids: name
                continue
            todo.append((cid, lambda s=seed, c=cid: self._claimed(c, lambda: self._seed(s, c))))
        jobs: InOrder[str, Done] = InOrder(self.parallel_candidates, name="seed")
        jobs.map(todo, lambda _cid, done: self._store(done))

    def _seed(self, seed: Any, cid: str) -> Done:
        self.reporter.phase(f"seed {seed.name}")
        start = time.monotonic()
        evaluation = self._evaluate(seed.code, self.val_tasks, cid, f"{seed.name} (seed)")
        record = scored_record(
            cid, seed.name, "initial", seed.thought, seed.code, evaluation,
            wall_s=time.monotonic() - start, strategy="seed", parents=(),
        )
        return Done(record, seed.code, evaluation)

    # --------------------------------------------------------------- search

    def _search(self) -> None:
        """Ask for slots while there is room; commit finished candidates in ask order.

        A slot starts only once everything it may see is committed: every
        pending slot of an earlier generation, and the ids in ``slot.sees``.
        Until then it is held, so no view depends on what finished sooner.
        """
        jobs: InOrder[Slot, Done] = InOrder(self.parallel_candidates, name="candidate")
        held: list[Slot] = []
        state = self.archive.state()
        done_gen = state.generation if state is not None else 0
        top_gen = done_gen
        exhausted = cut = False
        last = ""  # the last slot started in this run
        try:
            while True:
                jobs.commit_ready(lambda _slot, d: self._store(d))
                if not (exhausted or cut or jobs.failed) and self._past_deadline():
                    cut = True
                    held.clear()  # asked, never started: nothing was spent on them
                    self._note_time_limit(last, jobs.keys)
                if not (cut or jobs.failed):
                    if not held and not exhausted and jobs.free:
                        slots = self._ask(jobs.free, jobs.keys)
                        held.extend(slots)
                        exhausted = not slots and not len(jobs)
                        if slots:
                            top_gen = max(top_gen, *(s.generation for s in slots))
                            low = min(s.generation for s in [*jobs.keys, *held]) - 1
                            if low > done_gen:  # nothing of it is left to ask or commit
                                done_gen = low
                                self._checkpoint("generation_done", generation=low)
                    while held and jobs.free and _ready(held[0], jobs.keys):
                        slot = held.pop(0)
                        jobs.submit(slot, lambda s=slot: self._claimed(
                            s.candidate_id, lambda: self._candidate(s)))
                        last = slot.candidate_id
                if not len(jobs) and not held:
                    break
                jobs.wait()
        except Exception:
            jobs.abandon()
            raise
        if exhausted and top_gen > done_gen:
            self._checkpoint("generation_done", generation=top_gen)

    def _ask(self, free: int, pending: Sequence[Slot]) -> list[Slot]:
        slots = list(self.strategy.ask(free, self.archive))
        taken = {s.candidate_id for s in pending}
        for s in slots:  # a worker may ask for what another worker just committed
            if ((self.coordinator is None and self.archive.has(s.candidate_id))
                    or s.candidate_id in taken):
                raise RuntimeError(
                    f"strategy {self.strategy.name!r} asked for slot {s.candidate_id} twice; "
                    "ask must open only ids that are neither archived nor in flight")
            taken.add(s.candidate_id)
        if len(slots) > free:
            raise RuntimeError(f"strategy {self.strategy.name!r} opened {len(slots)} slots "
                               f"when {free} were free")
        return slots

    def _past_deadline(self) -> bool:
        return bool(self._limit_reached())

    def _limit_reached(self) -> str:
        """Which search limit has passed ("" = none): the time, or the calls billed so far."""
        if self._deadline is not None and self.clock() >= self._deadline:
            return f"The search time limit (budget.max_search_minutes = " \
                   f"{(self.max_search_s or 0.0) / 60:g})"
        if self.max_search_calls is not None:
            if self.coordinator is not None:  # one of several workers: the database's count
                billed = self.gateway.budget.usage().calls  # of every worker's billed calls
            else:
                now = self.gateway.snapshot().total.minus(self._base)
                billed = self._prior["calls"] + now.calls - now.cached_calls
            if billed >= self.max_search_calls:
                return (f"The search call budget (budget.max_search_calls = "
                        f"{self.max_search_calls}; {billed} calls billed so far)")
        return ""

    def _note_time_limit(self, last: str, pending: Sequence[Slot]) -> None:
        which = self._limit_reached() or "The search limit"
        where = f" after {last} started" if last else " before the first candidate of this run"
        during = (f" (while {', '.join(s.candidate_id for s in pending)} ran to its end)"
                  if pending else "")
        self._time_notes.append(
            f"{which} was reached{where}"
            f"{during}; no later candidate started, and the final test ran on what was found. "
            "`--resume` continues the search."
        )
        self.reporter.phase("search limit reached: no new candidate starts")

    def _candidate(self, slot: Slot) -> Done:
        """Propose, race, debug: one slot, start to end, on its own thread."""
        cid = slot.candidate_id
        self.reporter.phase(f"generation {slot.generation}: {self.strategy.name} proposes {cid}")
        before = self._spent(cid)
        start = time.monotonic()
        view = ArchiveView.for_slot(self.archive, slot)
        outcome = _propose(self.strategy, slot, view)
        transcript = [outcome.transcript]
        stages = list(outcome.stages)
        if not outcome.ok:
            spent = self._spent(cid).minus(before)
            record = invalid_record(slot, outcome, self.strategy.name, spent,
                                    wall_s=time.monotonic() - start, stages=stages)
            code = outcome.proposal.code if outcome.proposal and outcome.proposal.code else None
            return Done(record, code, None, _join(transcript))
        proposal = outcome.proposal
        assert proposal is not None
        incumbent = view.best()
        inc_score = incumbent.val if incumbent is not None else None
        label = f"{cid} {proposal.name}"

        def run(code: str) -> Any:
            if isinstance(self.strategy, Pruner) and self.pruning:
                strategy: Pruner = self.strategy
                return race_stepwise(
                    self.val_tasks, evaluate=lambda ts: self._evaluate(code, ts, cid, label),
                    judge=lambda scores: strategy.should_prune(slot, scores),
                    minibatch=self.minibatch)
            return race(self.val_tasks, evaluate=lambda ts: self._evaluate(code, ts, cid, label),
                        incumbent=inc_score, minibatch=self.minibatch,
                        confidence=self.confidence, enabled=self.pruning)

        result = run(proposal.code)
        rounds = self.strategy.debug_rounds if isinstance(self.strategy, Fixer) else 0
        for round_no in range(1, rounds + 1):
            # Errors and all-zero scores are debugged even when the minibatch
            # was pruned: a crashing agent is the one that most needs feedback.
            results = result.evaluation.result.results
            feedback = debug_feedback_from_outcomes(results, self.val_tasks,
                                                    [r.score for r in results])
            if feedback is None:
                break
            if self._past_deadline():
                self._time_notes.append(
                    f"{self._limit_reached()} was reached during {cid}: its debug "
                    "rounds were skipped and it is recorded as first evaluated.")
                break
            self.reporter.phase(f"{cid}: debug round {round_no} ({feedback.kind})")
            try:
                fixed: ProposalOutcome = self.strategy.fix(  # type: ignore[attr-defined]
                    slot, proposal, feedback, round_no, view)
            except (ProviderError, ContextWindowError) as exc:  # keep what was evaluated
                stages.append(f"debug-{round_no}:provider")
                self._notes.append(f"{cid}: debug round {round_no} was skipped, the meta "
                                   f"model failed: {exc}")
                break
            transcript.append(fixed.transcript)
            stages.append(f"debug-{round_no}:" + ",".join(fixed.stages))
            if not fixed.ok or fixed.proposal is None:
                break
            proposal = fixed.proposal
            result = run(proposal.code)
        evaluation = result.evaluation
        spent = self._spent(cid).minus(before)
        record = scored_record(
            cid, proposal.name, slot.generation, proposal.thought, proposal.code, evaluation,
            wall_s=time.monotonic() - start, strategy=self.strategy.name,
            parents=proposal.parents, spent=spent,
            meta=dict(proposal.meta) | {
                "stages": stages + _run_stages(evaluation),
                "changes": list(outcome.changes),
                "calls_saved_by_pruning": result.calls_saved,
            } | ({"params": dict(proposal.params)} if proposal.params else {}),
        )
        if result.pruned and record.status == "ok":  # failed / timeout say more than pruned
            record = _replace(record, status="pruned", reason=result.reason)
        return Done(record, proposal.code, evaluation, _join(transcript))

    # ------------------------------------------------------------ final test

    def _final_test(self) -> None:
        if self.coordinator is not None:
            self.reporter.phase("search done: the final test is run by the worker that "
                                "finishes last")
            if not self.coordinator.take_final_test():
                self.reporter.phase("final test: run by another worker")
                return
        self._run_final_test()  # an error leaves the claim to expire: another worker resumes it
        if self.coordinator is not None:
            self.coordinator.final_test_done()
            if self.tracker is not None and self.tracker.owned is not None:
                self.tracker.catch_up(self.archive)  # runs that dead workers left out

    def _run_final_test(self) -> None:
        best = self.archive.best()
        if best is None or not self.test_tasks:
            return
        records = self.archive.records()
        seeds = [r for r in records if r.is_seed and r.status == "ok"]
        if self.test_seeds is not None:  # fewer seeds on test: the validation-best always
            wanted = {seed_id(name) for name in self.test_seeds}
            seeds = [r for r in seeds if r.id in wanted] + [best_of(seeds)]
        chosen = [best, best_generated(records), *seeds]
        todo = [(rec.id, lambda r=rec: self._test(r))
                for rec in {r.id: r for r in chosen if r is not None}.values() if rec.test is None]
        jobs: InOrder[str, Evaluation] = InOrder(self.parallel_candidates, name="test")
        jobs.map(todo, self._store_test)

    def _test(self, rec: CandidateRecord) -> Evaluation:
        self.reporter.phase(f"test split: {rec.id} ({rec.name})")
        code = self.archive.read_agent(rec.id)
        return self._evaluate(code, self.test_tasks, f"{rec.id}:test", f"{rec.name} on test")

    def _store_test(self, cid: str, evaluation: Evaluation) -> None:
        self.archive.write_results(cid, evaluation.result.to_json(), split="test")
        self.archive.write_traces(cid, evaluation.traces, split="test")
        updated = self.archive.add_test_result(cid, split_score(evaluation))
        self._checkpoint(f"tested {cid}")
        if self.tracker is not None:
            self.tracker.log_test(updated)

    # ---------------------------------------------------------------- finish

    def _finish(self, stopped: str) -> CampaignResult:
        from metasearch.reporting.report import PairedSummary, write_report

        records = self.archive.records()
        best = self.archive.best()
        best_gen = best_generated(records)
        best_seed = best_of([r for r in records if r.is_seed])
        paired = paired_on_test(best_gen, best_seed) if best_gen and best_seed else None
        summary = (PairedSummary.of(paired, best_id=best_gen.id, baseline_id=best_seed.id)
                   if paired is not None and best_gen and best_seed else None)
        pairs = [PairedSummary.of(d, best_id=a, baseline_id=b) for a, b, d in pairs_on_test(records)]
        counts = yield_counts(records, lambda r: self.archive.read_agent(r.id),
                              getattr(self.strategy, "reference_code", ()))
        notes = [f"Stopped early: {stopped}"] if stopped else []
        notes += self._time_notes + self._notes
        saved = sum(int(r.meta.get("calls_saved_by_pruning", 0)) for r in records)
        if saved:
            notes.append(f"Pruning saved an estimated {saved} LLM calls.")
        report = write_report(self.directory, records, title=self.title or None,
                              yield_counts=counts, paired=summary, pairs=pairs, notes=notes)
        if self.tracker is not None:
            try:  # the report is on disk: a tracking server's hiccup must not fail the campaign
                self.tracker.log_report(self.directory)
            except Exception as exc:  # noqa: BLE001 - any client or server error, said in one line
                self.reporter.phase(f"warning: could not attach the report to MLflow "
                                    f"({type(exc).__name__}: {str(exc)[:200]}); it is in "
                                    f"{report}")
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

    def _claimed(self, cid: str, work: Callable[[], Done]) -> Done:
        """``work()`` if this worker holds (or takes over) ``cid``; else the record another
        worker commits for it. Without a coordinator every slot is this process's."""
        if self.coordinator is None or self.coordinator.claim(cid):
            return self._holding(cid, work)
        self.reporter.phase(f"{cid}: claimed by another worker, waiting for its record")
        if self.coordinator.wait_for(cid):  # its holder died: the lease expired
            self.reporter.phase(f"{cid}: its worker stopped renewing the claim; taking it over")
            return self._holding(cid, work)
        return Done(self.archive.get(cid), None, foreign=True)

    def _holding(self, cid: str, work: Callable[[], Done]) -> Done:
        """``work()`` for a slot this worker holds; given up at once if it fails (a budget
        stop, say). Two workers stopping at a shared cap each wait for the other's slot
        before exiting: a claim kept to its lease by a live worker would never free."""
        try:
            return work()
        except BaseException:
            if self.coordinator is not None:
                self.coordinator.release(cid)
            raise

    def _store(self, done: Done) -> None:
        """Commit one finished candidate (on the loop's thread, in ask order)."""
        record = done.record
        if done.foreign:  # another worker's: this strategy hears of it, nothing is written
            self.strategy.tell(record)
            self.reporter.candidate(record, self.archive.best())
            return
        if done.evaluation is not None:
            self.archive.write_results(record.id, done.evaluation.result.to_json())
            self.archive.write_traces(record.id, done.evaluation.traces)
        if done.transcript:
            self.archive.write_transcript(record.id, done.transcript)
        stored = self.archive.add(record, code=done.code)
        self.committed.add(record.id)
        if self.coordinator is not None:
            self.coordinator.release(record.id)
        self._checkpoint(f"stored {record.id}")
        if self.tracker is not None:
            self.tracker.sync(self.archive)
        self.strategy.tell(stored)
        self.reporter.candidate(stored, self.archive.best())


def _propose(strategy: SearchStrategy, slot: Slot, view: ArchiveView) -> ProposalOutcome:
    """``strategy.propose``, with a meta-model call that failed after its retries (or whose
    prompt no longer fits) recorded as this candidate's failure instead of ending the campaign.

    A missing key, an unknown model or an unreachable endpoint still stop it: every later
    candidate would fail the same way.
    """
    try:
        return strategy.propose(slot, view)
    except (ProviderError, ContextWindowError) as exc:
        return ProposalOutcome(
            status="invalid", proposal=None, failure="provider",
            reason=f"the meta model failed while proposing {slot.candidate_id}: {exc}")


def _ready(slot: Slot, pending: Sequence[Slot]) -> bool:
    """Everything ``slot`` may see is committed (no earlier generation, no ``sees`` pending)."""
    sees = set(slot.sees)
    return not any(p.generation < slot.generation or p.candidate_id in sees for p in pending)


def _join(transcript: Sequence[str]) -> str:
    return "\n\n".join(t for t in transcript if t)


def _replace(record: CandidateRecord, **changes: Any) -> CandidateRecord:
    from dataclasses import replace

    return replace(record, **changes)


def _run_stages(evaluation: Evaluation) -> list[str]:
    """``ran``: some task finished without an error; ``scored``: the score is above zero."""
    res = evaluation.result
    ran = res.n > res.n_errors
    return (["ran"] if ran else []) + (["scored"] if ran and res.fitness.mean > 0 else [])
