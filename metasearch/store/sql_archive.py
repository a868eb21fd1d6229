"""The archive store on a database: the interface and records of :class:`~metasearch.store.archive.Archive`.

Several workers write one campaign at once, so nothing is held only in
memory: each read first fetches the rows added since the last one (by any
worker), in the order they were committed. A record's id is unique per
campaign (a unique constraint), so a second ``add`` of one id is a
:class:`DuplicateRecordError` even when it comes from another machine.
Agent code, per-task results, traces and transcripts live in a files table
under the same relative paths the JSONL archive uses, so exports read
either backend the same way.

Example::

    arc = SqlArchive.open("postgresql://u:p@db/metasearch", campaign="quickstart")
    arc.add(record, code=src)
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from metasearch.errors import DataError
from metasearch.store import db
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

__all__ = ["SqlArchive", "campaign_names"]


def campaign_names(url: str) -> list[str]:
    """The campaigns a database holds (those with a campaign row or a record)."""
    engine = db.open_engine(url)
    with engine.connect() as conn:
        named = conn.execute(sa.select(db.campaigns.c.name)).scalars().all()
        used = conn.execute(sa.select(db.records.c.campaign).distinct()).scalars().all()
        stated = conn.execute(sa.select(db.states.c.campaign).distinct()).scalars().all()
    return sorted(set(named) | set(used) | set(stated))


class SqlArchive:
    """One campaign's archive in a database; thread- and process-safe for writes.

    ``root`` is a local directory for the reports and caches of this
    process (it holds no records); ``readonly=True`` refuses writes and
    needs an existing campaign.
    """

    def __init__(self, engine: sa.Engine, campaign: str, *, root: Path, readonly: bool,
                 url: str) -> None:
        self.engine, self.campaign, self.root, self.readonly = engine, campaign, root, readonly
        self.url = url
        self._mutex = threading.RLock()
        self._records: dict[str, CandidateRecord] = {}
        self._tests: dict[str, SplitScore] = {}
        self._by_fp: dict[str, list[str]] = {}
        self._state: CampaignState | None = None
        self._seen = 0  # highest record seq read
        self._seen_state = 0

    @classmethod
    def open(cls, url: str, *, campaign: str, root: str | Path | None = None,
             readonly: bool = False) -> SqlArchive:
        engine = db.open_engine(url)
        arc = cls(engine, campaign, root=Path(root) if root is not None else Path("."),
                  readonly=readonly, url=url)
        if readonly and campaign not in campaign_names(url):
            known = ", ".join(campaign_names(url)) or "none"
            raise DataError(f"The database {db.redact(url)} holds no campaign {campaign!r}; it "
                            f"holds: {known}. Name one after '#': {db.redact(url)}#NAME.")
        return arc

    def close(self) -> None:
        pass  # the engine is shared by the process (see db.open_engine)

    def __enter__(self) -> SqlArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> str:
        return f"{db.redact(self.url)}#{self.campaign}"

    def config_params(self) -> dict[str, str]:
        """The flat config every worker of the campaign shares ({} before one joined)."""
        c = db.campaigns
        with self.engine.connect() as conn:
            text = conn.execute(sa.select(c.c.config_json).where(
                c.c.name == self.campaign)).scalar()
        return dict(json.loads(text)) if text else {}

    # ---- reading what every worker wrote

    def _refresh(self) -> None:
        with self._mutex, self.engine.connect() as conn:
            r, t, s = db.records, db.tests, db.states
            for seq, body in conn.execute(
                    sa.select(r.c.seq, r.c.body).where(r.c.campaign == self.campaign,
                                                       r.c.seq > self._seen).order_by(r.c.seq)):
                rec = CandidateRecord.from_json(json.loads(body))
                if rec.id not in self._records:
                    self._records[rec.id] = rec
                    if rec.fingerprint:
                        self._by_fp.setdefault(rec.fingerprint, []).append(rec.id)
                self._seen = max(self._seen, seq)
            if len(self._tests) < len(self._records):
                for cid, body in conn.execute(sa.select(t.c.cid, t.c.body).where(
                        t.c.campaign == self.campaign)):
                    self._tests[cid] = SplitScore.from_json(json.loads(body))
            last = conn.execute(sa.select(s.c.seq, s.c.body).where(
                s.c.campaign == self.campaign, s.c.seq > self._seen_state)
                .order_by(s.c.seq.desc()).limit(1)).first()
            if last is not None:
                self._seen_state = last.seq
                self._state = CampaignState(**json.loads(last.body))

    def _folded(self, rec: CandidateRecord) -> CandidateRecord:
        test = self._tests.get(rec.id)
        return replace(rec, test=test) if test is not None else rec

    def records(self) -> tuple[CandidateRecord, ...]:
        """All candidates in the order they were committed, test results folded in."""
        with self._mutex:
            self._refresh()
            return tuple(self._folded(r) for r in self._records.values())

    def __len__(self) -> int:
        self._refresh()
        return len(self._records)

    def has(self, cid: str) -> bool:
        if cid not in self._records:
            self._refresh()
        return cid in self._records

    def get(self, cid: str) -> CandidateRecord:
        with self._mutex:
            self._refresh()
            rec = self._records.get(cid)
            if rec is None:
                known = ", ".join(list(self._records)[:20]) or "none"
                raise UnknownCandidateError(
                    f"No candidate {cid!r} in {self.path}. Known ids: {known}. "
                    f"`metasearch archive list {self.path}` shows them all.")
            return self._folded(rec)

    def by_fingerprint(self, fp: str) -> tuple[CandidateRecord, ...]:
        with self._mutex:
            self._refresh()
            return tuple(self._folded(self._records[i]) for i in self._by_fp.get(fp, ()))

    def best(self, split: Literal["validation"] = "validation") -> CandidateRecord | None:
        """The ``ok`` candidate with the highest validation mean (ties: higher CI low, older)."""
        if split != "validation":
            raise ValueError("selection uses the validation split only; test is for reporting")
        scored = [r for r in self.records() if r.status == "ok" and r.val is not None]
        if not scored:
            return None
        order = {r.id: i for i, r in enumerate(scored)}
        return max(scored, key=lambda r: (r.val.mean, r.val.ci_low, -order[r.id]))  # type: ignore[union-attr]

    def state(self) -> CampaignState | None:
        self._refresh()
        return self._state

    def progress(self) -> list[ProgressPoint]:
        return progress_curve(self.records())

    # ---- writing

    def _writable(self) -> None:
        if self.readonly:
            raise RuntimeError("this archive was opened read-only")

    def add(self, record: CandidateRecord, *, code: str | None = None) -> CandidateRecord:
        """Commit ``record`` (and its code) in one transaction; a duplicate id is refused."""
        self._writable()
        with self._mutex:
            if code is not None:
                record = replace(record, code_path=f"agents/{_checked_id(record.id)}.py")
            body = json.dumps({"v": SCHEMA_VERSION, **record.to_json()}, ensure_ascii=False,
                              allow_nan=False)
            try:
                with self.engine.begin() as conn:
                    conn.execute(db.records.insert().values(
                        campaign=self.campaign, cid=record.id, body=body))
                    if code is not None:
                        self._put(conn, record.code_path, code)
            except sa.exc.IntegrityError:
                raise DuplicateRecordError(
                    f"candidate {record.id!r} is already in {self.path}") from None
            self._refresh()
            return self._folded(self._records[record.id])

    def add_test_result(self, cid: str, test: SplitScore) -> CandidateRecord:
        """Record the (one) test-split evaluation of candidate ``cid``."""
        self._writable()
        if not self.has(cid):
            raise UnknownCandidateError(f"no candidate {cid!r} in {self.path} to add a test "
                                        "result to")
        try:
            with self.engine.begin() as conn:
                conn.execute(db.tests.insert().values(
                    campaign=self.campaign, cid=cid, body=json.dumps(test.to_json())))
        except sa.exc.IntegrityError:
            raise DuplicateRecordError(f"candidate {cid!r} already has a test result") from None
        with self._mutex:
            self._tests[cid] = test
            return self._folded(self._records[cid])

    def checkpoint(self, state: CampaignState) -> None:
        """Append a resume checkpoint; :meth:`state` returns the last one of any worker."""
        self._writable()
        with self.engine.begin() as conn:
            conn.execute(db.states.insert().values(campaign=self.campaign,
                                                   body=json.dumps(asdict(state), default=str)))

    def _put(self, conn: Any, rel: str, text: str) -> None:
        f = db.files
        done = conn.execute(f.update().where(f.c.campaign == self.campaign, f.c.path == rel)
                            .values(text=text))
        if done.rowcount == 0:
            conn.execute(f.insert().values(campaign=self.campaign, path=rel, text=text))

    def _write(self, rel: str, text: str) -> str:
        self._writable()
        for _ in range(3):  # two workers racing to insert the same path: retry as update
            try:
                with self.engine.begin() as conn:
                    self._put(conn, rel, text)
                return rel
            except sa.exc.IntegrityError:
                continue
        raise DataError(f"could not write {rel} to {self.path}")

    def _read(self, rel: str) -> str | None:
        f = db.files
        with self.engine.connect() as conn:
            return conn.execute(sa.select(f.c.text).where(
                f.c.campaign == self.campaign, f.c.path == rel)).scalar()

    def write_agent(self, cid: str, code: str) -> str:
        return self._write(f"agents/{_checked_id(cid)}.py", code)

    def write_results(self, cid: str, data: Any, *, split: str = "validation") -> str:
        suffix = "" if split == "validation" else f".{split}"
        return self._write(f"results/{_checked_id(cid)}{suffix}.json",
                           json.dumps(data, indent=1, ensure_ascii=False, default=str))

    def write_traces(self, cid: str, lines: Any, *, split: str = "validation") -> str | None:
        if not lines:
            return None
        suffix = "" if split == "validation" else f".{split}"
        return self._write(f"traces/{_checked_id(cid)}{suffix}.jsonl", "".join(
            json.dumps(line, ensure_ascii=False, default=str) + "\n" for line in lines))

    def write_transcript(self, cid: str, text: str) -> str:
        return self._write(f"transcripts/{_checked_id(cid)}.md", text)

    def read_agent(self, cid: str) -> str:
        rec = self.get(cid)
        text = self._read(rec.code_path) if rec.code_path else None
        if text is None:
            raise UnknownCandidateError(f"Candidate {cid!r} in {self.path} has no code.")
        return text

    def read_results(self, cid: str, *, split: str = "validation") -> Any | None:
        suffix = "" if split == "validation" else f".{split}"
        text = self._read(f"results/{_checked_id(cid)}{suffix}.json")
        return json.loads(text) if text is not None else None

    def read_traces(self, cid: str, *, split: str = "validation") -> list[dict[str, Any]] | None:
        suffix = "" if split == "validation" else f".{split}"
        text = self._read(f"traces/{_checked_id(cid)}{suffix}.jsonl")
        if text is None:
            return None
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def read_transcript(self, cid: str) -> str | None:
        return self._read(f"transcripts/{_checked_id(cid)}.md")
