"""`metasearch archive diff` (the paired difference of any two agents of one campaign) and
`archive show --best`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from metasearch.cli.app import app
from metasearch.evaluation.stats import paired_bootstrap
from metasearch.store.archive import Archive
from metasearch.store.records import CandidateRecord, SplitScore

# A wins t1-t6 that B loses, B wins t7, both solve t8 and fail t9-t10: A − B = +50 points.
A_TEST = dict(zip([f"t{i}" for i in range(1, 11)], [1, 1, 1, 1, 1, 1, 0, 1, 0, 0], strict=True))
B_TEST = dict(zip([f"t{i}" for i in range(1, 11)], [0, 0, 0, 0, 0, 0, 1, 1, 0, 0], strict=True))


def split(scores: dict[str, float]) -> SplitScore:
    mean = sum(scores.values()) / len(scores)
    return SplitScore(mean=mean, ci_low=mean, ci_high=mean, n=len(scores), scores=scores)


@pytest.fixture
def campaign(tmp_path):
    d = tmp_path / "camp"
    with Archive.open(d) as arc:
        arc.add(CandidateRecord(id="g001-00", name="Picked", generation=1, status="ok",
                                val=split({"v1": 1, "v2": 1})))
        arc.add(CandidateRecord(id="seed-b", name="Seed B", generation="initial", status="ok",
                                val=split({"v1": 1, "v2": 0})))
        arc.add(CandidateRecord(id="g001-01", name="Untested", generation=1, status="ok",
                                val=split({"v3": 1})))
        arc.add_test_result("g001-00", split(A_TEST))
        arc.add_test_result("seed-b", split(B_TEST))
    return d


def invoke(*args: str):
    return CliRunner().invoke(app, ["archive", "diff", *args])


def test_the_paired_difference_on_test(campaign):
    out = invoke(str(campaign), "g001-00", "seed-b", "--json")
    assert out.exit_code == 0, out.output
    got = json.loads(out.output)
    want = paired_bootstrap(list(A_TEST.values()), list(B_TEST.values()))
    assert got["n"] == 10 and got["mean_diff"] == pytest.approx(0.5)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((want.ci_low, want.ci_high))
    assert got["ci_low"] > 0 and got["verdict"] == "A better" and got["note"] == ""
    text = invoke(str(campaign), "g001-00", "seed-b")
    assert text.exit_code == 0 and "A − B on 10 shared test tasks: +50.0 points" in text.output
    swapped = json.loads(invoke(str(campaign), "seed-b", "g001-00", "--json").output)
    assert swapped["mean_diff"] == pytest.approx(-0.5) and swapped["verdict"] == "B better"


def test_validation_carries_the_selection_note(campaign):
    got = json.loads(invoke(str(campaign), "g001-00", "seed-b", "--split", "validation",
                            "--json").output)
    assert got["n"] == 2 and got["mean_diff"] == pytest.approx(0.5) and "biased" in got["note"]


@pytest.mark.parametrize(("args", "needles"), [
    (("g001-00", "g001-01"), ("g001-01", "no per-task test scores", "search.test_seeds")),
    (("g001-00", "nope"), ("nope", "archive list")),
    (("g001-00", "g001-01", "--split", "validation"), ("share no validation task",)),
    (("g001-00", "seed-b", "--split", "train"), ("--split", "train")),
])
def test_bad_input_is_one_clear_paragraph(campaign, args, needles):
    out = invoke(str(campaign), *args)
    assert out.exit_code != 0 and "Traceback" not in out.output
    for needle in needles:
        assert needle in out.output, out.output


def test_show_best_is_the_validation_best(campaign, tmp_path):
    """`archive show --best` names the agent `export --best` takes: the best on validation."""
    out = CliRunner().invoke(app, ["archive", "show", str(campaign), "--best", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["id"] == "g001-00"
    for args in ((), ("g001-00", "--best")):
        bad = CliRunner().invoke(app, ["archive", "show", str(campaign), *args])
        assert bad.exit_code != 0 and "either a candidate id or --best" in bad.output
    empty = tmp_path / "empty"
    with Archive.open(empty) as arc:
        arc.add(CandidateRecord(id="g001-00", name="Broken", generation=1, status="invalid"))
    none = CliRunner().invoke(app, ["archive", "show", str(empty), "--best"])
    assert none.exit_code != 0 and "no best agent" in none.output
