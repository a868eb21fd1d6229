"""What the meta agent is shown: the task, the archive it conditions on, an idea.

:func:`select_archive_context` fits the archive into a small context window;
:func:`archive_entries` turns records into entries with validation fitness
only (test scores never reach the meta agent). Pure functions: the same
inputs always give byte-identical prompts, which the cache and resume rely on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from metasearch.evaluation.stats import Fitness, adas_fitness_string
from metasearch.store.records import CandidateRecord


@dataclass(frozen=True)
class TaskBrief:
    """What the agents are for: the suite's description, answer format, an example or two."""

    description: str
    answer_hint: str = ""
    examples: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_suite(cls, suite: Any, tasks: Sequence[Any] = (), n_examples: int = 2) -> TaskBrief:
        """From a ``Suite`` (``description``, ``answer_hint``) and a few of its tasks."""
        examples = tuple((str(t.question), str(t.answer)) for t in list(tasks)[:n_examples])
        return cls(str(suite.description), str(getattr(suite, "answer_hint", "")), examples)


@dataclass(frozen=True)
class ArchiveEntry:
    """One archived agent as the meta agent sees it.

    ``score`` (validation fitness, e.g. the bootstrap median in [0, 1]) ranks
    entries; ``fitness`` is the text shown (ADAS's fitness string).
    ``fingerprint`` identifies structurally equal code; when empty the code
    with whitespace collapsed is used.
    """

    name: str
    thought: str
    code: str
    fitness: str = ""
    score: float | None = None
    generation: int | str = "initial"
    fingerprint: str = ""
    id: str = ""  # the archive record's id: the proposal's parents are the entries shown

    def key(self) -> str:
        return self.fingerprint or re.sub(r"\s+", " ", self.code).strip()


@dataclass(frozen=True)
class ArchiveContext:
    """The archive part of the meta prompt: chosen entries, their text, what was left out."""

    entries: tuple[ArchiveEntry, ...]
    text: str
    dropped: tuple[str, ...] = ()
    shortened: tuple[str, ...] = ()

    def summary(self) -> str:
        parts = [f"{len(self.entries)} archive entries shown ({len(self.text)} chars)"]
        if self.dropped:
            parts.append(f"left out: {', '.join(self.dropped)}")
        if self.shortened:
            parts.append(f"thought shortened: {', '.join(self.shortened)}")
        return "; ".join(parts)


@dataclass(frozen=True)
class MetaContext:
    """Everything the propose prompt is built from.

    ``idea`` is an optional concrete direction (see :data:`IDEAS`): small meta
    agents asked only for "something new" mostly copy an archive agent.
    """

    task: TaskBrief
    archive: ArchiveContext
    max_llm_calls: int = 10
    idea: str = ""


#: Concrete agent designs to suggest, one per proposal slot in rotation. Each
#: names the mechanism and the calls it takes, which a 1.5B model can follow.
#: None is the correct example's design (solver, critic, one retry): asked for
#: "verify and retry", the 1.5B meta agent copied the example (quickstart run 9).
#: Self-consistency spells out the vote: told only "return the most common
#: answer.content", it counted one answer three times, the characters of a string,
#: or joined Infos as strings (quickstart runs 15, 17-19).
IDEAS: tuple[str, ...] = (
    "Self-consistency: create one solver agent with temperature 0.8; in a loop of 3, call it "
    "on [taskInfo] and append answer.content to a list of strings; return the most common "
    "string: Counter(contents).most_common(1)[0][0] (from collections import Counter).",
    "Answer extraction: a solver reasons step by step; a second agent with output field "
    "['answer'] reads [taskInfo, thinking] and writes only the final integer.",
    "Plan then solve: a planner agent lists the steps needed; a solver agent gets "
    "[taskInfo, plan] and works through the steps to the final answer.",
    "Debate: two solver agents with different roles answer on their own; a judge agent "
    "reads both answers and gives the final answer.",
    "Rephrase first: one agent restates the question in simpler words; a solver agent gets "
    "[taskInfo, restatement] and answers.",
    "Double-check the arithmetic: a solver answers; a second agent recomputes the result "
    "from scratch; if the two answers differ, a third agent decides which one is right.",
    "Expert role: a router agent names the best expert for the question (for example "
    "'math teacher'); a solver agent created with that role answers.",
    "Worked-example first: one agent writes a similar, simpler example and solves it; a "
    "solver agent gets [taskInfo, example] and answers the real question the same way.",
)


def idea_for(generation: int, index: int) -> str:
    """The suggested idea for a slot: rotates so successive slots get different ones."""
    return IDEAS[((generation - 1) * 3 + index) % len(IDEAS)]


# -------------------------------------------------------------- the archive


def select_archive_context(
    entries: Sequence[ArchiveEntry],
    *,
    max_entries: int = 8,
    max_chars: int = 6000,
    n_diverse: int = 2,
    thought_chars: int = 240,
) -> ArchiveContext:
    """Choose and render the archive entries the meta prompt shows.

    Keeps the best ``max_entries - n_diverse`` entries by ``score`` plus up to
    ``n_diverse`` others chosen for diversity (a generation not yet shown,
    then a name not yet shown, best score first). Structural duplicates
    (same :meth:`ArchiveEntry.key`) count once, the better one kept. If the
    text exceeds ``max_chars``, thoughts are shortened to ``thought_chars``,
    then the lowest-priority entries are left out, and as a last resort the
    code of the single remaining entry is cut. Deterministic: ties break by
    position in ``entries``.
    """
    order = sorted(range(len(entries)), key=lambda i: _rank(entries[i], i))
    unique: list[int] = []
    seen: set[str] = set()
    dropped: list[str] = []
    for i in order:
        k = entries[i].key()
        if k in seen:
            dropped.append(entries[i].name)
            continue
        seen.add(k)
        unique.append(i)
    n_diverse = max(0, min(n_diverse, max_entries - 1))
    chosen = unique[: max_entries - n_diverse]
    rest = unique[len(chosen) :]
    gens = {str(entries[i].generation) for i in chosen}
    names = {entries[i].name for i in chosen}
    for _ in range(n_diverse):
        if not rest:
            break
        pick = min(
            rest,
            key=lambda i: (
                str(entries[i].generation) in gens,
                entries[i].name in names,
                _rank(entries[i], i),
            ),
        )
        rest.remove(pick)
        chosen.append(pick)
        gens.add(str(entries[pick].generation))
        names.add(entries[pick].name)
    dropped += [entries[i].name for i in rest]
    priority = list(chosen)  # best first, then diverse picks

    shortened: list[str] = []
    text = _render_archive([entries[i] for i in _display_order(priority, entries)], None)
    if len(text) > max_chars:
        shortened = [entries[i].name for i in priority if len(entries[i].thought) > thought_chars]
        while True:
            shown = _display_order(priority, entries)
            text = _render_archive([entries[i] for i in shown], thought_chars)
            if len(text) <= max_chars or len(priority) <= 1:
                break
            dropped.append(entries[priority.pop()].name)
        shortened = [n for n in shortened if n in {entries[i].name for i in priority}]
        if len(text) > max_chars and priority:
            text = _cut(text, max_chars)
    shown_entries = tuple(entries[i] for i in _display_order(priority, entries))
    return ArchiveContext(shown_entries, text, tuple(dropped), tuple(shortened))


def _rank(e: ArchiveEntry, i: int) -> tuple[bool, float, int]:
    return (e.score is None, -(e.score or 0.0), i)


def _display_order(idx: Sequence[int], entries: Sequence[ArchiveEntry]) -> list[int]:
    """Worst first, best last: the best agents sit right before the request."""
    return sorted(idx, key=lambda i: _rank(entries[i], i), reverse=True)


def _render_archive(entries: Sequence[ArchiveEntry], thought_chars: int | None) -> str:
    if not entries:
        return "(The archive is empty.)"
    blocks = []
    for e in entries:
        thought = e.thought.strip()
        if thought_chars is not None and len(thought) > thought_chars:
            thought = thought[: thought_chars - 3].rstrip() + "..."
        fitness = e.fitness or "not evaluated"
        blocks.append(
            f"### {e.name} (generation {e.generation}; fitness: {fitness})\n"
            f"{thought}\n```python\n{e.code.strip()}\n```"
        )
    return "\n\n".join(blocks)


def _cut(text: str, max_chars: int) -> str:
    marker = "\n# ... (cut to fit the prompt)\n```"
    return text[: max(0, max_chars - len(marker))].rstrip() + marker


def archive_entries(
    records: Sequence[CandidateRecord], read_code: Callable[[CandidateRecord], str]
) -> list[ArchiveEntry]:
    """The evaluated agents as the meta agent sees them: validation fitness, never test."""
    out = []
    for r in records:
        if r.status != "ok" or r.val is None:
            continue
        fitness = Fitness(
            mean=r.val.mean, ci_low=r.val.ci_low, ci_high=r.val.ci_high,
            median=r.val.median if r.val.median is not None else r.val.mean, n=r.val.n,
        )
        out.append(ArchiveEntry(
            name=r.name, thought=r.thought, code=read_code(r),
            fitness=adas_fitness_string(fitness), score=r.val.mean,
            generation=r.generation, fingerprint=r.fingerprint, id=r.id,
        ))
    return out
