"""ADAS archive files: write our agents out in ADAS's format, and read ADAS archives in.

An ADAS archive is a JSON list of entries ``{"thought", "name", "code",
"generation", "fitness"[, "test_fitness"]}`` where ``generation`` is
``"initial"`` or an int and the fitness strings read ``"95% Bootstrap
Confidence Interval: (L%, U%), Median: M%"`` (see ADAS_COMPAT.md).

Export computes the fitness strings from the stored per-task scores with the
bootstrap ADAS uses (100k resamples, median of the bootstrap means), with
correct percentiles. Import validates each entry (fields, libcst checks,
duplicates), adds the valid ones as ``generation="imported"`` candidates and
keeps the original strings in ``meta["adas"]``. Re-scoring is an injected
callable, so this module constructs no gateway and no sandbox.

Example::

    entries = export_adas(Archive.open("runs/a", readonly=True))
    write_adas("a.json", entries)
    with Archive.open("runs/b") as arc:
        report = import_adas(read_adas("a.json"), arc, source="a.json")
    [e.id for e in report.added]
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from metasearch.candidate.knobs import bake_knobs
from metasearch.candidate.validate import ValidationPolicy, fingerprint, validate_code
from metasearch.errors import DataError, MetasearchError
from metasearch.evaluation.stats import (
    Fitness,
    adas_fitness_string,
    bootstrap_ci,
    parse_adas_fitness,
)
from metasearch.store.archive import Archive
from metasearch.store.records import CandidateRecord, SplitScore, imported_id

__all__ = [
    "ADAS_RESAMPLES",
    "EvaluateCode",
    "ImportReport",
    "ImportedEntry",
    "export_adas",
    "fitness_of",
    "import_adas",
    "read_adas",
    "to_adas_entry",
    "write_adas",
]

ADAS_RESAMPLES = 100_000

#: ``evaluate_code(code) -> (validation score, calls, tokens, cost_usd, task errors)``
EvaluateCode = Callable[[str], tuple[SplitScore, int, int, float, int]]


# --------------------------------------------------------------------------- export


def fitness_of(score: SplitScore, *, n_resamples: int = ADAS_RESAMPLES, seed: int = 0) -> Fitness:
    """ADAS's fitness of one split: a bootstrap over the per-task scores.

    Without per-task scores (``scores`` empty) the stored interval is used,
    with the stored median (or the mean when there is none).
    """
    if score.scores:
        values = [score.scores[k] for k in sorted(score.scores)]
        return bootstrap_ci(values, n_resamples=n_resamples, seed=seed)
    median = score.median if score.median is not None else score.mean
    return Fitness(score.mean, score.ci_low, score.ci_high, median, score.n, n_resamples=0)


def _generation(rec: CandidateRecord) -> int | str:
    if isinstance(rec.generation, int):
        return rec.generation
    if rec.generation == "imported":
        orig = dict(rec.meta.get("adas") or {}).get("generation")
        return orig if isinstance(orig, int) and not isinstance(orig, bool) else "initial"
    return "initial"


def to_adas_entry(rec: CandidateRecord, code: str) -> dict[str, Any]:
    """One ADAS archive entry for ``rec``. Imported, un-rescored agents keep their strings."""
    adas = dict(rec.meta.get("adas") or {})
    entry: dict[str, Any] = {
        "thought": rec.thought,
        "name": rec.name,
        "code": bake_knobs(code),  # ADAS has no tunable(): knobs become their values
        "generation": _generation(rec),
    }
    if rec.val is not None:
        entry["fitness"] = adas_fitness_string(fitness_of(rec.val))
    elif isinstance(adas.get("fitness"), str):
        entry["fitness"] = adas["fitness"]
    if rec.test is not None:
        entry["test_fitness"] = adas_fitness_string(fitness_of(rec.test))
    elif isinstance(adas.get("test_fitness"), str):
        entry["test_fitness"] = adas["test_fitness"]
    return entry


def export_adas(archive: Archive, ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """ADAS entries for ``ids`` (in that order), or for every ``ok`` candidate with code."""
    if ids is None:
        recs = [r for r in archive.records() if r.status == "ok" and r.code_path]
    else:
        recs = [archive.get(i) for i in ids]
    return [to_adas_entry(r, archive.read_agent(r.id)) for r in recs]


def write_adas(path: str | Path, entries: Sequence[Mapping[str, Any]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(entries), indent=4, ensure_ascii=False) + "\n", "utf-8")
    return path


# --------------------------------------------------------------------------- import


@dataclass(frozen=True)
class ImportedEntry:
    """What became of one entry of the file.

    ``outcome`` is ``"added"`` (``id`` set), ``"invalid"`` (``problems`` says
    why) or ``"duplicate"`` (same fingerprint as ``duplicate_of``). ``warnings``
    are problems that did not stop the import, such as an unreadable fitness.
    """

    index: int
    name: str
    outcome: str
    id: str | None = None
    status: str | None = None
    fingerprint: str = ""
    duplicate_of: str | None = None
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    val: SplitScore | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "outcome": self.outcome,
            "id": self.id,
            "status": self.status,
            "fingerprint": self.fingerprint,
            "duplicate_of": self.duplicate_of,
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "val": self.val.to_json() if self.val else None,
        }


@dataclass(frozen=True)
class ImportReport:
    source: str
    entries: tuple[ImportedEntry, ...] = field(default_factory=tuple)

    @property
    def added(self) -> tuple[ImportedEntry, ...]:
        return tuple(e for e in self.entries if e.outcome == "added")

    @property
    def rejected(self) -> tuple[ImportedEntry, ...]:
        return tuple(e for e in self.entries if e.outcome != "added")

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "added": len(self.added),
            "rejected": len(self.rejected),
            "entries": [e.to_json() for e in self.entries],
        }


def read_adas(path: str | Path) -> list[Any]:
    """The entries of an ADAS archive file; :class:`DataError` if it is not one."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"ADAS archive {p} does not exist.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"Cannot read ADAS archive {p}: {e}.") from None
    except json.JSONDecodeError as e:
        raise DataError(
            f"{p} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}). An ADAS "
            "archive is a JSON list of entries with thought, name, code and fitness."
        ) from None
    if isinstance(data, dict) and isinstance(data.get("code"), str):
        data = [data]  # a single entry
    if not isinstance(data, list):
        raise DataError(
            f"{p} is not an ADAS archive: expected a JSON list of entries (thought, name, "
            f"code, generation, fitness), got a JSON {type(data).__name__}."
        )
    return data


def _check_entry(
    i: int, entry: Any, policy: ValidationPolicy | None
) -> tuple[str, str, list[str], list[str]]:
    """(name, code, problems, warnings) of one entry."""
    if not isinstance(entry, dict):
        return f"entry {i}", "", [f"is a JSON {type(entry).__name__}, not an object"], []
    problems: list[str] = []
    warnings: list[str] = []
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append("has no `name` (a non-empty string)")
        name = f"entry {i}"
    code = entry.get("code")
    if not isinstance(code, str) or not code.strip():
        problems.append("has no `code` (the source of `def forward(self, taskInfo):`)")
        code = ""
    else:
        problems += [str(f) for f in validate_code(code, policy)]
    if "thought" in entry and not isinstance(entry["thought"], str):
        warnings.append("`thought` is not a string; it was converted")
    for key in ("fitness", "test_fitness"):
        value = entry.get(key)
        if value is None:
            continue
        try:
            parse_adas_fitness(value)
        except DataError:
            warnings.append(f"`{key}` {value!r} is not in ADAS's format; kept as it is")
    gen = entry.get("generation")
    if gen is not None and gen != "initial" and not (isinstance(gen, int) and gen >= 0):
        warnings.append(f'`generation` {gen!r} is neither "initial" nor an int')
    return name.strip(), code, problems, warnings


def _known_fingerprints(archive: Archive) -> dict[str, str]:
    """Fingerprint → oldest candidate id, for every candidate with code (computed if unset)."""
    known: dict[str, str] = {}
    for r in archive.records():
        fp = r.fingerprint
        if not fp and r.code_path:
            try:
                fp = fingerprint(archive.read_agent(r.id))
            except (OSError, MetasearchError):  # a code file that is gone
                fp = ""
        if fp:
            known.setdefault(fp, r.id)
    return known


def _next_import_index(archive: Archive) -> int:
    n = -1
    for r in archive.records():
        if r.id.startswith("imp-"):
            try:
                n = max(n, int(r.id[4:7]))
            except ValueError:
                continue
    return n + 1


def import_adas(
    entries: Sequence[Any],
    archive: Archive,
    *,
    source: str = "",
    suite: str | None = None,
    evaluate: EvaluateCode | None = None,
    policy: ValidationPolicy | None = None,
) -> ImportReport:
    """Validate every entry and add the valid ones to ``archive`` as imported candidates.

    Entries that fail (missing fields, libcst findings) or duplicate an agent
    already in the archive or earlier in the file are reported, not added.
    With ``evaluate``, each added agent is re-scored first: the record gets
    its validation score and spend, or status ``failed`` with the reason.
    """
    out: list[ImportedEntry] = []
    seen = _known_fingerprints(archive)
    next_index = _next_import_index(archive)
    for i, entry in enumerate(entries):
        name, code, problems, warnings = _check_entry(i, entry, policy)
        if problems:
            out.append(
                ImportedEntry(
                    i, name, "invalid", problems=tuple(problems), warnings=tuple(warnings)
                )
            )
            continue
        fp = fingerprint(code)
        dup = seen.get(fp)
        if dup is not None:
            out.append(
                ImportedEntry(
                    i,
                    name,
                    "duplicate",
                    fingerprint=fp,
                    duplicate_of=dup,
                    problems=(f"is the same agent as {dup}",),
                    warnings=tuple(warnings),
                )
            )
            continue
        rec = _record(entry, i, name, code, fp, imported_id(next_index, name), source, suite)
        next_index += 1
        if evaluate is not None:
            rec = _evaluated(rec, code, evaluate)
        stored = archive.add(rec, code=code)
        seen[fp] = stored.id
        out.append(
            ImportedEntry(
                i,
                name,
                "added",
                id=stored.id,
                status=stored.status,
                fingerprint=fp,
                warnings=tuple(warnings),
                val=stored.val,
            )
        )
    return ImportReport(source=source, entries=tuple(out))


def _record(
    entry: Mapping[str, Any],
    index: int,
    name: str,
    code: str,
    fp: str,
    cid: str,
    source: str,
    suite: str | None,
) -> CandidateRecord:
    thought = entry.get("thought", "")
    adas = {
        "source": source,
        "index": index,
        "generation": entry.get("generation"),
        "fitness": entry.get("fitness"),
        "test_fitness": entry.get("test_fitness"),
    }
    if suite:
        adas["suite"] = suite
    return CandidateRecord(
        id=cid,
        name=name,
        generation="imported",
        status="ok",
        thought=thought if isinstance(thought, str) else json.dumps(thought),
        fingerprint=fp,
        strategy="import",
        reason="imported from an ADAS archive; not re-scored here",
        meta={"adas": adas},
    )


def _evaluated(rec: CandidateRecord, code: str, evaluate: EvaluateCode) -> CandidateRecord:
    start = time.monotonic()
    try:
        val, calls, tokens, cost, errors = evaluate(code)
    except Exception as e:  # the agent's failure is a state of the record, not a crash
        return replace(
            rec,
            status="failed",
            reason=f"re-scoring failed: {type(e).__name__}: {e}"[:2000],
            wall_s=time.monotonic() - start,
        )
    status = "failed" if val.n and errors >= val.n else "ok"
    reason = (
        f"every one of the {val.n} validation tasks raised an error"
        if status == "failed"
        else "imported from an ADAS archive; re-scored on this campaign's validation split"
    )
    return replace(
        rec,
        status=status,
        reason=reason,
        val=val,
        calls=int(calls),
        tokens=int(tokens),
        cost_usd=float(cost),
        errors=int(errors),
        wall_s=time.monotonic() - start,
    )
