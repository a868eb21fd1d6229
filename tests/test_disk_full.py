"""Disk full, store by store, on a real tmpfs: what each writer leaves, and that it says so.

Mounting needs root (CI runs as root); without it, or where the mount is
refused, the tmpfs tests skip. The archive's append meets a full disk in the
middle of a line (the tmpfs takes part of it, then refuses the rest), a side
file meets it in its temp file, the response cache in SQLite, and a whole
campaign (scripted models, in this process) when the meta agent's reply or
an agent's task reply cannot be cached. The CLI run, with MLflow and the
sandbox, is ``test_disk_full_cli``.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import warnings
from pathlib import Path

import pytest
from tmpfs_kit import fill, grow, root_only, tmpfs

from metasearch.candidate.validate import validate_code
from metasearch.diskfull import DiskFullError, campaign_disk_full, disk_full, is_disk_full
from metasearch.llm.cache import ResponseCache
from metasearch.llm.scripted import scripted_gateway
from metasearch.llm.types import LLMRequest
from metasearch.search.adas.context import TaskBrief
from metasearch.search.adas.proposer import Proposer
from metasearch.search.adas.strategy import AdasStrategy
from metasearch.store.archive import Archive
from metasearch.store.records import CandidateRecord, candidate_id
from metasearch.testing import TOY_SUITE, toy_agent
from metasearch.testing.campaigns import (
    META_MODEL,
    ScriptedModel,
    close_campaign,
    comparable,
    toy_campaign,
)

# ---------------------------------------------------------------- recognising it


def test_every_form_of_a_full_disk_is_recognised_and_nothing_else():
    class MlflowException(Exception):  # how MLflow wraps SQLAlchemy's wrap of sqlite's error
        pass

    try:
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as e:
            raise MlflowException("(sqlite3.OperationalError) database or disk is full") from e
    except MlflowException as e:
        wrapped = e
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))
    assert is_disk_full(wrapped)
    assert not is_disk_full(OSError(errno.ENOENT, "No such file or directory"))
    assert not is_disk_full(sqlite3.OperationalError("database is locked"))
    assert not is_disk_full(ValueError("bad value"))

    err = campaign_disk_full("runs/x", disk_full("runs/x/archive.jsonl",
                                                 OSError(errno.EDQUOT, "quota")))
    text = str(err)
    assert isinstance(err, DiskFullError) and err.exit_code == 4
    assert "The campaign directory runs/x ran out of disk space while writing " \
           "runs/x/archive.jsonl (Disk quota exceeded)" in text, text
    assert "`df -h runs/x`" in text and "--resume" in text and "\n" not in text
    weights = campaign_disk_full("/runs/x", disk_full("/home/u/.cache/m.gguf",
                                                      OSError(errno.ENOSPC, "full")))
    assert str(weights).startswith("The file system of /home/u/.cache ran out of space while "
                                   "writing /home/u/.cache/m.gguf (outside the campaign "
                                   "directory /runs/x)"), str(weights)
    assert "`df -h /home/u/.cache`" in str(weights)


# ---------------------------------------------------------------- the archive


def _record(i: int) -> CandidateRecord:
    return CandidateRecord(id=candidate_id(1, i), name=f"Agent {i}", generation=1,
                           status="invalid", reason="x" * 2500 + f" {i}")


@root_only
def test_an_archive_append_that_fills_the_disk_leaves_only_whole_lines(tmp_path):
    with tmpfs(tmp_path / "disk", 64) as disk:
        arc = Archive.open(disk / "run")
        added = 0
        with pytest.raises(DiskFullError) as info:
            for i in range(100):
                size = arc.path.stat().st_size
                arc.add(_record(i))
                added += 1
        assert added > 3 and size % 4096, "the failing line must have had room for a part"
        assert arc.path.stat().st_size == size  # the part that fit was cut off at once
        assert str(arc.path) in str(info.value) and "No space left" in str(info.value)
        assert len(arc) == added
        data = arc.path.read_bytes()
        assert data.endswith(b"\n")
        assert [json.loads(x)["id"] for x in data.splitlines()] == [
            candidate_id(1, i) for i in range(added)]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no torn line to warn about
            assert len(Archive.open(disk / "run", readonly=True)) == added
        grow(disk, 256)
        arc.add(_record(added))  # the one that failed goes in now: nothing was indexed
        arc.close()
        with Archive.open(disk / "run") as again:
            assert [r.id for r in again.records()] == [candidate_id(1, i)
                                                       for i in range(added + 1)]


@root_only
def test_a_side_file_that_fills_the_disk_keeps_the_old_one_and_no_temp_file(tmp_path):
    with tmpfs(tmp_path / "disk", 64) as disk:
        with Archive.open(disk / "run") as arc:
            arc.write_agent("g001-00", toy_agent(1))
            fill(disk)
            with pytest.raises(DiskFullError, match="agents/g001-00.py"):
                arc.write_agent("g001-00", toy_agent(1) + "#" * 20000)
            assert (disk / "run/agents/g001-00.py").read_text() == toy_agent(1)
            assert sorted(p.name for p in (disk / "run/agents").iterdir()) == ["g001-00.py"]


@root_only
def test_local_weights_that_do_not_fit_name_the_file_and_leave_no_temp_file(tmp_path):
    import hashlib

    from metasearch.llm.local import assemble_parts

    part = tmp_path / "part"
    part.write_bytes(b"GGUF" + b"w" * (300 * 1024))
    with tmpfs(tmp_path / "disk", 128) as disk:
        dest = disk / "models" / "m.gguf"
        with pytest.raises(DiskFullError, match="m.gguf: No space left on device"):
            assemble_parts([part], dest, size=part.stat().st_size,
                           sha256=hashlib.sha256(part.read_bytes()).hexdigest())
        assert list((disk / "models").iterdir()) == []


# ---------------------------------------------------------------- the response cache


def _ask(gw, text: str):
    return gw.complete(LLMRequest(model="scripted/x", messages=({"role": "user",
                                                                 "content": text},)))


@root_only
def test_a_reply_the_cache_cannot_keep_is_counted_then_stops_every_later_call(tmp_path):
    seen: list[str] = []

    def reply(req: LLMRequest) -> str:
        seen.append(req.messages[0]["content"])
        return "4 " + "y" * 20000

    with tmpfs(tmp_path / "disk", 1024) as disk:
        cache = ResponseCache(directory=disk / "cache")
        with scripted_gateway(reply, cache=cache) as gw:
            assert _ask(gw, "kept").text.startswith("4")
            fill(disk)
            with pytest.raises(DiskFullError, match="database or disk is full"):
                _ask(gw, "lost")
            assert gw.snapshot().total.calls == 2  # billed, so counted
            with pytest.raises(DiskFullError):
                _ask(gw, "never sent")
            assert seen == ["kept", "lost"]
            with pytest.raises(DiskFullError):
                gw.check_storage()
        grow(disk, 4096)
        with scripted_gateway(reply, cache=ResponseCache(directory=disk / "cache")) as gw:
            assert _ask(gw, "kept").cached  # the cache is intact and still serves
            assert not _ask(gw, "lost").cached
        assert seen == ["kept", "lost", "lost"]


# ---------------------------------------------------------------- a campaign


def _sections(code: str, name: str) -> str:
    return f"## thought\nAn idea.\n\n## name\n{name}\n\n## code\n```python\n{code}```\n"


class Meta:
    """Each generation's meta agent adds one pass; ``fill_at`` fills the disk on that call."""

    def __init__(self, disk: Path | None = None, fill_at: str = "") -> None:
        self.disk, self.fill_at = disk, fill_at

    def __call__(self, req: LLMRequest) -> str:
        n = int("".join(ch for ch in (req.candidate or "")[:4] if ch.isdigit()) or 0)
        if self.disk is not None and self.fill_at == "meta":
            fill(self.disk)
            self.fill_at = ""
        return _sections(toy_agent(1 + n, f"Solve it, pass {n}."), f"Agent {req.candidate}")


class Tasks(ScriptedModel):
    """The toy task model, but the first call of a generated agent can fill the disk first."""

    def __init__(self, meta: Meta) -> None:
        super().__init__(meta)
        self.meta_model = meta

    def __call__(self, req: LLMRequest) -> str:
        m = self.meta_model
        if (req.role != "meta" and m.disk is not None and m.fill_at == "task"
                and "pass 1" in json.dumps(req.messages)):
            fill(m.disk)
            m.fill_at = ""
        return super().__call__(req)


def _strategy(gateway, _parallel):
    proposer = Proposer(complete=gateway.complete, model=META_MODEL, reflexion_rounds=0,
                        repair_rounds=0, validate=validate_code)
    return AdasStrategy(proposer=proposer, task=TaskBrief.from_suite(TOY_SUITE),
                        generations=2, attempts=1, width=1, debug_rounds=0)


def _run(directory: Path, model: ScriptedModel) -> list[tuple]:
    campaign = toy_campaign(directory, model, _strategy, val=4, test=2)
    try:
        return comparable(campaign.run().records)
    finally:
        close_campaign(campaign)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[tuple]:
    records = _run(tmp_path_factory.mktemp("room"), Tasks(Meta()))
    assert [r[0] for r in records] == ["seed-toy_seed", "g001-00", "g002-00"], records
    return records


@root_only
@pytest.mark.parametrize("where", ["meta", "task"])
def test_a_campaign_that_fills_its_disk_stops_and_resumes_to_the_same_records(
        where, reference, tmp_path):
    with tmpfs(tmp_path / "disk", 4096) as disk:
        model = Tasks(Meta(disk, fill_at=where))
        with pytest.raises(DiskFullError, match="cache"):
            _run(disk / "run", model)
        assert model.meta_model.fill_at == ""  # it filled where it was told
        with Archive.open(disk / "run", readonly=True) as arc:
            partial = comparable(arc.records())
        assert [r[0] for r in partial] == ["seed-toy_seed"]  # g001-00 is not recorded
        assert partial == [r[:-1] + (None,) for r in reference[:1]]  # its test comes last
        grow(disk, 8192)
        assert _run(disk / "run", Tasks(Meta())) == reference


# ---------------------------------------------------------------- the Optuna journal


@root_only
def test_an_optuna_journal_cut_by_a_full_disk_still_loads_after_more_trials(tmp_path):
    import optuna

    from metasearch.search.optuna.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tmpfs(tmp_path / "disk", 64) as disk:
        journal = str(disk / "optuna.journal")
        study = optuna.create_study(study_name="s", storage=open_storage(journal))
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        fill(disk)
        size = os.path.getsize(journal)
        assert size % 4096, "the last page must have room for part of a line"
        with pytest.raises(OSError) as info:
            study.set_user_attr("note", "z" * 8000)  # longer than the room left
        assert is_disk_full(info.value)
        assert os.path.getsize(journal) > size  # Optuna let part of the line through
        grow(disk, 1024)
        for _ in range(2):  # each reopening appends: a kept part would be glued to them
            again = optuna.load_study(study_name="s", storage=open_storage(journal))
            again.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
        final = optuna.load_study(study_name="s", storage=open_storage(journal))
        assert len(final.trials) == 4 and "note" not in final.user_attrs
