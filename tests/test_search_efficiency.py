"""benchmarks/search_efficiency.py with the scripted models: it runs, and its figures agree.

One small run (adas and mcts, two search seeds, a 12-call budget, plus a name
that is not registered) is shared by the module; the checks recompute its
figures from the campaigns' own archives. The scripted numbers mean nothing
about the strategies; what is checked is that the benchmark counts right.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from metasearch.store.archive import Archive

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 12


def _load_benchmark():
    spec = importlib.util.spec_from_file_location(
        "search_efficiency", ROOT / "benchmarks" / "search_efficiency.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["search_efficiency"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


se = _load_benchmark()


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("search-efficiency") / "run"
    rc = se.main(["--model", "scripted", "--out", str(out), "--strategies",
                  "adas,mcts,no_such_strategy", "--seeds", "0,1", "--budget", str(BUDGET),
                  "--sandbox", "none"])
    data = json.loads((out / "search_efficiency.json").read_text())
    return rc, out, data


def test_it_runs_and_writes_its_figures(bench):
    rc, out, data = bench
    assert rc == 0
    assert data["smoke"] is True and data["model"] == "scripted" and data["budget"] == BUDGET
    assert data["strategies"] == ["adas", "mcts"]
    assert "no_such_strategy" in data["skipped"]
    assert (out / "search_efficiency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [(r["strategy"], r["seed"]) for r in data["runs"]] == [
        ("adas", 0), ("mcts", 0), ("adas", 1), ("mcts", 1)]
    assert all(not r["error"] for r in data["runs"])


def test_curves_are_monotone_and_budgets_respected(bench):
    _, _, data = bench
    for r in data["runs"]:
        xs, ys = zip(*r["curve"], strict=True)
        assert xs[0] == 0 and list(xs) == sorted(xs) and list(ys) == sorted(ys)
        assert xs[-1] == r["search_calls"] and len(xs) == r["candidates"] + 1
        # the budget stopped the search: no candidate started at or past it, and it was spent
        assert r["budget_ok"] is True and r["last_start"] < BUDGET <= r["search_calls"]
        assert r["seed_calls"] == 0  # the seeds replayed from the copied cache


def test_figures_match_the_archives(bench):
    _, out, data = bench
    seeds = []
    for r in data["runs"]:
        with Archive.open(r["directory"], readonly=True) as archive:
            records = archive.records()
        search = [x for x in records if not x.is_seed]
        seed_recs = [x for x in records if x.is_seed]
        seeds.append([(x.id, x.val.scores, x.test.scores if x.test else None) for x in seed_recs])
        assert len(search) == r["candidates"]
        assert r["search_calls"] == sum(x.calls - x.meta.get("cached_calls", 0) for x in search)
        assert r["curve"][0][1] == max(x.val.mean for x in seed_recs if x.status == "ok")
        ok = [x.val.mean for x in records if x.status == "ok" and x.val is not None]
        assert r["curve"][-1][1] == max(ok)
        # the area, recomputed on a fine grid of the step function
        grid = [BUDGET * (i + 0.5) / 1200 for i in range(1200)]
        assert r["auc"] == pytest.approx(sum(se.value_at(r["curve"], x) for x in grid) / 1200,
                                         abs=1e-3)
        pick = max((x for x in records if x.status == "ok"), key=lambda x: x.val.mean)
        assert r["pick"]["val"]["mean"] == pick.val.mean and r["pick"]["test"]["n"] == 4
        p = r["paired"]
        assert p["n"] == 4 and p["ci_low"] <= p["mean_diff"] <= p["ci_high"]
    assert all(s == seeds[0] for s in seeds)  # every run saw the same seed evaluations
    names = {r["seed"]: set() for r in data["runs"]}
    for r in data["runs"]:
        if r["strategy"] == "mcts":
            with Archive.open(r["directory"], readonly=True) as archive:
                names[r["seed"]] = {x.name for x in archive.records() if not x.is_seed}
    assert names[0] != names[1]  # the search seed reached the strategy (and the scripted meta)


def test_summary_against_adas(bench):
    _, _, data = bench
    summary = data["summary"]
    adas = summary["strategies"]["adas"]
    assert adas["auc_ratio_to_adas"] == pytest.approx(1.0)
    finals = [r["curve"][-1][1] for r in data["runs"] if r["strategy"] == "adas"]
    assert summary["target_adas_final_best"] == pytest.approx(sum(finals) / len(finals))
    assert any(c is not None for c in adas["calls_to_adas_final_best"])  # the best adas seed does
    for name, s in summary["strategies"].items():
        runs = [r for r in data["runs"] if r["strategy"] == name]
        assert s["runs"] == 2 and s["failed"] == 0
        assert s["auc_min"] <= s["auc_mean"] <= s["auc_max"] <= 1.0
        assert s["calls_to_adas_final_best"] == [r["calls_to_target"] for r in runs]
        assert s["pooled_test_vs_best_seed"]["seeds"] == 2
        assert s["best_at"][str(BUDGET)] == pytest.approx(s["final_best_mean"])
    assert list(summary["leaders_at"]) == [str(b) for b in se.checkpoints(BUDGET)] == ["3", "6", "12"]
    for b, leaders in summary["leaders_at"].items():
        top = max(s["best_at"][b] for s in summary["strategies"].values())
        assert leaders and all(summary["strategies"][n]["best_at"][b] == top for n in leaders)


def test_scripted_output_is_not_resumed(bench, capsys):
    _, out, _ = bench
    assert se.main(["--model", "scripted", "--out", str(out), "--strategies", "adas"]) == 2
    assert "cannot be resumed" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--strategies", "mcts,evolve"], "must include 'adas'"),
    (["--seeds", "0,x"], "comma-separated integers"),
    (["--seeds", "1,1"], "distinct integers"),
    (["--set", "search.generations"], "is not of the form section.field=value"),
    (["--budget", "0"], "integer >= 1"),
])
def test_bad_arguments_are_one_clear_error(tmp_path, capsys, args, message):
    assert se.main(["--model", "scripted", "--out", str(tmp_path / "x"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing started


def test_area_and_calls_to_target_on_a_hand_made_curve():
    curve = [(0, 0.5), (4, 0.5), (6, 0.75), (14, 1.0)]  # the last point is past the budget
    assert se.area(curve, 10) == pytest.approx((6 * 0.5 + 4 * 0.75) / 10)
    assert se.value_at(curve, 5.9) == 0.5 and se.value_at(curve, 6) == 0.75
    assert se.calls_to(curve, 0.75, 10) == 6
    assert se.calls_to(curve, 1.0, 10) is None  # reached only after the budget
    assert se.calls_to(curve, 0.5, 10) == 0
    assert se._median_reach([4, None, None]) is None and se._median_reach([4, 8, None]) == 8
