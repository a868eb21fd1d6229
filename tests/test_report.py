"""report.md and progress.png render from plain data."""

from __future__ import annotations

from pathlib import Path

from metasearch.reporting.report import PairedSummary, render_markdown, write_report
from metasearch.store.records import CandidateRecord, SplitScore


def records() -> list[CandidateRecord]:
    return [
        CandidateRecord(
            id="seed-cot",
            name="Chain-of-Thought",
            generation="initial",
            status="ok",
            val=SplitScore(0.4, 0.2, 0.6, 8),
            test=SplitScore(0.35, 0.25, 0.45, 60),
            calls=8,
        ),
        CandidateRecord(
            id="g001-00",
            name="Broken | pipes",
            generation=1,
            status="invalid",
            reason="no top-level forward\nline 3",
            calls=1,
        ),
        CandidateRecord(
            id="g001-01",
            name="Pruned",
            generation=1,
            status="pruned",
            val=SplitScore(0.1, 0.0, 0.3, 4),
            reason="upper CI below best",
            calls=4,
        ),
        CandidateRecord(
            id="g001-02",
            name="Vote",
            generation=1,
            status="ok",
            val=SplitScore(0.625, 0.375, 0.875, 8),
            test=SplitScore(0.5, 0.38, 0.62, 60),
            calls=40,
            cost_usd=0.02,
        ),
    ]


def test_report_and_plot_are_written(tmp_path: Path) -> None:
    path = write_report(
        tmp_path,
        records(),
        title="Quickstart",
        yield_counts={
            "proposed": 4,
            "parsed": 3,
            "normalised": 3,
            "valid": 2,
            "ran": 2,
            "scored>0": 1,
        },
        paired=PairedSummary(
            best_id="g001-02", baseline_id="seed-cot", mean=0.15, ci_low=0.02, ci_high=0.28, n=60
        ),
        notes=["quickstart sizes"],
    )
    assert path == tmp_path / "report.md"
    png = tmp_path / "progress.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    text = path.read_text()
    assert text.startswith("# Quickstart")
    assert "![best-so-far validation score](progress.png)" in text
    for rid in ("seed-cot", "g001-00", "g001-01", "g001-02"):
        assert f"`{rid}`" in text
    assert "Broken \\| pipes" in text  # table cells are escaped
    assert "no top-level forward line 3" in text
    assert "62.5 [37.5, 87.5] (n=8)" in text
    assert "50.0 [38.0, 62.0] (n=60)" in text
    assert "| scored>0 | 1 | 25% |" in text
    assert "+15.0 points" in text and "[+2.0, +28.0]" in text and "better than" in text
    assert "best on validation" in text
    assert "Best on validation: `g001-02`" in text
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_inconclusive_difference_is_said_plainly() -> None:
    text = render_markdown(
        records(),
        paired=PairedSummary(
            best_id="g001-02", baseline_id="seed-cot", mean=0.05, ci_low=-0.1, ci_high=0.2, n=60
        ),
    )
    assert "not distinguishable from" in text


def test_no_test_results_no_test_section() -> None:
    rs = [r for r in records() if r.test is None]
    text = render_markdown(rs)
    assert "Final test results" not in text and "yield" not in text


def test_empty_campaign(tmp_path: Path) -> None:
    path = write_report(tmp_path, [])
    assert "Candidates: 0" in path.read_text()
    assert not (tmp_path / "progress.png").exists()


def test_paired_summary_from_any_object() -> None:
    class Diff:
        mean, ci_low, ci_high, n = 0.1, -0.05, 0.25, 30

    s = PairedSummary.of(Diff(), best_id="a", baseline_id="b")
    assert (s.mean, s.n, s.best_id) == (0.1, 30, "a")


def test_paired_summary_from_stats() -> None:
    from metasearch.evaluation.stats import paired_bootstrap

    diff = paired_bootstrap([1.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0])
    s = PairedSummary.of(diff, best_id="g001-02", baseline_id="seed-cot")
    assert s.mean == 0.5 and s.n == 4 and s.p_value is not None
    assert "one-sided bootstrap p =" in render_markdown(records(), paired=s)


def test_a_campaign_where_nothing_worked_plots_without_a_warning(tmp_path: Path) -> None:
    """Only failed candidates: the plot is drawn, with no empty-legend warning on stderr."""
    import warnings

    failed = [r for r in records() if r.status == "invalid"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_report(tmp_path, failed)
    assert "Candidates: 1" in (tmp_path / "report.md").read_text()


def _scored(cid: str, val: float, test: list[int] | None) -> CandidateRecord:
    scores = {f"t{i}": float(x) for i, x in enumerate(test or [])}
    return CandidateRecord(
        id=cid, name=cid, generation="initial" if cid.startswith("seed-") else 1, status="ok",
        val=SplitScore(val, val, val, 10),
        test=SplitScore(sum(scores.values()) / len(scores), 0.0, 1.0, len(scores), scores)
        if test else None)


def test_the_pick_and_the_best_generated_are_paired_with_every_tested_seed() -> None:
    from metasearch.campaign.summary import pairs_on_test

    rs = [_scored("seed-pot", 0.9, [1, 1, 1, 1, 0, 1]),      # the pick: a seed
          _scored("seed-refine", 0.5, [0, 1, 0, 1, 0, 0]),
          _scored("seed-cot", 0.4, None),                     # not in the final test
          _scored("g001-00", 0.8, [1, 1, 0, 1, 1, 1]),        # best generated
          _scored("g001-01", 0.7, [1, 1, 1, 1, 1, 1])]        # tested, but neither: not paired
    pairs = pairs_on_test(rs)
    assert [(a, b) for a, b, _ in pairs] == [("seed-pot", "seed-refine"),
                                              ("g001-00", "seed-pot"), ("g001-00", "seed-refine")]
    assert [round(d.mean_diff * 6) for _, _, d in pairs] == [3, 0, 3]
    assert all(d.n == 6 for _, _, d in pairs)
    text = render_markdown(rs, pairs=[PairedSummary.of(d, best_id=a, baseline_id=b)
                                      for a, b, d in pairs])
    assert "## Paired differences on test" in text
    assert "| `g001-00` − `seed-pot` | 6 | +0.0 |" in text
    assert "| `seed-pot` − `seed-refine` | 6 | +50.0 |" in text
    assert "one may exclude 0 by chance" in text
    assert "## Paired differences on test" not in render_markdown(rs)


def test_a_pick_that_is_also_the_best_generated_is_paired_once() -> None:
    from metasearch.campaign.summary import pairs_on_test

    rs = [_scored("seed-cot", 0.4, [0, 1, 0]), _scored("g001-00", 0.8, [1, 1, 0])]
    assert [(a, b) for a, b, _ in pairs_on_test(rs)] == [("g001-00", "seed-cot")]
    assert pairs_on_test([_scored("seed-cot", 0.4, [0, 1, 0]), _scored("g001-00", 0.8, None)]) == []


def test_a_tie_on_validation_names_the_earlier_candidate_as_the_campaign_does() -> None:
    """The summary line and `export --best` must name the same agent (campaign.summary.best_of)."""
    tie = SplitScore(0.5, 0.3, 0.7, 8)
    rs = [CandidateRecord(id=i, name=i, generation=1, status="ok", val=tie) for i in ("g001-00", "g001-01")]
    assert "Best on validation: `g001-00`" in render_markdown(rs)
    assert "Best on validation: `g001-01`" in render_markdown(rs[::-1])
