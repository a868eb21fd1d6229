"""The LLM writes the structure, Optuna tunes its knobs.

A generation has ``width`` structures. Each is written by the meta agent
through the ADAS proposer (parse, normalise, validate with the knob checks,
repair, debug), shown the archive as one entry per structure: its tuned
best. The ADAS proposer, not an edit proposer, because a structure is a new
design; editing one parent would mostly re-tune the parent's knobs, which is
the study's job here. Slot ``s * (trials + 1)`` is the structure evaluated
with its declared defaults; it becomes the first trial of its study. Slots
``s * (trials + 1) + t`` are its tuning trials: the same code with the trial's
values written in as the knob defaults, ``parent_ids = (structure,)``.

Reproducible for any number of candidates in flight, like the ``optuna``
strategy: a study's trials are asked in batches of ``batch``, all at once, on
the loop's thread, once every earlier trial is told; each trial's TPE sampler
is seeded by (seed, candidate id), with constant liar for the batch; pruning
compares with the best trial of earlier batches only. Generation g+1 opens
once every slot of g is archived.

Several ``--worker`` processes (``claims``, the campaign's coordinator) share
the studies in the campaign's database: a structure's defaults are added, and
each of its batches asked, by one worker only (``Coordinator.once``), exactly
as one process would; the others adopt those trials from the study, so every
worker queues the same slots, and the coordinator gives each slot to one.

Resume after kill -9: the studies are in storage. A trial RUNNING with no
archived record is proposed again with its stored values (its evaluation
replays from the response cache); one archived but not told is told from its
record; one without a candidate id (a kill inside ``ask``) is failed. A
structure's first trial is added from its record, once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import optuna
from optuna.trial import TrialState

from metasearch.candidate.knobs import Knob, extract_knobs, set_knob_values, space_size
from metasearch.search.adas.context import (
    MetaContext,
    TaskBrief,
    archive_entries,
    idea_for,
    select_archive_context,
)
from metasearch.search.adas.parse import Draft
from metasearch.search.adas.proposer import Proposer, ProposerResult
from metasearch.search.base import STAGES, ArchiveView, Proposal, ProposalOutcome, Slot
from metasearch.search.feedback import DebugFeedback
from metasearch.search.hybrid.prompt import hybrid_messages
from metasearch.search.hybrid.studies import STRUCTURE, Studies
from metasearch.search.novelty import ArchiveDuplicates
from metasearch.search.optuna.strategy import _Earlier, _quiet, _seed, _Values
from metasearch.store.archive import Archive
from metasearch.store.records import CandidateRecord, candidate_id

__all__ = ["HybridStrategy", "family_of"]

CID = "candidate_id"  # trial user attribute: which candidate a trial is
BATCH = "batch"  # trial user attribute: its batch (-1: the structure's defaults)
REDRAWS = 4  # seeded re-draws of a trial whose values repeat an earlier trial's


@dataclass
class _Family:
    """One structure and its study."""

    structure: str
    study: optuna.Study
    knobs: list[Knob]
    trials: int  # tuning trials (besides the defaults)


def _parse(cid: str) -> tuple[int, int]:
    g, i = cid[1:].split("-")
    return int(g), int(i)


def family_of(record: CandidateRecord, stride: int) -> str:
    """The structure a hybrid record belongs to (itself for a structure or a non-hybrid record)."""
    if record.strategy != "hybrid" or not isinstance(record.generation, int):
        return record.id
    g, i = _parse(record.id)
    return candidate_id(g, i - i % stride)


class HybridStrategy:
    name = "hybrid"

    def __init__(
        self,
        *,
        proposer: Proposer,
        task: TaskBrief,
        studies: Studies,
        generations: int,
        width: int = 1,
        trials: int = 6,
        batch: int = 2,
        startup_trials: int = 2,
        seed: int = 0,
        max_knobs: int = 6,
        pruner: str = "wilcoxon",
        p_threshold: float = 0.1,
        min_tasks: int = 2,
        debug_rounds: int = 1,
        idea_hints: bool = True,
        archive_context: int = 8,
        archive_chars: int = 6000,
        claims: Any = None,
    ) -> None:
        self.proposer, self.task, self.studies = proposer, task, studies
        self.generations, self.width, self.trials = generations, max(1, width), trials
        self.batch, self.startup_trials, self.seed = max(1, batch), startup_trials, seed
        self.max_knobs, self.p_threshold = max_knobs, p_threshold
        self.debug_rounds, self.idea_hints = debug_rounds, idea_hints
        self.archive_context, self.archive_chars = archive_context, archive_chars
        self.stride = trials + 1
        self.claims = claims  # store.coordinator.Coordinator: one of several workers
        self._lock = threading.Lock()  # study writes come from the loop; reads from candidates
        self._asked: set[str] = set()
        self._queue: list[Slot] = []
        self._families: dict[str, _Family | None] = {}
        self._trial: dict[str, tuple[str, int]] = {}  # trial cid -> (structure, trial number)
        self._values: dict[str, dict[str, Any]] = {}
        self._best_before: dict[tuple[str, int], Any] = {}
        self._structures: dict[str, str] = {}  # record id -> skeleton, for near-duplicates
        self._reconciled = False
        self._pruner = None
        if pruner == "wilcoxon":
            with _quiet():
                self._pruner = optuna.pruners.WilcoxonPruner(
                    p_threshold=p_threshold, n_startup_steps=min_tasks)

    # ------------------------------------------------------------------ ask

    def ask(self, free: int, archive: Archive) -> list[Slot]:
        if not self._reconciled:
            self._reconcile(archive)
        if not self._queue:
            self._fill(archive)
        slots, self._queue = self._queue[:max(0, free)], self._queue[max(0, free):]
        self._asked.update(s.candidate_id for s in slots)
        return slots

    def _fill(self, archive: Archive) -> None:
        """Queue the next slots: this generation's structures, then its trials, batch by batch."""
        for g in range(1, self.generations + 1):
            structures = [candidate_id(g, s * self.stride) for s in range(self.width)]
            missing = [c for c in structures if not archive.has(c)]
            if missing:
                self._queue = [Slot(c, g, _parse(c)[1], meta={"role": "structure"})
                               for c in missing if c not in self._asked]
                return  # [] while the structures are in flight
            settled = True
            for scid in structures:
                family = self._family(scid, archive)
                if family is not None:
                    settled = self._open_batch(family, g, archive) and settled
            if self._queue or not settled:
                return
        return

    def _family(self, scid: str, archive: Archive) -> _Family | None:
        """The structure's study, created with its defaults as the first trial; None: no tuning."""
        if scid in self._families:
            return self._families[scid]
        family = None
        rec = archive.get(scid)
        if rec.status == "ok" and rec.val is not None and rec.val.n:
            knobs, _ = extract_knobs(archive.read_agent(scid), max_knobs=self.max_knobs)
            size = space_size(knobs)
            trials = self.trials if size is None else min(self.trials, size - 1)
            if knobs and trials > 0:
                with self._lock:
                    study = self.studies.open(scid)
                    add = lambda: self._add_defaults(study, rec, knobs)  # noqa: E731
                    if self.claims is None:
                        add()
                    else:
                        self.claims.once(f"~hybrid-{scid}", add)
                family = _Family(scid, study, knobs, trials)
        self._families[scid] = family
        return family

    @staticmethod
    def _add_defaults(study: optuna.Study, rec: CandidateRecord, knobs: list[Knob]) -> None:
        if any(t.user_attrs.get(CID) == rec.id for t in study.get_trials(deepcopy=False)):
            return
        assert rec.val is not None
        study.add_trial(optuna.trial.create_trial(
            params={k.name: k.default for k in knobs},
            distributions={k.name: k.distribution() for k in knobs},
            value=float(rec.val.mean),
            intermediate_values={i: float(s) for i, s in enumerate(rec.val.scores.values())},
            user_attrs={CID: rec.id, BATCH: -1}))

    def _open_batch(self, family: _Family, g: int, archive: Archive) -> bool:
        """Queue the family's next batch once every earlier trial is told; True when all are done."""
        base = _parse(family.structure)[1]
        cids = [candidate_id(g, base + t) for t in range(1, family.trials + 1)]
        todo = [i for i, c in enumerate(cids) if not archive.has(c)]
        if not todo:
            return True
        b = todo[0] // self.batch
        batch = cids[b * self.batch:(b + 1) * self.batch]
        if all(c in self._trial for c in batch):
            return False  # in flight (or queued before a stop)
        if self.claims is None:
            with self._lock:
                self._ask_batch(family, batch, b, archive)
            return False
        with self._lock:  # one worker asks the batch; every worker adopts it from the study
            self.claims.once(f"~hybrid-{family.structure}-b{b}",
                             lambda: self._ask_batch(family, batch, b, archive, shared=True))
            self._adopt(family, batch, archive)
        return False

    def _ask_batch(self, family: _Family, batch: list[str], b: int, archive: Archive, *,
                   shared: bool = False) -> None:
        """Ask the batch's trials that are not asked yet, in order (under ``self._lock``).

        Shared: first tell the trials other workers committed but have not told
        yet, and fail the cid-less ones a killed asker left, so the sampler sees
        the study one process would; and skip what a dead asker already asked.
        """
        study = family.study
        if shared:
            for t in study.get_trials(deepcopy=False):
                cid = t.user_attrs.get(CID)
                if t.state != TrialState.RUNNING:
                    continue
                if not cid:
                    study.tell(t.number, state=TrialState.FAIL)
                elif archive.has(cid):
                    self._tell_locked(study, t.number, archive.get(cid))
        asked = {t.user_attrs.get(CID) for t in study.get_trials(deepcopy=False)}
        distributions = {k.name: k.distribution() for k in family.knobs}
        for c in batch:
            if c in self._trial or c in asked or archive.has(c):
                continue
            trial = self._ask_new(study, c, distributions)
            trial.set_user_attr(BATCH, b)
            trial.set_user_attr(CID, c)  # last: a trial with an id has all its values
            self._trial[c] = (family.structure, trial.number)
            self._values[c] = dict(trial.params)
            self._queue.append(self._trial_slot(c, family.structure, b))

    def _adopt(self, family: _Family, batch: list[str], archive: Archive) -> None:
        """Queue the batch's trials another worker asked (their stored values)."""
        for t in family.study.get_trials(deepcopy=False):
            cid = t.user_attrs.get(CID)
            if cid not in batch or cid in self._trial:
                continue
            self._trial[cid] = (family.structure, t.number)
            self._values[cid] = dict(t.params)
            if archive.has(cid):
                self._tell_locked(family.study, t.number, archive.get(cid))
            elif t.state == TrialState.RUNNING:
                self._queue.append(self._trial_slot(cid, family.structure,
                                                    int(t.user_attrs[BATCH])))
        self._queue.sort(key=lambda s: (s.generation, s.index))

    def _ask_new(self, study: optuna.Study, cid: str, distributions: dict[str, Any]) -> Any:
        """A trial whose values no other trial of the study has, if a few seeded draws find one.

        A repeat would only replay the cache and take a slot. It is failed at once,
        without a candidate id, so the sampler never learns from it.
        """
        for attempt in range(REDRAWS + 1):
            study.sampler = self._sampler(cid if not attempt else f"{cid}:redraw-{attempt}")
            trial = study.ask(distributions)
            taken = [t.params for t in study.get_trials(deepcopy=False)
                     if t.number != trial.number and t.state != TrialState.FAIL]
            if attempt == REDRAWS or trial.params not in taken:
                return trial
            study.tell(trial.number, state=TrialState.FAIL)
        raise AssertionError("unreachable")

    def _trial_slot(self, cid: str, structure: str, batch: int) -> Slot:
        g, i = _parse(cid)
        return Slot(cid, g, i, sees=(structure,),
                    meta={"role": "trial", "structure": structure, "batch": batch})

    def _sampler(self, cid: str) -> optuna.samplers.BaseSampler:
        with _quiet():  # multivariate is "experimental" since Optuna 2.2
            return optuna.samplers.TPESampler(
                seed=_seed(self.seed, cid), multivariate=True, constant_liar=True,
                n_startup_trials=self.startup_trials)

    def _reconcile(self, archive: Archive) -> None:
        """Resume: tell what was archived, re-queue what was running, fail what has no id."""
        self._reconciled = True
        for study in self.studies.existing():
            structure = str(study.user_attrs.get(STRUCTURE, ""))
            for t in study.get_trials(deepcopy=False):
                cid = t.user_attrs.get(CID)
                if t.state == TrialState.RUNNING and not cid:
                    if self.claims is None:  # shared: only the batch's asker may fail it
                        study.tell(t.number, state=TrialState.FAIL)
                    continue
                if not cid or cid == structure:
                    continue
                self._trial[cid] = (structure, t.number)
                self._values[cid] = dict(t.params)
                if t.state != TrialState.RUNNING:
                    continue
                if archive.has(cid):
                    self._tell_study(study, t.number, archive.get(cid))
                else:
                    self._queue.append(self._trial_slot(cid, structure, int(t.user_attrs[BATCH])))
        self._queue.sort(key=lambda s: (s.generation, s.index))

    # -------------------------------------------------------------- propose

    def propose(self, slot: Slot, archive: ArchiveView) -> ProposalOutcome:
        if slot.meta.get("role") == "trial":
            return self._propose_trial(slot, archive)
        shown = select_archive_context(
            archive_entries(self._shown(archive),
                            lambda r: archive.read_agent(r.id) if r.code_path else ""),
            max_entries=self.archive_context, max_chars=self.archive_chars)
        idea = idea_for(slot.generation, slot.index // self.stride) if self.idea_hints else ""
        context = MetaContext(task=self.task, archive=shown, idea=idea)
        result = self.proposer.propose_from(
            hybrid_messages(context, self.proposer.output_format, max_knobs=self.max_knobs),
            generation=slot.generation, sample_index=slot.index, candidate=slot.candidate_id,
            is_duplicate=self._duplicates(archive), idea=idea)
        return self._structure_outcome(result, tuple(e.id for e in shown.entries if e.id))

    def _shown(self, archive: ArchiveView) -> list[CandidateRecord]:
        """One record per structure: its tuned best (the best ``ok`` record of its family)."""
        families: dict[str, list[tuple[int, CandidateRecord]]] = {}
        for i, r in enumerate(archive.records()):
            families.setdefault(family_of(r, self.stride), []).append((i, r))
        chosen = []
        for members in families.values():
            ok = [(i, r) for i, r in members if r.status == "ok" and r.val is not None]
            chosen.append(max(ok, key=lambda p: (p[1].val.mean, -p[0])) if ok  # type: ignore[union-attr]
                          else members[0])
        return [r for _, r in sorted(chosen, key=lambda p: p[0])]

    def _structure_outcome(self, result: ProposerResult,
                           parents: tuple[str, ...]) -> ProposalOutcome:
        outcome = result.to_outcome(parents=parents)
        if outcome.proposal is None:
            return outcome
        knobs, _ = extract_knobs(outcome.proposal.code, max_knobs=self.max_knobs)
        meta = {"hybrid": "structure", "knobs": [k.describe() for k in knobs]}
        return replace(outcome, proposal=replace(
            outcome.proposal, params={k.name: k.default for k in knobs}, meta=meta))

    def _propose_trial(self, slot: Slot, archive: ArchiveView) -> ProposalOutcome:
        structure = str(slot.meta["structure"])
        rec = archive.get(structure)
        values = self._values[slot.candidate_id]
        _, number = self._trial[slot.candidate_id]
        shown = tuned_values(values)
        proposal = Proposal(
            code=set_knob_values(archive.read_agent(structure), values),
            name=f"{rec.name} [{shown}]",
            thought=f"{rec.thought}\n\nTuning trial {number} of {structure}: {shown}.".strip(),
            parents=(structure,), params=values,
            meta={"hybrid": "trial", "structure": structure, "trial": number,
                  "study": self.studies.name(structure)})
        return ProposalOutcome(status="valid", proposal=proposal, stages=STAGES)

    def fix(self, slot: Slot, proposal: Proposal, feedback: DebugFeedback, debug_round: int,
            archive: ArchiveView) -> ProposalOutcome:
        if slot.meta.get("role") == "trial":
            return ProposalOutcome(status="invalid", proposal=None,
                                   reason="tuning trials are not debugged (their structure was)")
        draft = Draft(thought=proposal.thought, name=proposal.name, code=proposal.code)
        result = self.proposer.debug(
            draft, feedback, task=self.task, generation=slot.generation,
            sample_index=slot.index, debug_round=debug_round, candidate=slot.candidate_id,
            is_duplicate=self._duplicates(archive))
        return self._structure_outcome(result, proposal.parents)

    def _duplicates(self, archive: ArchiveView) -> ArchiveDuplicates:
        return ArchiveDuplicates(archive, near=True, structures=self._structures)

    # ---------------------------------------------------------------- prune

    def should_prune(self, slot: Slot, scores: Sequence[float]) -> str | None:
        if self._pruner is None or slot.meta.get("role") != "trial":
            return None
        structure, number = self._trial[slot.candidate_id]
        family = self._families.get(structure)
        if family is None:
            return None
        best = self._best_before_batch(family, int(slot.meta["batch"]))
        if best is None:
            return None
        if not self._pruner.prune(_Earlier(best, family.study.direction),  # type: ignore[arg-type]
                                  _Values(number, scores)):
            return None
        mean = sum(scores) / len(scores)
        best_mean = sum(best.intermediate_values[i] for i in range(len(scores))) / len(scores)
        return (f"Wilcoxon signed-rank test against trial {best.number} "
                f"({best.user_attrs.get(CID, '?')}) of structure {structure} on the same "
                f"{len(scores)} tasks: {mean:.1%} vs {best_mean:.1%}, p < {self.p_threshold:g}")

    def _best_before_batch(self, family: _Family, batch: int) -> Any | None:
        key = (family.structure, batch)
        with self._lock:
            if key not in self._best_before:
                done = [t for t in family.study.get_trials(deepcopy=False)
                        if t.state == TrialState.COMPLETE and int(t.user_attrs.get(BATCH, 0)) < batch
                        and t.intermediate_values]
                self._best_before[key] = max(done, key=lambda t: (t.value, -t.number), default=None)
            return self._best_before[key]

    # ----------------------------------------------------------------- tell

    def tell(self, record: CandidateRecord) -> None:
        if record.id not in self._trial:
            return  # a structure: its study is made from the archive when its trials open
        structure, number = self._trial[record.id]
        family = self._families.get(structure)
        study = family.study if family is not None else self.studies.open(structure)
        self._tell_study(study, number, record)

    def _tell_study(self, study: optuna.Study, number: int, record: CandidateRecord) -> None:
        with self._lock:
            self._tell_locked(study, number, record)

    def _tell_locked(self, study: optuna.Study, number: int, record: CandidateRecord) -> None:
        trial = study.get_trials(deepcopy=False)[number]
        if trial.state != TrialState.RUNNING:
            return  # already told (a replayed commit, or another worker)
        try:
            if record.val is not None:
                live = optuna.trial.Trial(study, trial._trial_id)
                for step, score in enumerate(record.val.scores.values()):
                    if step not in trial.intermediate_values:
                        live.report(float(score), step)
            if record.status == "pruned":
                study.tell(number, state=TrialState.PRUNED, skip_if_finished=True)
            elif record.val is None or not record.val.n:
                study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
            else:
                study.tell(number, float(record.val.mean), skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker told it from the same record a moment ago
        self._best_before.clear()


def tuned_values(values: Mapping[str, Any]) -> str:
    """``a=1, b='x'``: how a trial's values are named in records and reports."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v!r}"
                     for k, v in values.items())
