"""Campaign comparison from the tracking store: summaries, the paired statistic, the plot."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_export_helpers import COT, DEFAULT_PARAMS, fresh_db, make_campaign, score, shared_store
from typer.testing import CliRunner

from metasearch.errors import DataError
from metasearch.evaluation.stats import paired_bootstrap
from metasearch.reporting.compare import (
    compare_campaigns,
    load_campaigns,
    paired_difference,
    plot_comparison,
    summarize,
)
from metasearch.store.records import CandidateRecord, candidate_id, seed_id

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

VAL = [f"v{i}" for i in range(6)]


def rec(cid: str, val: float | None, *, status: str = "ok", cost: float = 0.01) -> CandidateRecord:
    return CandidateRecord(
        id=cid,
        name=f"agent {cid}",
        generation="initial" if cid.startswith("seed") else 1,
        status=status,  # type: ignore[arg-type]
        val=score({t: float(i < round(val * 6)) for i, t in enumerate(VAL)})
        if val is not None
        else None,
        calls=10,
        tokens=1000,
        cost_usd=cost,
        wall_s=30.0,
    )


def task_scores(prefix: str, ids: range, pattern: str) -> dict[str, float]:
    """Per-task test scores: ``pattern`` repeated, '1' = solved."""
    return {f"{prefix}{i}": float(pattern[i % len(pattern)] == "1") for i in ids}


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Path]]:
    uri, root = shared_store(tmp_path_factory)
    base = tmp_path_factory.mktemp("compare")
    a_test = task_scores("x", range(20), "1101")  # 75%
    b_test = task_scores("x", range(5, 25), "1000")  # 25%, overlaps a on x5..x19
    a = make_campaign(
        base / "camp-a",
        [
            (rec(seed_id("cot"), 0.5), COT),
            (rec(candidate_id(1, 0), 0.83), COT),
            (rec(candidate_id(1, 1), None, status="invalid"), None),
            (rec(candidate_id(1, 2), 0.17, status="pruned"), COT),
        ],
        uri=uri,
        artifacts=root / "art-a",
        params=DEFAULT_PARAMS,
        tests={
            candidate_id(1, 0): score(a_test),
            seed_id("cot"): score(dict.fromkeys(a_test, 1.0)),
        },
    )
    b = make_campaign(
        base / "camp-b",
        [
            (rec(seed_id("cot"), 0.33, cost=0.5), COT),
            (rec(candidate_id(1, 0), 0.67, cost=0.5), COT),
        ],
        uri=uri,
        artifacts=root / "art-b",
        params=DEFAULT_PARAMS,
        tests={candidate_id(1, 0): score(b_test)},
    )
    c = make_campaign(
        base / "camp-c",
        [(rec(seed_id("cot"), 0.5), COT)],
        uri=uri,
        artifacts=root / "art-c",
        params={**DEFAULT_PARAMS, "suite.name": "gsm8k"},
    )
    return uri, [a.root, b.root, c.root]


def test_paired_difference_statistic() -> None:
    a = {"t1": 1.0, "t2": 1.0, "t3": 0.0, "t4": 1.0, "only-a": 1.0}
    b = {"t4": 0.0, "t3": 0.0, "t2": 1.0, "t1": 0.0, "only-b": 0.0}
    n, diff = paired_difference(a, b, n_resamples=5000)
    assert n == 4
    assert diff.mean_diff == pytest.approx(0.5)
    ref = paired_bootstrap([1, 1, 0, 1], [0, 1, 0, 0], n_resamples=5000)  # aligned by task id
    assert (diff.ci_low, diff.ci_high, diff.p_value) == (ref.ci_low, ref.ci_high, ref.p_value)
    assert 0.0 <= diff.ci_low <= 0.5 <= diff.ci_high <= 1.0
    assert paired_difference({"a": 1.0}, {"b": 1.0}) == (0, None)


def test_summary_comes_from_the_tracking_store(campaigns: tuple[str, list[Path]]) -> None:
    uri, dirs = campaigns
    a, b, c = (summarize(d) for d in load_campaigns(dirs, tracking_uri=uri))
    assert a.name == "camp-a" and a.suite == "arith"
    assert a.best_id == candidate_id(1, 0)  # best on validation, although the seed wins on test
    assert a.val is not None and a.val.mean == pytest.approx(5 / 6) and a.val.n == 6
    assert a.val.ci_low <= a.val.mean <= a.val.ci_high
    assert a.test is not None and a.test.mean == pytest.approx(0.75) and a.test.n == 20
    assert a.by_status == {"invalid": 1, "ok": 2, "pruned": 1}
    assert (a.calls, a.tokens, a.wall_s) == (40, 4000, 120.0)
    assert a.cost_usd == pytest.approx(0.04)
    assert [round(p[2], 3) for p in a.curve] == [0.5, 0.833, 0.833, 0.833]
    assert b.curve[-1][0] == pytest.approx(1.0)
    assert c.test is None and c.suite == "gsm8k"


def test_paired_comparison_between_campaigns(campaigns: tuple[str, list[Path]]) -> None:
    uri, dirs = campaigns
    result = compare_campaigns(
        load_campaigns(dirs, tracking_uri=uri), split="test", n_resamples=4000
    )
    ab, ac, bc = result.pairs
    assert (ab.a, ab.b, ab.a_id, ab.b_id) == (
        "camp-a",
        "camp-b",
        candidate_id(1, 0),
        candidate_id(1, 0),
    )
    assert ab.n == 15  # the shared test tasks x5..x19
    shared = [f"x{i}" for i in range(5, 20)]
    a_s = task_scores("x", range(20), "1101")
    b_s = task_scores("x", range(5, 25), "1000")
    ref = paired_bootstrap(
        [a_s[t] for t in sorted(shared)], [b_s[t] for t in sorted(shared)], n_resamples=4000
    )
    assert ab.mean_diff == pytest.approx(ref.mean_diff) and ab.ci_low == ref.ci_low
    assert ab.ci_low > 0  # a's best is clearly better on the shared tasks
    assert ac.mean_diff is None and "different suites" in ac.note
    assert bc.mean_diff is None and "different suites" in bc.note
    val = compare_campaigns(load_campaigns(dirs[:2], tracking_uri=uri), split="validation")
    assert val.pairs[0].n == 6 and "biased" in val.notes[0]


def test_missing_test_scores_are_explained(
    campaigns: tuple[str, list[Path]], tmp_path_factory
) -> None:
    uri, dirs = campaigns
    d = tmp_path_factory.mktemp("compare") / "camp-d"
    make_campaign(d, [(rec(seed_id("cot"), 0.5), COT)], uri=uri, params=DEFAULT_PARAMS)
    result = compare_campaigns(load_campaigns([dirs[0], d], tracking_uri=uri))
    assert "no per-task test scores" in result.pairs[0].note


def test_plot_and_cli(campaigns: tuple[str, list[Path]], tmp_path: Path) -> None:
    from metasearch.cli.app import app

    uri, dirs = campaigns
    png = tmp_path / "plots" / "compare.png"
    res = CliRunner().invoke(
        app, ["compare", *map(str, dirs), "--tracking-uri", uri, "--plot", str(png), "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [c["name"] for c in doc["campaigns"]] == ["camp-a", "camp-b", "camp-c"]
    assert doc["campaigns"][0]["best"]["test"]["n"] == 20
    assert doc["pairs"][0]["n"] == 15 and doc["plot"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = CliRunner().invoke(app, ["compare", *map(str, dirs[:2]), "--tracking-uri", uri])
    assert res.exit_code == 0 and "camp-a" in res.output and "A better" in res.output


def test_each_campaign_dir_has_its_own_store_by_default(tmp_path_factory, tmp_path: Path) -> None:
    d = tmp_path / "own-store"
    uri = fresh_db(tmp_path_factory, d)
    make_campaign(d, [(rec(seed_id("cot"), 0.5, cost=0.0), COT)], uri=uri, params=DEFAULT_PARAMS)
    (summary,) = compare_campaigns(load_campaigns([d])).campaigns
    assert summary.best_id == seed_id("cot") and summary.cost_usd == 0
    plot_comparison([summary], tmp_path / "zero.png")  # all $0: plotted against calls
    with pytest.raises(DataError, match="no tracking store"):
        load_campaigns([tmp_path / "nowhere"])
