"""What an edit strategy shows the meta agent about one parent: where it fails, what was tried.

Shared by the edit strategies (``mcts``, ``evolve``): they change one parent
at a time, so the prompt is that parent's code, a few of its validation
tasks (question, its answer, the gold answer, the trace of its LLM calls
when the archive keeps traces), and the log of earlier edits of the same
parent with their score change. Validation only: an :class:`ArchiveView`
never serves test results, and the questions are those of the validation
split. Pure functions of their inputs, so a resumed campaign sends the same
prompts and is served from the response cache.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from metasearch.search.adas.context import TaskBrief
from metasearch.search.adas.messages import task_section
from metasearch.search.adas.parse import OutputFormat
from metasearch.search.adas.text import (
    RULES,
    RUNTIME_API,
    WRONG_EXAMPLES,
    Message,
    format_spec,
    system_message,
)
from metasearch.search.registry import StrategySettings
from metasearch.store.records import CandidateRecord

__all__ = ["Edit", "EditSettings", "TaskCase", "debug_edit", "edit_messages", "edit_proposer", "experience",
           "sample_cases", "task_cases"]


class EditSettings(StrategySettings):
    """The settings every edit strategy's table shares: what the meta agent is shown of its
    parent's failures, and how often a broken edit goes back to it."""

    failures: int = Field(
        3, ge=0, le=20, description="failed validation tasks of the parent shown to the meta "
        "agent (question, answer, gold answer, trace), 0 to 20")
    trace_chars: int = Field(
        1200, ge=0, le=20_000, description="characters of one task's trace shown, 0 to 20000")
    repair_rounds: int = Field(1, ge=0, le=10, description="an integer from 0 to 10")


@dataclass(frozen=True)
class TaskCase:
    """One validation task of the parent as the meta agent sees it."""

    task_id: str
    question: str
    answer: str | None
    gold: str
    score: float
    error: str = ""
    trace: str = ""  # the agent's LLM calls on this task, rendered and clipped

    @property
    def failed(self) -> bool:
        return self.score < 1.0


@dataclass(frozen=True)
class Edit:
    """An earlier edit of the parent: what it was, what became of it."""

    name: str
    thought: str
    status: str
    score: float | None
    parent_score: float | None
    reason: str = ""

    def line(self, thought_chars: int = 200) -> str:
        what = _clip(self.thought, thought_chars) or "(no description)"
        if self.status == "ok" and self.score is not None:
            delta = "" if self.parent_score is None else \
                f", {100 * (self.score - self.parent_score):+.0f} points"
            return f"- {self.name}: {what} -> validation {self.score:.0%}{delta}"
        partial = f" ({self.score:.0%} on the tasks it ran)" if self.score is not None else ""
        return f"- {self.name}: {what} -> {self.status}{partial}: {_clip(self.reason, 160)}"


def task_cases(view: Any, cid: str, questions: Mapping[str, str], *,
               trace_chars: int = 1200) -> list[TaskCase]:
    """The parent's stored validation results, with traces when the view offers them."""
    results = (view.read_results(cid) or {}).get("results") or []
    traces: Mapping[str, Any] = {}
    if hasattr(view, "read_traces"):
        traces = view.read_traces(cid) or {}
    out = []
    for r in results:
        tid = str(r.get("task_id", ""))
        err = r.get("error") or {}
        error = f"{err.get('type', 'Error')}: {err.get('message', '')}" if err else ""
        out.append(TaskCase(
            task_id=tid, question=questions.get(tid, ""), answer=r.get("answer"),
            gold=str(r.get("gold", "")), score=float(r.get("score", 0.0)), error=error,
            trace=render_trace(traces.get(tid) or [], trace_chars)))
    return out


def render_trace(calls: Sequence[Mapping[str, Any]], max_chars: int = 1200) -> str:
    """A task's LLM calls, one line per call (agent, its reply, protocol events), clipped."""
    lines = []
    for i, c in enumerate(calls, 1):
        reply = " ".join(str(c.get("reply", "")).split())
        events = c.get("events") or []
        note = f" [{'; '.join(str(e) for e in events)}]" if events else ""
        lines.append(f"{i}. {c.get('agent', 'agent')}: {_clip(reply, 300)}{note}")
    text = "\n".join(lines)
    return text if len(text) <= max_chars else text[: max_chars - 4].rstrip() + " ..."


def sample_cases(cases: Sequence[TaskCase], k: int, rng: random.Random) -> list[TaskCase]:
    """Up to ``k`` cases in task order, errors first: a seeded sample when there are more."""
    if len(cases) <= k:
        return list(cases)
    errors = [c for c in cases if c.error]
    if len(errors) >= k:
        chosen = rng.sample(errors, k)
    else:
        rest = [c for c in cases if not c.error]
        chosen = errors + rng.sample(rest, k - len(errors))
    order = {c.task_id: i for i, c in enumerate(cases)}
    return sorted(chosen, key=lambda c: order[c.task_id])


def experience(records: Sequence[CandidateRecord], parent: CandidateRecord) -> list[Edit]:
    """Earlier edits of ``parent`` among ``records`` (its children), in archive order."""
    base = parent.val.mean if parent.val is not None else None
    return [Edit(r.name, r.thought, r.status, r.val.mean if r.val is not None else None, base,
                 r.reason)
            for r in records if r.parent_ids and r.parent_ids[0] == parent.id
            and len(r.parent_ids) == 1]


def edit_messages(
    task: TaskBrief,
    parents: Sequence[tuple[CandidateRecord, str]],
    cases: Sequence[TaskCase],
    edits: Sequence[Edit],
    output_format: OutputFormat,
    *,
    job: str,
    max_calls: int = 10,
) -> list[Message]:
    """The edit prompt: the parent (or two, for a merge), its tasks, earlier edits, the job."""
    shown = []
    for rec, code in parents:
        score = f"validation score {rec.val.mean:.0%}" if rec.val is not None else "not scored"
        shown.append(f"### {rec.name} ({rec.id}; {score})\n{_clip(rec.thought, 400)}\n"
                     f"```python\n{code.strip()}\n```")
    title = "# The agent to improve" if len(parents) == 1 else "# The agents to combine"
    parts = [
        task_section(task),
        "# The runtime\n" + RUNTIME_API,
        "# Rules\n" + RULES.format(max_calls=max_calls),
        "# Mistakes to avoid\n" + WRONG_EXAMPLES,
        title + "\n" + "\n\n".join(shown),
    ]
    if cases:
        parts.append("# How it did on some validation tasks\n"
                     + "\n\n".join(_case_text(i, c) for i, c in enumerate(cases, 1)))
    if edits:
        parts.append("# Edits already tried on this agent (do not repeat them)\n"
                     + "\n".join(e.line() for e in edits))
    parts += ["# Your job\n" + job, "# Output format\n" + format_spec(output_format)]
    return [system_message(), {"role": "user", "content": "\n\n".join(parts)}]


def _case_text(i: int, c: TaskCase) -> str:
    verdict = "right" if not c.failed else ("an error" if c.error else "wrong")
    text = (f"Task {i} ({verdict}): {_clip(c.question, 300) or '(question not shown)'}\n"
            f"Its answer: {_clip(c.answer, 200) or '(none)'}\nCorrect answer: {_clip(c.gold, 100)}")
    if c.error:
        text += f"\nError: {_clip(c.error, 300)}"
    if c.trace:
        text += "\nIts LLM calls:\n" + c.trace
    return text


def _clip(text: str | None, n: int) -> str:
    text = "" if text is None else " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def edit_proposer(ctx: Any, repair_rounds: int) -> Any:
    """The meta agent of an edit strategy: the campaign's meta model, no reflexion."""
    from metasearch.candidate.validate import validate_code
    from metasearch.search.adas.proposer import Proposer

    meta = ctx.config.models.meta
    return Proposer(
        complete=ctx.gateway.complete, model=meta.model, temperature=meta.temperature,
        max_tokens=meta.max_tokens, output_format=ctx.gateway.resolve_protocol(meta.model),
        reflexion_rounds=0, repair_rounds=repair_rounds, validate=validate_code,
    )


def debug_edit(proposer: Any, task: TaskBrief, slot: Any, proposal: Any, feedback: Any,
               debug_round: int, archive: Any) -> Any:
    """A debug round of an edit (the ADAS proposer's), with only exact copies rejected."""
    from metasearch.search.adas.parse import Draft
    from metasearch.search.novelty import ArchiveDuplicates

    draft = Draft(thought=proposal.thought, name=proposal.name, code=proposal.code)
    return proposer.debug(
        draft, feedback, task=task, generation=slot.generation, sample_index=slot.index,
        debug_round=debug_round, candidate=slot.candidate_id,
        is_duplicate=ArchiveDuplicates(archive, near=False))
