"""The campaign archive store: durable, dumb storage of a campaign's records. No search logic.

The record types live in :mod:`metasearch.store.records` (re-exported here).
A campaign directory holds::

    archive.jsonl        one JSON object per line, append-only (see below)
    agents/<id>.py       each candidate's code, written atomically
    results/<id>.json    per-task results of a candidate (side files, optional)
    traces/<id>.jsonl    per-task traces: one line per task, its answer, gold and LLM calls
                         (``<id>.test.jsonl`` for the test split; see runtime.traces)
    transcripts/<id>.md  the meta agent's transcript for a candidate (optional)
    cache/  mlflow.db  mlartifacts/  report.md   (owned by other modules)

Lines of ``archive.jsonl`` have a ``kind``:

- ``candidate``: one :class:`CandidateRecord`, every candidate including the
  invalid, failed, pruned and budget-stopped ones, with the reason;
- ``test_result``: a test-split :class:`SplitScore` added later for one id;
  loading folds it into the record's ``test`` field;
- ``state``: a :class:`CampaignState` checkpoint; the last one wins.

Each line is written with one ``write`` + flush + fsync, so a crash leaves at
most a torn last line, which :meth:`Archive.open` drops (and cuts off, when
opened for writing). A full disk (ENOSPC, EDQUOT) cuts the part of the line it
let through at once and raises :class:`~metasearch.diskfull.DiskFullError`;
side files are written to a temp file and renamed, so they too are whole or
absent. Records are frozen and never change once returned.
Writes may come from several threads at once: one lock orders the appends.

Example::

    arc = Archive.open("runs/quickstart")
    arc.add(CandidateRecord(id=candidate_id(1, 0), name="Vote", ...), code=src)
    arc.best()  # the best on validation; test never drives selection
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Literal

from metasearch import atomic
from metasearch.diskfull import disk_full, is_disk_full
from metasearch.errors import DataError, MetasearchError
from metasearch.store.records import (
    SCHEMA_VERSION,
    CampaignState,
    CandidateRecord,
    DuplicateRecordError,
    ProgressPoint,
    SplitScore,
    UnknownCandidateError,
    _checked_id,
    progress_curve,
)

__all__ = ["ARCHIVE_FILE", "Archive", "ArchiveLockedError"]

ARCHIVE_FILE = "archive.jsonl"


# --------------------------------------------------------------------------- errors


class ArchiveLockedError(MetasearchError):
    """Another process is writing to this campaign directory."""


# --------------------------------------------------------------------------- archive


class Archive:
    """Append-only archive of one campaign directory. Thread-safe for writes.

    Open with :meth:`open`. A writer holds an exclusive ``flock`` on
    ``archive.lock`` (released by the OS even after ``kill -9``), so two runs
    cannot write one campaign. ``readonly=True`` takes no lock, never
    repairs, and needs an existing archive.
    """

    def __init__(self, root: Path, *, readonly: bool, _lock_fd: int | None) -> None:
        self.root = root
        self.readonly = readonly
        self._lock_fd = _lock_fd
        self._mutex = threading.Lock()
        self._records: dict[str, CandidateRecord] = {}
        self._tests: dict[str, SplitScore] = {}
        self._state: CampaignState | None = None
        self._by_fp: dict[str, list[str]] = {}

    # ---- opening

    @classmethod
    def open(cls, root: str | Path, *, readonly: bool = False) -> Archive:
        root = Path(root)
        path = root / ARCHIVE_FILE
        if readonly:
            if not path.is_file():
                raise DataError(
                    f"{root} is not a campaign directory: it has no {ARCHIVE_FILE}. "
                    f"Pass the run.out directory of a campaign (e.g. runs/quickstart)."
                )
            arc = cls(root, readonly=True, _lock_fd=None)
        else:
            for sub in ("agents", "results", "transcripts"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            arc = cls(root, readonly=False, _lock_fd=_take_lock(root))
            path.touch(exist_ok=True)
        arc._load()
        return arc

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> Path:
        return self.root / ARCHIVE_FILE

    def _load(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1  # only newline-terminated lines are complete
        lines = data[:end].split(b"\n")[:-1]
        good_end = 0
        for i, raw in enumerate(lines):
            try:
                obj = json.loads(raw) if raw.strip() else None
            except ValueError:
                if i == len(lines) - 1 and not data[end:].strip():
                    self._torn(good_end, len(data))  # garbage last line: torn too
                    return
                raise DataError(
                    f"{self.path} line {i + 1} is not valid JSON, and it is not the last line, "
                    f"so it is not a torn write from a crash. Restore the file from a backup or "
                    f"delete that line by hand."
                ) from None
            if obj is not None:
                self._apply(obj, i + 1)
            good_end += len(raw) + 1
        if end < len(data):
            self._torn(end, len(data))

    def _torn(self, good_end: int, size: int) -> None:
        warnings.warn(
            f"{self.path}: ignoring a torn last line ({size - good_end} bytes), "
            f"left by an interrupted write",
            stacklevel=3,
        )
        if not self.readonly:
            with open(self.path, "r+b") as f:
                f.truncate(good_end)
                f.flush()
                os.fsync(f.fileno())

    def _apply(self, obj: Any, lineno: int) -> None:
        kind = obj.get("kind") if isinstance(obj, dict) else None
        body = {k: v for k, v in obj.items() if k not in ("kind", "v")}
        try:
            if kind == "candidate":
                self._index(CandidateRecord.from_json(body))
            elif kind == "test_result":
                self._tests[str(body["id"])] = SplitScore.from_json(body["test"])
            elif kind == "state":
                self._state = CampaignState(**body)
            else:
                warnings.warn(f"{self.path} line {lineno}: unknown kind {kind!r}", stacklevel=4)
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(
                f"{self.path} line {lineno} is a malformed {kind} record ({e}). "
                f"The file was edited by hand or written by an incompatible version."
            ) from None

    def _index(self, rec: CandidateRecord) -> None:
        self._records[rec.id] = rec
        if rec.fingerprint:
            self._by_fp.setdefault(rec.fingerprint, []).append(rec.id)

    # ---- writing

    def _append(self, obj: dict[str, Any]) -> None:
        if self.readonly:
            raise RuntimeError("this Archive was opened read-only")
        line = json.dumps({"v": SCHEMA_VERSION, **obj}, ensure_ascii=False, allow_nan=False)
        data = (line + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size  # the one writer holds the lock: this is the end
            view = memoryview(data)
            try:
                while view:  # one write() normally; loop only on a short write
                    n = os.write(fd, view)
                    view = view[n:]
                os.fsync(fd)
            except OSError as exc:  # a full disk writes part of the line, then fails
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)  # back to whole lines (it frees, so it works)
                    os.fsync(fd)
                if is_disk_full(exc):
                    raise disk_full(self.path, exc) from exc
                raise
        finally:
            os.close(fd)

    def add(self, record: CandidateRecord, *, code: str | None = None) -> CandidateRecord:
        """Append ``record`` (after writing ``code`` to ``agents/<id>.py`` if given).

        Raises :class:`DuplicateRecordError` if the id is already present.
        Returns the stored record (with ``code_path`` set when code was given).
        """
        with self._mutex:
            if record.id in self._records:
                raise DuplicateRecordError(f"candidate {record.id!r} is already in {self.path}")
            if code is not None:
                rel = self.write_agent(record.id, code)
                record = replace(record, code_path=rel)
            self._append({"kind": "candidate", **record.to_json()})
            self._index(record)
            return self._folded(record)

    def add_test_result(self, cid: str, test: SplitScore) -> CandidateRecord:
        """Record the (one) test-split evaluation of candidate ``cid``."""
        with self._mutex:
            if cid not in self._records:
                raise UnknownCandidateError(
                    f"no candidate {cid!r} in {self.path} to add a test result to"
                )
            if cid in self._tests:
                raise DuplicateRecordError(f"candidate {cid!r} already has a test result")
            self._append({"kind": "test_result", "id": cid, "test": test.to_json()})
            self._tests[cid] = test
            return self._folded(self._records[cid])

    def checkpoint(self, state: CampaignState) -> None:
        """Append a resume checkpoint; :meth:`state` returns the last one."""
        with self._mutex:
            self._append({"kind": "state", **asdict(state)})
            self._state = state

    def write_agent(self, cid: str, code: str) -> str:
        """Atomically write ``agents/<cid>.py``; returns the path relative to the root."""
        rel = f"agents/{_checked_id(cid)}.py"
        _atomic_write(self.root / rel, code)
        return rel

    def write_results(self, cid: str, data: Any, *, split: str = "validation") -> str:
        """Atomically write per-task results JSON; ``results/<cid>.json`` (or ``<cid>.test.json``)."""
        suffix = "" if split == "validation" else f".{split}"
        rel = f"results/{_checked_id(cid)}{suffix}.json"
        _atomic_write(self.root / rel, json.dumps(data, indent=1, ensure_ascii=False, default=str))
        return rel

    def write_traces(self, cid: str, lines: Any, *, split: str = "validation") -> str | None:
        """Atomically write ``traces/<cid>.jsonl`` (or ``<cid>.<split>.jsonl``), one task a line.

        Writes nothing for no lines (an untraced runner); returns the path or None.
        """
        if not lines:
            return None
        suffix = "" if split == "validation" else f".{split}"
        rel = f"traces/{_checked_id(cid)}{suffix}.jsonl"
        _atomic_write(self.root / rel, "".join(
            json.dumps(line, ensure_ascii=False, default=str) + "\n" for line in lines))
        return rel

    def write_transcript(self, cid: str, text: str) -> str:
        """Atomically write the meta agent's transcript for ``cid``."""
        rel = f"transcripts/{_checked_id(cid)}.md"
        _atomic_write(self.root / rel, text)
        return rel

    # ---- reading

    def _folded(self, rec: CandidateRecord) -> CandidateRecord:
        test = self._tests.get(rec.id)
        return replace(rec, test=test) if test is not None else rec

    def records(self) -> tuple[CandidateRecord, ...]:
        """All candidates in the order they were added, test results folded in."""
        with self._mutex:
            return tuple(self._folded(r) for r in self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    def has(self, cid: str) -> bool:
        return cid in self._records

    def get(self, cid: str) -> CandidateRecord:
        rec = self._records.get(cid)
        if rec is None:
            known = ", ".join(list(self._records)[:20]) or "none"
            raise UnknownCandidateError(
                f"No candidate {cid!r} in {self.root}. Known ids: {known}. "
                f"`metasearch archive list {self.root}` shows them all."
            )
        return self._folded(rec)

    def by_fingerprint(self, fp: str) -> tuple[CandidateRecord, ...]:
        """Candidates whose code has this fingerprint, oldest first."""
        return tuple(self._folded(self._records[i]) for i in self._by_fp.get(fp, ()))

    def best(self, split: Literal["validation"] = "validation") -> CandidateRecord | None:
        """The ``ok`` candidate with the highest validation mean (ties: higher CI low, older).

        Selection uses validation only; asking for ``"test"`` is an error.
        """
        if split != "validation":
            raise ValueError("selection uses the validation split only; test is for reporting")
        scored = [r for r in self.records() if r.status == "ok" and r.val is not None]
        if not scored:
            return None
        order = {r.id: i for i, r in enumerate(scored)}
        return max(scored, key=lambda r: (r.val.mean, r.val.ci_low, -order[r.id]))  # type: ignore[union-attr]

    def state(self) -> CampaignState | None:
        return self._state

    def read_agent(self, cid: str) -> str:
        rec = self.get(cid)
        if not rec.code_path:
            raise UnknownCandidateError(f"Candidate {cid!r} in {self.root} has no code.")
        return (self.root / rec.code_path).read_text(encoding="utf-8")

    def read_results(self, cid: str, *, split: str = "validation") -> Any | None:
        suffix = "" if split == "validation" else f".{split}"
        p = self.root / f"results/{_checked_id(cid)}{suffix}.json"
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None

    def read_traces(self, cid: str, *, split: str = "validation") -> list[dict[str, Any]] | None:
        """The lines of ``cid``'s trace file (one dict per task), or None without one."""
        suffix = "" if split == "validation" else f".{split}"
        p = self.root / f"traces/{_checked_id(cid)}{suffix}.jsonl"
        if not p.is_file():
            return None
        return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()
                if line.strip()]

    def read_transcript(self, cid: str) -> str | None:
        p = self.root / f"transcripts/{_checked_id(cid)}.md"
        return p.read_text(encoding="utf-8") if p.is_file() else None

    def progress(self) -> list[ProgressPoint]:
        return progress_curve(self.records())


def _atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` durably; on a full disk the old file (if any) stays."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, text, durable=True)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(path, exc) from exc
        raise


def _take_lock(root: Path) -> int:
    fd = os.open(root / "archive.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ArchiveLockedError(
            f"Campaign directory {root} is in use by another metasearch process. "
            f"Wait for it to finish, stop it, or choose another run.out directory."
        ) from None
    return fd
