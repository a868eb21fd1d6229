"""The meta agent's prompts: propose, reflexion, repair and debug.

Written for small models as well as large ones: short sentences, one explicit
rule per line, a correct example next to each wrong one, and an archive that
fits a small context window (:func:`select_archive_context`).

Every builder is a pure function of its inputs, so the same generation, slot
and round always produce byte-identical messages (the response cache and
resume depend on it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from metasearch.search.adas.parse import OutputFormat, Proposal, render_proposal

Message = dict[str, str]


class FindingLike(Protocol):
    code: str
    line: int
    column: int
    message: str
    hint: str


# ------------------------------------------------------------------ inputs


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


@dataclass(frozen=True)
class TaskFeedback:
    """One evaluated task, as shown to the meta agent when debugging."""

    question: str
    answer: str | None = None
    gold: str | None = None
    error: str = ""
    traceback: str = ""


@dataclass(frozen=True)
class DebugFeedback:
    """Why a candidate goes back to the meta agent after its sandbox run."""

    kind: Literal["errors", "all_zero"]
    n_tasks: int
    n_errors: int
    examples: tuple[TaskFeedback, ...] = ()
    agent_error: str = ""  # the code failed before any task ran (load error)


def debug_feedback_from_outcomes(
    outcomes: Sequence[Any],
    tasks: Sequence[Any],
    scores: Sequence[float] | None = None,
    *,
    max_examples: int = 3,
) -> DebugFeedback | None:
    """Feedback for the meta agent from ``TaskOutcome``s, or None when none is due.

    Due when any task raised (``kind="errors"``) or every task scored 0
    (``kind="all_zero"``, showing answers next to gold answers).
    """
    by_id = {t.id: t for t in tasks}
    errors = [o for o in outcomes if o.error is not None]
    if errors:
        examples = tuple(
            TaskFeedback(
                question=str(getattr(by_id.get(o.task_id), "question", "")),
                error=o.error.brief(),
                traceback=o.error.traceback,
            )
            for o in _distinct_errors(errors)[:max_examples]
        )
        return DebugFeedback("errors", len(outcomes), len(errors), examples)
    if outcomes and scores is not None and len(scores) and max(scores) <= 0:
        examples = tuple(
            TaskFeedback(
                question=str(getattr(by_id.get(o.task_id), "question", "")),
                answer=o.answer,
                gold=str(getattr(by_id.get(o.task_id), "answer", "")),
            )
            for o in list(outcomes)[:max_examples]
        )
        return DebugFeedback("all_zero", len(outcomes), 0, examples)
    return None


def _distinct_errors(errors: Sequence[Any]) -> list[Any]:
    seen: set[str] = set()
    first: list[Any] = []
    rest: list[Any] = []
    for o in errors:
        key = o.error.brief()
        (rest if key in seen else first).append(o)
        seen.add(key)
    return first + rest


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


# ------------------------------------------------------------ shared text

RUNTIME_API = """\
These two names already exist in the agent's namespace. Use them; never import, define or subclass them.

Info: a namedtuple Info(name, author, content, iteration_idx).
- taskInfo is Info('task', 'User', <the question>, -1). The question text is taskInfo.content.
- To make your own Info, give all four fields: Info('hint', 'forward', text, -1).

LLMAgentBase(output_fields, agent_name, role='helpful assistant', temperature=0.5)
- output_fields: list of field names the LLM fills in, e.g. ['thinking', 'answer'].
  The field named 'answer' is automatically told the required answer format.
- agent(input_infos, instruction) calls the LLM. input_infos is a LIST of Info
  (taskInfo and/or Infos returned by other agents); instruction is a string.
- It RETURNS A LIST of Info, one per output field, in order. Always unpack it:
      thinking, answer = agent([taskInfo], "Think step by step, then answer.")
  Each item is an Info; answer.content is the text. Pass Infos on to other agents:
      feedback, correct = critic([taskInfo, thinking, answer], "Check the answer.")

forward(self, taskInfo) returns the final answer: an Info (e.g. `answer`) or a string."""

RULES = """\
1. Write exactly one top-level function `def forward(self, taskInfo):`. Small helper functions at the top level are allowed, but every function must have a real body.
2. No classes. Do not define, import or assign Info, LLMAgentBase or AgentSystem.
3. No code outside functions: no example calls, no print, no `if __name__ == "__main__":`.
4. Import standard-library modules inside forward (e.g. `from collections import Counter`). No other packages.
5. Call agents with a list of Info: agent([taskInfo, ...], "instruction"). Never pass a plain string as the first argument.
6. Unpack every agent call (thinking, answer = ...) and return one Info or a string, never the list.
7. Solve every question with LLMAgentBase calls on taskInfo. The example question is only an example: never compute or hard-code its numbers or answer.
8. Use at most {max_calls} LLM calls per task."""

WRONG_EXAMPLES = """\
Wrong: returning the list an agent call returns.
    return cot([taskInfo], "Solve the task.")
Right:
    thinking, answer = cot([taskInfo], "Solve the task.")
    return answer

Wrong: using the returned list as one Info.
    result = cot([taskInfo], "Solve the task.")
    return result.content
Right:
    thinking, answer = cot([taskInfo], "Solve the task.")
    return answer.content

Wrong: an Info with fields missing.
    return Info(content=best)
Right:
    return Info('answer', 'forward', best, -1)    # or simply: return best

Wrong: a string instead of a list of Info.
    thinking, answer = cot(taskInfo.content, "Solve the task.")
Right:
    thinking, answer = cot([taskInfo], "Solve the task.")

Wrong: a helper left empty, or forward inside a class.
    def check_answer(answer):
        pass
    class MyAgent:
        def forward(self, taskInfo): ...
Right: write the step inside the top-level forward with another LLMAgentBase call."""

CHECKLIST = """\
- forward is a top-level function `def forward(self, taskInfo):` (not in a class).
- Every agent call is unpacked: `thinking, answer = agent([...], "...")`.
- Agents get a list of Info as the first argument, never a string.
- forward returns an Info or a string, never a list of Info.
- Every Info you create has all four fields: Info(name, author, content, -1).
- No classes, no definitions of Info or LLMAgentBase, no code outside functions.
- No function body is only `pass` or `...`."""

EXAMPLE_CODE = """\
def forward(self, taskInfo):
    solver = LLMAgentBase(['thinking', 'answer'], 'Solver', temperature=0.7)
    critic = LLMAgentBase(['feedback', 'correct'], 'Critic', role='careful reviewer')
    thinking, answer = solver([taskInfo], "Think step by step, then answer.")
    feedback, correct = critic([taskInfo, thinking, answer], "Is the answer correct? Reply True or False in 'correct'.")
    if str(correct.content).strip().lower() != 'true':
        thinking, answer = solver([taskInfo, thinking, answer, feedback], "Use the feedback to fix the answer.")
    return answer"""


def format_spec(output_format: OutputFormat, *, reflection: bool = False) -> str:
    """How to lay out the reply, with a skeleton."""
    if output_format == "json":
        keys = (
            '"reflection", "thought", "name", "code"' if reflection else '"thought", "name", "code"'
        )
        refl = '"reflection": "<what you checked and changed>", ' if reflection else ""
        return (
            f"Reply with ONE JSON object with exactly the keys {keys}, and nothing else.\n"
            '- "thought": Insights (what the archive teaches), Overall Idea, Implementation (the steps).\n'
            '- "name": a short name for the agent.\n'
            '- "code": the complete Python source as one string (newlines written as \\n), '
            "starting with `def forward(self, taskInfo):`.\n"
            f'Example: {{{refl}"thought": "...", "name": "...", '
            '"code": "def forward(self, taskInfo):\\n    ..."}'
        )
    refl = "## reflection\n<what you checked and changed>\n\n" if reflection else ""
    return (
        "Reply with exactly these sections, in this order, and nothing else:\n\n"
        f"{refl}## thought\n<Insights: what the archive teaches. Overall Idea: your agent. "
        "Implementation: the steps.>\n\n## name\n<a short name for the agent>\n\n"
        "## code\n```python\ndef forward(self, taskInfo):\n    ...\n```"
    )


def debug_format_spec(output_format: OutputFormat) -> str:
    if output_format == "json":
        return (
            'Reply with ONE JSON object with the keys "debug_thought" (what went wrong and '
            'how you fix it) and "code" (the complete corrected source), and nothing else.'
        )
    return (
        "Reply with exactly these sections and nothing else:\n\n## debug_thought\n"
        "<what went wrong and how you fix it>\n\n## code\n```python\n"
        "def forward(self, taskInfo):\n    ...\n```"
    )


# ------------------------------------------------------------------ prompts


def system_message() -> Message:
    return {
        "role": "system",
        "content": (
            "You are an expert designer of LLM agents. You write agents as Python code that "
            "calls language models through a small runtime. You follow the output format "
            "exactly and write complete, working code."
        ),
    }


def _task_section(task: TaskBrief) -> str:
    lines = [
        f"# The task\nThe agent will receive questions of this kind: {task.description.strip()}"
    ]
    if task.answer_hint:
        lines.append(f"The final answer must be {task.answer_hint.strip()}.")
    for i, (q, a) in enumerate(task.examples, 1):
        lines.append(f"\nExample {i}:\nQuestion: {q.strip()}\nCorrect answer: {a.strip()}")
    return "\n".join(lines)


_JOB_OPEN = (
    "# Your job\nDesign a NEW agent that scores higher than every agent in the archive. "
    "Learn from what worked and what did not, then try an idea that is not in the "
    "archive yet: for example a different way to check, decompose, vote, debate, "
    "reflect, or give agents different roles and inputs. Do not resubmit an archive "
    "agent with small changes: a copy of archive code is rejected. Keep the code short and correct."
)


def _job(idea: str) -> str:
    """The request. With an idea it is an order, placed last: asked "unless you have a
    better idea", the 1.5B meta agent resubmitted the archive's code verbatim in most
    first proposals (quickstart runs 11-13)."""
    if not idea:
        return _JOB_OPEN
    return (
        "# Your job\nWrite a NEW agent that builds this idea: " + idea + "\n"
        "Its forward must make the LLMAgentBase calls this idea describes. It must differ "
        "from every agent in the archive: an archive agent resubmitted, even with new "
        "prompts, is rejected. Use the runtime as the correct example does. Keep the code "
        "short and correct."
    )


def meta_messages(ctx: MetaContext, output_format: OutputFormat) -> list[Message]:
    """The propose prompt: system message plus one user message."""
    user = "\n\n".join(
        [
            _task_section(ctx.task),
            "# The runtime\n" + RUNTIME_API,
            "# A correct example\n```python\n" + EXAMPLE_CODE + "\n```",
            "# The archive\nAgents tried so far, with their validation fitness "
            "(higher is better; the best are last):\n\n" + ctx.archive.text,
            "# Rules\n" + RULES.format(max_calls=ctx.max_llm_calls),
            "# Mistakes to avoid\n" + WRONG_EXAMPLES,
            _job(ctx.idea),
            "# Output format\n" + format_spec(output_format),
        ]
    )
    return [system_message(), {"role": "user", "content": user}]


def debug_base_messages(task: TaskBrief, output_format: OutputFormat) -> list[Message]:
    """A lighter context for debugging: task, runtime and rules, no archive."""
    user = "\n\n".join(
        [
            _task_section(task),
            "# The runtime\n" + RUNTIME_API,
            "# Rules\n" + RULES.format(max_calls=10),
            "# Mistakes to avoid\n" + WRONG_EXAMPLES,
            "You wrote the agent below.",
        ]
    )
    return [system_message(), {"role": "user", "content": user}]


def reflexion_prompt(round_no: int, output_format: OutputFormat) -> str:
    """Round 1: novelty, correctness, improvement. Round 2 and later: the checklist."""
    if round_no <= 1:
        body = (
            "Review the agent you just proposed before it is run.\n"
            "1. Novelty: compare it with each agent in the archive. If it is essentially one "
            "of them, change the idea so that it is clearly different.\n"
            "2. Correctness: read the code line by line against the runtime description. "
            "Does every call, every unpacking and the return value follow it?\n"
            "3. Improvement: name one concrete change that would make it answer more tasks "
            "correctly, and make it.\n"
            "Then give the revised agent."
        )
    else:
        body = (
            "Check your code once more against each of these points and fix every one it "
            "breaks:\n" + CHECKLIST + "\nThen give the agent again."
        )
    return body + "\n\n" + format_spec(output_format, reflection=True)


def format_findings_for_llm(findings: Sequence[FindingLike], code: str, limit: int = 8) -> str:
    lines = code.splitlines()
    out = []
    for f in list(findings)[:limit]:
        where = f"line {f.line}" if f.line else "the code"
        src = lines[f.line - 1].strip() if 0 < f.line <= len(lines) else ""
        item = f"- {where}" + (f" (`{src}`)" if src else "") + f": {f.message}"
        hint = getattr(f, "hint", "")
        if hint:
            item += f" Fix: {hint}"
        out.append(item)
    if len(findings) > limit:
        out.append(f"- ... and {len(findings) - limit} more problems of the same kinds.")
    return "\n".join(out)


_SNIPPET = re.compile(r":?\s*`[^`]*`")


def repair_prompt(
    *,
    output_format: OutputFormat,
    code: str = "",
    findings: Sequence[FindingLike] = (),
    changes: Sequence[str] = (),
    duplicate: bool | str = False,
    parse_error: str = "",
    idea: str = "",
) -> str:
    """Hand back why the proposal cannot run yet, and ask for the whole agent again."""
    parts: list[str] = []
    if parse_error:
        parts.append(f"We could not read your reply. {parse_error}")
    if findings:
        parts.append(
            "Your agent cannot be run yet. These problems were found in the code below:\n"
            + format_findings_for_llm(findings, code)
        )
    if duplicate:
        why = duplicate if isinstance(duplicate, str) else "identical code after normalising"
        parts.append(
            f"Your agent is the same as one already in the archive ({why}). Propose a "
            "genuinely different idea, not a renamed copy or the same code with new prompts."
            + (f" Build this idea instead: {idea}" if idea else "")
        )
    if changes:
        # Without the quoted snippets: they are cut with "...", and small models copy
        # them back verbatim (a measured cause of syntax errors in repairs).
        notes = list(dict.fromkeys(_SNIPPET.sub("", c) for c in changes))
        parts.append(
            "We already fixed some things automatically:\n" + "\n".join(f"- {c}" for c in notes)
        )
    if code.strip() and (findings or changes):
        parts.append("The code as we checked it:\n```python\n" + code.rstrip() + "\n```")
    parts.append(
        "Fix every problem and give the complete agent again.\n\n" + format_spec(output_format)
    )
    return "\n\n".join(parts)


def trim_traceback(tb: str, *, max_lines: int = 8, max_chars: int = 800) -> str:
    """The end of a traceback (where the error is), within a size limit."""
    lines = [ln for ln in tb.strip().splitlines() if ln.strip()]
    if len(lines) > max_lines:
        lines = ["..."] + lines[-max_lines:]
    text = "\n".join(lines)
    return text if len(text) <= max_chars else "..." + text[-(max_chars - 3) :]


def _clip(text: str | None, n: int) -> str:
    text = "" if text is None else str(text).strip()
    return text if len(text) <= n else text[: n - 3] + "..."


def debug_prompt(feedback: DebugFeedback, output_format: OutputFormat) -> str:
    """Runtime errors (with trimmed tracebacks) or an all-zero score, and the ask to fix it."""
    if feedback.agent_error:
        head = "Your agent could not be loaded, so no task ran:\n" + _clip(
            feedback.agent_error, 800
        )
    elif feedback.kind == "errors":
        head = (
            f"We ran your agent on {feedback.n_tasks} tasks and {feedback.n_errors} of them "
            "failed with an error. Examples:"
        )
        for i, ex in enumerate(feedback.examples, 1):
            head += f"\n\nTask {i}: {_clip(ex.question, 300)}\nError: {_clip(ex.error, 400)}"
            if ex.traceback:
                head += "\nTraceback (end):\n" + trim_traceback(ex.traceback)
    else:
        head = (
            f"We ran your agent on {feedback.n_tasks} tasks without errors, but every answer "
            "was wrong (score 0). Examples:"
        )
        for i, ex in enumerate(feedback.examples, 1):
            head += (
                f"\n\nTask {i}: {_clip(ex.question, 300)}\nYour agent answered: "
                f"{_clip(ex.answer, 200) or '(empty)'}\nCorrect answer: {_clip(ex.gold, 100)}"
            )
        head += (
            "\n\nLook for the cause: does forward return the right field, in the required "
            "answer format? Is the answer lost or overwritten on the way?"
        )
    return (
        head
        + "\n\nFind the cause and fix it; keep the idea of the agent.\n\n"
        + debug_format_spec(output_format)
    )


def proposal_turn(proposal: Proposal, output_format: OutputFormat) -> Message:
    """The assistant turn that stands for a proposal in later conversations."""
    return {"role": "assistant", "content": render_proposal(proposal, output_format)}
