"""The meta agent's conversations: propose, reflexion, repair and debug messages.

Every builder is a pure function of its inputs, so the same generation, slot
and round always produce byte-identical messages (the response cache and
resume depend on it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from metasearch.search.adas.context import MetaContext, TaskBrief
from metasearch.search.adas.parse import Draft, OutputFormat, render_proposal
from metasearch.search.adas.text import (
    CHECKLIST,
    EXAMPLE_CODE,
    RULES,
    RUNTIME_API,
    WRONG_EXAMPLES,
    Message,
    debug_format_spec,
    format_spec,
    system_message,
)
from metasearch.search.feedback import DebugFeedback


class FindingLike(Protocol):
    code: str
    line: int
    column: int
    message: str
    hint: str


def task_section(task: TaskBrief) -> str:
    """The "# The task" section every meta prompt opens with."""
    return _task_section(task)


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


def proposal_turn(proposal: Draft, output_format: OutputFormat) -> Message:
    """The assistant turn that stands for a proposal in later conversations."""
    return {"role": "assistant", "content": render_proposal(proposal, output_format)}
