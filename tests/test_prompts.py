"""The meta prompt, archive context selection, reflexion / repair / debug prompts."""

from __future__ import annotations

from metasearch.candidate.normalize import NormalizeFinding
from metasearch.outcomes import TaskError, TaskOutcome
from metasearch.search.adas.context import (
    ArchiveEntry,
    MetaContext,
    TaskBrief,
    select_archive_context,
)
from metasearch.search.adas.messages import (
    debug_prompt,
    meta_messages,
    reflexion_prompt,
    repair_prompt,
    trim_traceback,
)
from metasearch.search.feedback import debug_feedback_from_outcomes
from metasearch.suites.task import Task

TASK = TaskBrief(
    "arithmetic word problems",
    "an integer",
    (("Tom has 3 apples and buys 4 more. How many?", "7"),),
)


def entry(i: int, score: float | None, gen: int | str = "initial", code: str | None = None,
          thought: str = "", name: str | None = None) -> ArchiveEntry:
    return ArchiveEntry(
        name=name or f"Agent{i}",
        thought=thought or f"Idea {i}.",
        code=code or f"def forward(self, taskInfo):\n    return '{i}'\n",
        fitness=f"Median: {score}" if score is not None else "",
        score=score,
        generation=gen,
    )


def test_meta_prompt_has_every_part_and_the_format():
    ctx = MetaContext(TASK, select_archive_context([entry(1, 0.3), entry(2, 0.5)]))
    msgs = meta_messages(ctx, "sections")
    assert [m["role"] for m in msgs] == ["system", "user"]
    user = msgs[1]["content"]
    for needle in (
        "arithmetic word problems", "an integer", "Tom has 3 apples", "Correct answer: 7",
        "LLMAgentBase(output_fields, agent_name, role=", "RETURNS A LIST", "thinking, answer =",
        "Info(name, author, content, iteration_idx)", "exactly one top-level function",
        "No classes", "Do not define, import or assign Info, LLMAgentBase",
        "inside forward", "Info(content=best)", "cot(taskInfo.content", "pass",
        "NEW agent", "## thought", "## name", "## code", "Agent1", "Agent2", "Median: 0.5",
    ):
        assert needle in user, needle
    # best last, right before the rules
    assert user.index("Agent1") < user.index("Agent2")


def test_json_format_prompt():
    ctx = MetaContext(TASK, select_archive_context([]))
    user = meta_messages(ctx, "json")[1]["content"]
    assert '"thought", "name", "code"' in user and "## code" not in user
    assert "(The archive is empty.)" in user


def test_archive_selection_keeps_best_plus_diverse_and_reports_dropped():
    entries = [entry(i, score=i / 10, gen=i) for i in range(10)]
    ctx = select_archive_context(entries, max_entries=4, n_diverse=1, max_chars=100_000)
    names = {e.name for e in ctx.entries}
    assert {"Agent9", "Agent8", "Agent7"} <= names and len(names) == 4
    assert set(ctx.dropped) == {f"Agent{i}" for i in range(10)} - names
    assert "left out" in ctx.summary()


def test_archive_diverse_pick_prefers_a_new_generation():
    entries = [entry(0, 0.9, gen=3), entry(1, 0.8, gen=3), entry(2, 0.7, gen=3), entry(3, 0.1, gen=1)]
    ctx = select_archive_context(entries, max_entries=3, n_diverse=1, max_chars=100_000)
    assert [e.name for e in ctx.entries] == ["Agent3", "Agent1", "Agent0"]


def test_archive_duplicates_count_once_and_unscored_rank_last():
    same = "def forward(self, taskInfo):\n    return 'same'\n"
    entries = [entry(0, 0.2, code=same), entry(1, 0.6, code=same.replace("    ", "  ")), entry(2, None)]
    ctx = select_archive_context(entries, max_entries=8, max_chars=100_000)
    assert [e.name for e in ctx.entries] == ["Agent2", "Agent1"]
    assert ctx.dropped == ("Agent0",)


def test_archive_selection_is_deterministic_and_fits_the_size_limit():
    long_thought = "Insight. " * 200
    entries = [entry(i, score=(i * 37 % 11) / 10, gen=i % 4, thought=long_thought) for i in range(30)]
    a = select_archive_context(entries, max_entries=8, max_chars=2500)
    b = select_archive_context(list(entries), max_entries=8, max_chars=2500)
    assert a == b
    assert len(a.text) <= 2500
    assert a.shortened and a.dropped
    assert len(a.entries) >= 1
    # the best survives the size cut
    best = max(entries, key=lambda e: e.score)
    assert best.name in {e.name for e in a.entries}


def test_archive_single_huge_entry_is_cut_deterministically():
    huge = "def forward(self, taskInfo):\n" + "    x = 1\n" * 2000
    ctx = select_archive_context([entry(0, 0.5, code=huge)], max_chars=1000)
    assert len(ctx.text) <= 1000 and "cut to fit" in ctx.text
    assert ctx == select_archive_context([entry(0, 0.5, code=huge)], max_chars=1000)


def test_reflexion_rounds_differ_and_ask_for_the_format():
    r1, r2 = reflexion_prompt(1, "sections"), reflexion_prompt(2, "sections")
    assert "Novelty" in r1 and "archive" in r1
    assert "never a list of Info" in r2
    assert "## reflection" in r1 and "## code" in r2
    assert '"reflection"' in reflexion_prompt(1, "json")


def test_repair_prompt_quotes_lines_and_lists_changes_and_duplicates():
    code = "def helper(x):\n    pass\n\ndef forward(self, taskInfo):\n    return helper(1)\n"
    f = NormalizeFinding("placeholder-body", 1, 1, "the helper helper has no real body.", "Write it.")
    text = repair_prompt(output_format="sections", code=code, findings=[f],
                         changes=["moved forward out of class X to the top level"], duplicate=True)
    assert "line 1 (`def helper(x):`)" in text and "Fix: Write it." in text
    assert "moved forward out of class X" in text
    assert "same as one already in the archive" in text
    assert "```python\ndef helper(x):" in text and "## code" in text
    assert "could not read" in repair_prompt(output_format="json", parse_error="No code.")


def test_debug_feedback_from_errors_and_all_zero():
    tasks = [Task(f"t{i}", f"Question {i}?", str(i)) for i in range(5)]
    tb = "Traceback (most recent call last):\n" + "".join(f'  File "x", line {i}\n' for i in range(30)) + "TypeError: bad"
    outcomes = [TaskOutcome("t0", None, TaskError("exception", "TypeError", "bad", tb))] + [
        TaskOutcome(f"t{i}", str(i)) for i in range(1, 5)
    ]
    fb = debug_feedback_from_outcomes(outcomes, tasks, [0, 1, 1, 1, 1])
    assert fb is not None and fb.kind == "errors" and fb.n_errors == 1
    text = debug_prompt(fb, "sections")
    assert "1 of them failed" in text and "TypeError: bad" in text and "Question 0?" in text
    assert "## debug_thought" in text and text.count('File "x"') <= 8

    outcomes = [TaskOutcome(f"t{i}", "wrong") for i in range(5)]
    fb = debug_feedback_from_outcomes(outcomes, tasks, [0.0] * 5)
    assert fb is not None and fb.kind == "all_zero" and len(fb.examples) == 3
    text = debug_prompt(fb, "json")
    assert "Your agent answered: wrong" in text and "Correct answer: 1" in text
    assert '"debug_thought"' in text

    assert debug_feedback_from_outcomes(outcomes, tasks, [0, 0, 1, 0, 0]) is None


def test_trim_traceback_keeps_the_end():
    tb = "\n".join(f"line {i}" for i in range(100))
    out = trim_traceback(tb, max_lines=5)
    assert out.splitlines()[-1] == "line 99" and out.startswith("...")


def test_repair_prompt_does_not_quote_cut_snippets_from_normalisation_notes():
    from metasearch.search.adas.messages import repair_prompt

    changes = [
        "removed top-level code outside functions: `taskInfo = Info('task', 'User', \"Maya has $45 in a wallet. She spen...`",
        "removed top-level code outside functions: `print(answer.content)`",
    ]
    text = repair_prompt(output_format="sections", code="def forward(self, taskInfo):\n    pass\n",
                         changes=changes)
    assert "She spen..." not in text and "print(answer.content)" not in text
    assert text.count("- removed top-level code outside functions") == 1
