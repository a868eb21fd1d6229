"""Which knobs mattered: fANOVA importances from space trials' records, and in report.md."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from metasearch.reporting.importance import param_importance
from metasearch.reporting.report import write_report
from metasearch.search.spaces import RandomDraw, load_space, seeded_random
from metasearch.search.spaces.distributions import space_distributions, to_distribution
from metasearch.store.records import CandidateRecord, SplitScore, candidate_id

SPACE = "search_spaces/reasoning.toml"


def trial_records(n: int, space_file: str = SPACE, *, flat: bool = False) -> list[CandidateRecord]:
    """``n`` random trials whose score depends on the answerer only (unless ``flat``)."""
    space = load_space(space_file)
    searched = {p.name for p in space.searched()}
    out = []
    for i in range(n):
        cid = candidate_id(1 + i // 4, i % 4)
        values = space.sample(RandomDraw(seeded_random(0, cid)))
        params = {k: v for k, v in values.items() if k in searched}
        mean = 0.5 if flat else {"chain_of_thought": 0.3, "step_back": 0.35,
                                 "program_of_thought": 0.8}[str(params["blocks.answerer"])]
        out.append(CandidateRecord(
            id=cid, name=f"trial {cid}", generation=1 + i // 4, status="ok", strategy="random",
            val=SplitScore(mean, mean - 0.1, mean + 0.1, 30), calls=30,
            meta={"params": params, "space": space.name, "space_file": space_file, "seed": 0}))
    return out


def test_every_searched_param_has_a_distribution_that_holds_its_draws() -> None:
    space = load_space(SPACE)
    dists = space_distributions(space)
    assert set(dists) == {p.name for p in space.searched()}
    for i in range(20):
        for name, value in space.sample(RandomDraw(seeded_random(3, str(i)))).items():
            if name in dists:
                assert dists[name]._contains(dists[name].to_internal_repr(value)), (name, value)
    fixed = next(p for p in space.params if not p.searched)
    assert to_distribution(fixed) is None
    temp = dists["roles.solver.temperature"]
    assert (temp.low, temp.high, temp.step, temp.log) == (0.1, 1.0, 0.1, False)


def test_the_knob_that_decides_the_score_comes_first() -> None:
    records = trial_records(16)
    records.append(CandidateRecord(  # pruned: fewer tasks, left out
        id="g009-00", name="pruned", generation=9, status="pruned",
        val=SplitScore(0.0, 0.0, 0.2, 4), meta=records[0].meta))
    imp = param_importance(records)
    assert imp is not None and imp.ok, imp
    assert imp.trials == 16 and imp.excluded == 1
    assert imp.importances[0][0] == "blocks.answerer"
    assert sum(v for _, v in imp.importances) == pytest.approx(1.0)
    # conditional knobs (a debate's rounds exist only in a debate) are not in every trial
    assert "debate.rounds" in imp.left_out
    assert not {"debate.rounds", *imp.left_out} & {n for n, _ in imp.importances}
    assert param_importance(records) == imp  # seeded: the same records, the same report


def test_skipped_with_a_reason() -> None:
    assert param_importance([CandidateRecord(id="g001-00", name="x", generation=1,
                                             status="ok")]) is None  # adas: no params at all
    few = param_importance(trial_records(3))
    assert few is not None and not few.ok and "only 3 scored trial(s)" in few.skipped
    flat = param_importance(trial_records(6, flat=True))
    assert flat is not None and "every trial scored the same" in flat.skipped


def test_report_section(tmp_path: Path) -> None:
    text = write_report(tmp_path, trial_records(12)).read_text()
    section = text.split("## Which knobs mattered")[1].split("\n## ")[0]
    assert "over 12 scored trials of `search_spaces/reasoning.toml`" in section
    assert "seed 0" in section and "intersection search space" in section
    assert "| `blocks.answerer` |" in section
    first = [line for line in section.splitlines() if line.startswith("| `")][0]
    assert first.startswith("| `blocks.answerer` |")


def test_report_says_why_when_the_space_file_is_gone(tmp_path: Path) -> None:
    copy = tmp_path / "mine.toml"
    shutil.copy(load_space(SPACE).source, copy)
    records = trial_records(8, str(copy))
    copy.unlink()
    text = write_report(tmp_path / "camp", records).read_text()
    section = text.split("## Which knobs mattered")[1].split("\n## ")[0].strip()
    assert section.startswith("Parameter importances are not computed: the space file")
    assert "is gone" in section and len(section.splitlines()) == 1
