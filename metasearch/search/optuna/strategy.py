"""Optuna over a declarative search space: TPE (or NSGA-II), Wilcoxon pruning, a stored study.

Each trial is one candidate: its parameters are drawn from the space through
:class:`~metasearch.search.spaces.OptunaDraw`, rendered to ordinary agent
code, and evaluated by the campaign loop like any other candidate; its record
carries the parameters and its objective values go back with ``study.tell``.

Reproducible by construction, for any number of candidates in flight:

- Trials come in generations of ``width``. A generation is asked all at once,
  on the loop's thread, only when every trial before it is told; so each trial
  sees the same finished trials and the same RUNNING ones (constant liar).
- The sampler of each trial is seeded by (seed, candidate id), so a trial's
  draw does not depend on how many draws this process made before it.
- Pruning compares with the best trial of *earlier* generations only (Optuna's
  own ``trial.should_prune`` would use whatever finished first).

Several ``--worker`` processes (``claims``, the campaign's coordinator) share
one study in the campaign's database. Each generation is asked by one worker
only (``Coordinator.once``), exactly as one process would ask it; every other
worker *adopts* its trials (their stored parameters), so all of them queue the
same slots and the coordinator's claims give each slot to one worker.

Resume after kill -9: the study is in storage. A trial that was RUNNING with no
archived record is proposed again with its stored parameters (its evaluation
replays from the response cache); one whose record was archived but not told is
told from the record; a trial asked without a candidate id (a crash inside
``ask``) is failed and never shown to the sampler.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from metasearch.search.base import ArchiveView, ProposalOutcome, Slot
from metasearch.search.optuna.settings import OptunaSettings
from metasearch.search.spaces import OptunaDraw, Space
from metasearch.search.spaces.format import Scalar
from metasearch.search.spaces.trial import propose_trial
from metasearch.store.archive import Archive
from metasearch.store.records import CandidateRecord, candidate_id

__all__ = ["OptunaStrategy", "objective_values"]

CID = "candidate_id"  # trial user attribute: which candidate a trial is
GEN = "generation"


class _Replay:
    """The stored parameters of a trial, as a :class:`Draw` (resume, warm start)."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params

    def int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return int(self.params[name])

    def float(self, name: str, low: float, high: float, *, step: float | None = None,
              log: bool = False) -> float:
        return float(self.params[name])

    def categorical(self, name: str, choices: Sequence[Scalar]) -> Scalar:
        return self.params[name]  # type: ignore[no-any-return]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning for features chosen knowingly, and nothing else."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _seed(seed: int, cid: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{cid}".encode()).digest()[:4], "big")


def objective_values(record: CandidateRecord, settings: OptunaSettings) -> list[float] | None:
    """The values told for ``record``: validation score, and cost per task; ``None`` if unscored."""
    if record.val is None or not record.val.n:
        return None
    values = [float(record.val.mean)]
    if "cost" in settings.objectives:
        spent = {"usd": record.cost_usd, "tokens": record.tokens, "calls": record.calls}
        values.append(float(spent[settings.cost]) / record.val.n)
    return values


class _Earlier:
    """What :meth:`WilcoxonPruner.prune` reads of a study, limited to earlier generations."""

    def __init__(self, best_trial: Any, direction: Any) -> None:
        self._best, self.direction = best_trial, direction

    @property
    def best_trial(self) -> Any:
        if self._best is None:
            raise ValueError("no completed trial in an earlier generation")
        return self._best


class _Values:
    """A running trial's scores so far, as the pruner reads a trial."""

    def __init__(self, number: int, scores: Sequence[float]) -> None:
        self.number = number
        self.intermediate_values = {i: float(s) for i, s in enumerate(scores)}


class OptunaStrategy:
    name = "optuna"

    def __init__(self, *, space: Space, study: optuna.Study, settings: OptunaSettings,
                 generations: int, claims: Any = None) -> None:
        self.space, self.study, self.settings, self.generations = space, study, settings, generations
        self.claims = claims  # store.coordinator.Coordinator: one of several workers
        self._lock = threading.Lock()  # storage writes come from the loop; reads from candidates
        self._queue: list[Slot] = []
        self._values: dict[str, dict[str, Scalar]] = {}  # candidate id -> rendered values
        self._trial: dict[str, int] = {}  # candidate id -> trial number
        self._best_before: dict[int, Any] = {}  # generation -> best complete trial before it
        self._reconciled = False
        self._pruner = None
        if settings.pruner == "wilcoxon" and len(settings.objectives) == 1:
            with _quiet():
                self._pruner = optuna.pruners.WilcoxonPruner(
                    p_threshold=settings.p_threshold, n_startup_steps=settings.min_tasks)

    # ------------------------------------------------------------------ ask

    def ask(self, free: int, archive: Archive) -> list[Slot]:
        if not self._reconciled:
            self._reconcile(archive)
        if not self._queue:
            if self.claims is None:
                self._open_generation(archive)
            else:
                self._open_shared(archive)
        slots, self._queue = self._queue[:free], self._queue[free:]
        return slots

    def _trials(self) -> list[Any]:
        return self.study.get_trials(deepcopy=False)

    def _reconcile(self, archive: Archive) -> None:
        """Resume: tell what was archived, re-queue what was running, fail what has no id."""
        self._reconciled = True
        for t in self._trials():
            cid = t.user_attrs.get(CID)
            if t.state != TrialState.RUNNING:
                if cid:
                    self._trial[cid] = t.number
                continue
            if not cid:
                if self.claims is None:  # shared: only the generation's asker may fail it
                    self.study.tell(t.number, state=TrialState.FAIL)
                continue
            self._trial[cid] = t.number
            if archive.has(cid):
                self._tell(archive.get(cid))
            else:
                gen = int(t.user_attrs[GEN])
                self._values[cid] = self.space.sample(_Replay(t.params))
                self._queue.append(Slot(cid, gen, int(cid.rsplit("-", 1)[1])))
        self._queue.sort(key=lambda s: (s.generation, s.index))

    def _open_generation(self, archive: Archive) -> None:
        """Ask the next generation's trials together, once every earlier trial is told."""
        trials = self._trials()
        if any(t.state == TrialState.RUNNING for t in trials):
            return  # wait: the previous generation is still being evaluated
        gen = self._next_generation(trials)
        if gen <= self.generations:
            self._ask_generation(gen, archive)

    def _next_generation(self, trials: Sequence[Any]) -> int:
        """The last generation while some of its trials are unasked, else the one after."""
        gens = [int(t.user_attrs[GEN]) for t in trials if GEN in t.user_attrs]
        if not gens:
            return 1
        last = max(gens)
        asked = {t.user_attrs[CID] for t in trials
                 if t.user_attrs.get(GEN) == last and t.user_attrs.get(CID)}
        return last if len(asked) < self.settings.width else last + 1

    def _ask_generation(self, gen: int, archive: Archive) -> None:
        """Ask the trials of ``gen`` that are not asked yet, in index order.

        A trial gets its candidate id only once all its parameters are drawn, so
        a trial without one was cut off inside ``ask`` (and is failed here).
        """
        for t in self._trials():
            if t.state == TrialState.RUNNING and not t.user_attrs.get(CID):
                self.study.tell(t.number, state=TrialState.FAIL)
        asked = {t.user_attrs[CID] for t in self._trials() if t.user_attrs.get(CID)}
        for i in range(self.settings.width):
            cid = candidate_id(gen, i)
            if cid in self._trial or cid in asked or archive.has(cid):
                continue
            self.study.sampler = self._sampler(cid)
            trial = self.study.ask()
            trial.set_user_attr(GEN, gen)
            self._values[cid] = self.space.sample(OptunaDraw(trial))
            trial.set_user_attr(CID, cid)
            self._trial[cid] = trial.number
            self._queue.append(Slot(cid, gen, i))

    def _open_shared(self, archive: Archive) -> None:
        """One of several workers: adopt the trials another worker asked, or ask the next
        generation (in one worker only) once every trial of this one is told."""
        while True:
            if self._adopt(archive):
                return
            trials = self._trials()
            if any(t.state == TrialState.RUNNING and t.user_attrs.get(CID) in self._trial
                   for t in trials):
                return  # this worker's slots are in flight (run here, or awaited from others)
            gen = self._next_generation(trials)
            if gen > self.generations:
                return
            if self.claims.once(f"~optuna-g{gen:03d}",
                                lambda g=gen: self._ask_generation(g, archive)):
                return  # asked here: the new slots are queued
            # asked by another worker: adopt its trials on the next pass

    def _adopt(self, archive: Archive) -> bool:
        """Queue the running trials that another worker asked (their stored parameters)."""
        adopted = False
        for t in self._trials():
            cid = t.user_attrs.get(CID)
            if t.state != TrialState.RUNNING or not cid or cid in self._trial:
                continue
            self._trial[cid] = t.number
            if archive.has(cid):  # committed already: tell it (a no-op if already told)
                self._tell(archive.get(cid))
                continue
            self._values[cid] = self.space.sample(_Replay(t.params))
            self._queue.append(Slot(cid, int(t.user_attrs[GEN]), int(cid.rsplit("-", 1)[1])))
            adopted = True
        self._queue.sort(key=lambda s: (s.generation, s.index))
        return adopted

    def _sampler(self, cid: str) -> optuna.samplers.BaseSampler:
        s, seed = self.settings, _seed(self.settings.seed, cid)
        if s.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if s.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
        with _quiet():  # multivariate and group are "experimental" since Optuna 2.2 / 2.8
            return optuna.samplers.TPESampler(
                seed=seed, multivariate=True, group=True, constant_liar=True,
                n_startup_trials=s.startup_trials)

    # -------------------------------------------------------------- propose

    def propose(self, slot: Slot, archive: ArchiveView) -> ProposalOutcome:
        return propose_trial(self.space, self._values[slot.candidate_id], {
            "seed": self.settings.seed, "study": self.study.study_name,
            "trial": self._trial[slot.candidate_id]})

    # ---------------------------------------------------------------- prune

    def should_prune(self, slot: Slot, scores: Sequence[float]) -> str | None:
        if self._pruner is None:
            return None
        best = self._best_before_generation(slot.generation)
        if best is None:
            return None
        earlier = _Earlier(best, self.study.direction)
        number = self._trial[slot.candidate_id]
        if not self._pruner.prune(earlier, _Values(number, scores)):  # type: ignore[arg-type]
            return None
        mean = sum(scores) / len(scores)
        best_mean = sum(best.intermediate_values[i] for i in range(len(scores))) / len(scores)
        return (f"Wilcoxon signed-rank test against trial {best.number} "
                f"({best.user_attrs.get(CID, '?')}) on the same {len(scores)} tasks: "
                f"{mean:.1%} vs {best_mean:.1%}, p < {self.settings.p_threshold:g}")

    def _best_before_generation(self, generation: int) -> Any | None:
        with self._lock:
            if generation not in self._best_before:
                done = [t for t in self._trials() if t.state == TrialState.COMPLETE
                        and int(t.user_attrs.get(GEN, 0)) < generation
                        and t.intermediate_values]
                self._best_before[generation] = max(
                    done, key=lambda t: (t.value, -t.number), default=None)
            return self._best_before[generation]

    # ----------------------------------------------------------------- tell

    def tell(self, record: CandidateRecord) -> None:
        if record.id in self._trial:
            self._tell(record)

    def _tell(self, record: CandidateRecord) -> None:
        number = self._trial[record.id]
        with self._lock:
            trial = self.study.get_trials(deepcopy=False)[number]
            if trial.state != TrialState.RUNNING:
                return  # already told (a replayed commit)
            try:
                self._tell_trial(trial, record)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # another worker told it from the same record a moment ago
            self._best_before.clear()

    def _tell_trial(self, trial: Any, record: CandidateRecord) -> None:
        if record.val is not None and len(self.settings.objectives) == 1:
            live = optuna.trial.Trial(self.study, trial._trial_id)
            for step, score in enumerate(record.val.scores.values()):
                if step not in trial.intermediate_values:
                    live.report(float(score), step)
        values = objective_values(record, self.settings)
        if record.status == "pruned":
            self.study.tell(trial.number, state=TrialState.PRUNED, skip_if_finished=True)
        elif values is None:
            self.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        else:
            self.study.tell(trial.number, values, skip_if_finished=True)
