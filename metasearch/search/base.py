"""The seam between a campaign and a search strategy. Imports no strategy.

A strategy decides *what to try next*; the campaign loop evaluates, archives
and tracks. It is Optuna's ask/tell, split in two so that ids are fixed
before anything is spent and proposals run concurrently:

- :meth:`SearchStrategy.ask` (cheap, on the loop's thread) opens up to
  ``free`` new :class:`Slot`\\ s. An empty answer while candidates are in
  flight means "nothing more to ask now": the loop waits for a result and
  asks again. An empty answer with nothing in flight ends the search.
- :meth:`SearchStrategy.propose` (on the candidate's thread, possibly
  several at once) turns one slot into code: a :class:`ProposalOutcome`.
- :meth:`SearchStrategy.tell` reports each archived record back, in the
  order the slots were asked (whatever order they finished in).
- ``fix`` (the optional :class:`Fixer` protocol) answers a failed or
  all-zero evaluation with revised code: the debug rounds.

**What a slot may see.** ``propose`` and ``fix`` get an
:class:`ArchiveView`, not the archive: every record of an earlier
generation, the seeds, and the same-generation records the slot names in
``Slot.sees``. Nothing that merely finished sooner is visible, so records do
not depend on how many candidates run at once (``run.parallel_candidates``)
and a resumed campaign replays the same requests from the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from metasearch.runtime.traces import calls_by_task
from metasearch.store.records import CandidateRecord

if TYPE_CHECKING:
    from metasearch.search.feedback import DebugFeedback
    from metasearch.store.archive import Archive

__all__ = [
    "ArchiveView",
    "Fixer",
    "Proposal",
    "ProposalOutcome",
    "Pruner",
    "SearchStrategy",
    "Slot",
]

#: Yield stages a proposal can reach before it runs (the loop adds ``ran`` and ``scored``).
STAGES = ("parsed", "normalised", "valid")


@dataclass(frozen=True)
class Slot:
    """One place for a new candidate: its id is fixed before anything is spent.

    ``index`` orders the slots of a generation; ``sees`` names the records of
    the *same* generation this slot may depend on (an earlier attempt of the
    same lane, say); ``meta`` is the strategy's own (lane, parent, trial, ...).
    """

    candidate_id: str
    generation: int
    index: int
    sees: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Proposal:
    """An agent a strategy wants evaluated.

    ``parents`` are what the strategy says they are: ADAS names the archive
    agents it showed the meta agent, an edit strategy its one parent.
    ``params`` are structured choices (e.g. an Optuna trial's), logged as
    the candidate's parameters; ``meta`` is stored in the record.
    """

    code: str
    name: str
    thought: str = ""
    parents: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProposalOutcome:
    """What one ``propose`` or ``fix`` produced: a valid proposal, or why not.

    When ``status == "invalid"``, ``proposal`` is the last code that parsed
    (or None) and ``reason`` says why; the loop archives it as ``invalid``.
    ``stages`` are the yield stages reached (see :data:`STAGES`),
    ``changes`` what normalisation rewrote, ``transcript`` the markdown
    conversation kept beside the record.
    """

    status: Literal["valid", "invalid"]
    proposal: Proposal | None
    reason: str = ""
    failure: str | None = None
    stages: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()
    transcript: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "valid" and self.proposal is not None


class ArchiveView:
    """A read-only window on the archive: what one slot may condition on.

    Offers the archive's read queries over the visible records only, in
    archive order, so strategies written against the archive work unchanged.
    """

    def __init__(self, archive: Archive, visible: Callable[[CandidateRecord], bool]) -> None:
        self._archive = archive
        self._records = tuple(r for r in archive.records() if visible(r))
        self._ids = {r.id for r in self._records}

    @classmethod
    def for_slot(cls, archive: Archive, slot: Slot) -> ArchiveView:
        """Earlier generations, seeds and imports, plus the records ``slot.sees``."""
        sees = set(slot.sees)

        def visible(r: CandidateRecord) -> bool:
            g = r.generation
            return not isinstance(g, int) or g < slot.generation or r.id in sees

        return cls(archive, visible)

    def records(self) -> tuple[CandidateRecord, ...]:
        return self._records

    def __len__(self) -> int:
        return len(self._records)

    def has(self, cid: str) -> bool:
        return cid in self._ids

    def get(self, cid: str) -> CandidateRecord:
        if cid not in self._ids:
            raise KeyError(cid)
        return self._archive.get(cid)

    def by_fingerprint(self, fp: str) -> tuple[CandidateRecord, ...]:
        return tuple(r for r in self._records if r.fingerprint == fp)

    def best(self) -> CandidateRecord | None:
        """The best ``ok`` record on validation; ties go to the earlier record."""
        scored = [(i, r) for i, r in enumerate(self._records) if r.status == "ok" and r.val]
        if not scored:
            return None
        return max(scored, key=lambda p: (p[1].val.mean, p[1].val.ci_low, -p[0]))[1]  # type: ignore[union-attr]

    def read_agent(self, cid: str) -> str:
        return self._archive.read_agent(cid)

    def read_results(self, cid: str) -> Any | None:
        """Per-task validation results of a visible record (test results are never shown)."""
        return self._archive.read_results(cid) if cid in self._ids else None

    def read_traces(self, cid: str) -> dict[str, list[dict[str, Any]]] | None:
        """A visible record's validation traces: task id -> the LLM calls made in that task.

        Test traces are never shown (they live in a separate file this never
        reads); None when the record is not visible or has no traces. Calls
        are in the order they started; each is a dict with (texts capped,
        see :mod:`metasearch.runtime.traces`):

        - ``agent`` (``"<agent_name> <id>"``, ``""`` if unknown), ``repair``
          (the runtime's repair call after an unusable reply);
        - ``prompt`` (the last user message), ``system``, ``n_messages``;
        - ``reply`` (``""`` if the call failed), ``error`` (or None);
        - ``events``: ``repair``, ``parse_failure``, ``missing_field``,
          ``truncated``, ``python_<kind>`` that followed the call;
        - ``model``, ``temperature``, ``prompt_tokens``, ``completion_tokens``,
          ``latency_s``, ``cached``, ``start`` (Unix seconds);
        - ``cut``: ``{field: original length}`` for each shortened text.

        The task's question, answer, gold answer and score are in the trace
        file's lines (``Archive.read_traces``) and in :meth:`read_results`.
        """
        if cid not in self._ids:
            return None
        lines = self._archive.read_traces(cid)
        return None if lines is None else calls_by_task(lines)


class SearchStrategy(Protocol):
    """What a campaign needs from a strategy. Register one in :mod:`metasearch.search.registry`."""

    name: str

    def ask(self, free: int, archive: Archive) -> Sequence[Slot]:
        """Open up to ``free`` slots whose ids are not in ``archive`` nor asked before.

        Deterministic in the archive's records, so a resumed campaign opens
        the same slots; ``[]`` means wait (if slots are pending) or done.
        """
        ...

    def propose(self, slot: Slot, archive: ArchiveView) -> ProposalOutcome:
        """Code for ``slot``, conditioned on what the slot may see (validation only)."""
        ...

    def tell(self, record: CandidateRecord) -> None:
        """Learn from an archived candidate (a no-op for stateless strategies)."""
        ...


@runtime_checkable
class Fixer(Protocol):
    """Optional: a strategy that can debug its own proposals (ADAS's debug rounds)."""

    debug_rounds: int

    def fix(self, slot: Slot, proposal: Proposal, feedback: DebugFeedback, debug_round: int,
            archive: ArchiveView) -> ProposalOutcome:
        """Revise ``proposal`` after its evaluation raised errors or scored zero."""
        ...


@runtime_checkable
class Pruner(Protocol):
    """Optional: a strategy that decides pruning itself, task by task (Optuna's pruners).

    Without it the loop races each candidate's first minibatch against the
    incumbent's confidence interval (:mod:`metasearch.campaign.racing`). With
    it the loop evaluates in minibatches and asks after each one; the answer
    must depend only on ``scores`` and what the slot may see, so that it is
    the same for any number of candidates in flight.
    """

    def should_prune(self, slot: Slot, scores: Sequence[float]) -> str | None:
        """A reason to stop evaluating ``slot``, or ``None``.

        ``scores`` are the validation scores so far, in the campaign's task
        order (task ``i`` is step ``i``).
        """
        ...
