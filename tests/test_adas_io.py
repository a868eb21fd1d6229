"""ADAS archive JSON: fitness strings, export → import round-trip, mixed-validity imports."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_export_helpers import COT, VOTE, score
from test_runtime_fakes import FakeTransport, always
from test_runtime_fakes import settings as runtime_settings
from typer.testing import CliRunner

from metasearch.candidate.validate import fingerprint
from metasearch.errors import DataError
from metasearch.evaluation.stats import bootstrap_ci, parse_adas_fitness
from metasearch.interop.adas_json import (
    export_adas,
    fitness_of,
    import_adas,
    read_adas,
    to_adas_entry,
    write_adas,
)
from metasearch.store.archive import Archive
from metasearch.store.records import CandidateRecord, SplitScore, candidate_id, seed_id

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

FITNESS = "95% Bootstrap Confidence Interval: (40.6%, 75.0%), Median: 57.8%"

# Written the way ADAS's archives are: Info/LLMAgentBase unimported, iteration_idx, roles.
REFLEXION = """def forward(self, taskInfo):
    cot_initial_instruction = "Please think step by step and then solve the task."
    cot_reflect_instruction = "Given previous attempts and feedback, carefully consider where you could go wrong in your latest attempt. Using insights from previous attempts, try to solve the task better."
    cot_agent = LLMAgentBase(['thinking', 'answer'], 'Chain-of-Thought Agent')
    critic_agent = LLMAgentBase(['feedback', 'correct'], 'Critic Agent')
    N_max = 3
    cot_inputs = [taskInfo]
    thinking, answer = cot_agent(cot_inputs, cot_initial_instruction, 0)
    for i in range(N_max):
        feedback, correct = critic_agent([taskInfo, thinking, answer], "Please review the answer above and criticize on where might be wrong. If you are absolutely sure it is correct, output 'True' in 'correct'.", i)
        if correct.content == 'True':
            break
        cot_inputs.extend([thinking, answer, feedback])
        thinking, answer = cot_agent(cot_inputs, cot_reflect_instruction, i + 1)
    return answer
"""
ROUTER = """def forward(self, taskInfo):
    from collections import Counter
    routing_agent = LLMAgentBase(['choice'], 'Routing agent')
    choice = routing_agent([taskInfo], "Choose an expert: Math Professor or Helpful Assistant.")[0]
    role = 'Math Professor' if 'professor' in choice.content.lower() else 'Helpful Assistant'
    expert = LLMAgentBase(['thinking', 'answer'], 'Expert Agent', role=role, temperature=0.7)
    answers = [expert([taskInfo], 'Solve it.')[1] for _ in range(2)]
    best = Counter(a.content for a in answers).most_common(1)[0][0]
    return Info('answer', 'Final', best, -1)
"""


def rec(cid: str, name: str, gen: object, val: dict[str, float] | None, **kw) -> CandidateRecord:
    return CandidateRecord(
        id=cid,
        name=name,
        generation=gen,  # type: ignore[arg-type]
        status=kw.pop("status", "ok"),
        thought=f"**Insights:** {name}\n\n**Overall Idea:** x\n\n**Implementation:** y",
        val=score(val) if val is not None else None,
        fingerprint=kw.pop("fp", ""),
        **kw,
    )


@pytest.fixture
def source(tmp_path: Path) -> Archive:
    ids = [f"t{i}" for i in range(10)]
    with Archive.open(tmp_path / "source") as arc:
        arc.add(
            rec(seed_id("cot"), "Chain-of-Thought", "initial", dict.fromkeys(ids, 0.5)), code=COT
        )
        arc.add(
            rec(candidate_id(1, 0), "Vote", 1, {t: float(i % 3 != 0) for i, t in enumerate(ids)}),
            code=VOTE,
        )
        arc.add(rec(candidate_id(1, 1), "Broken", 1, None, status="invalid", reason="no forward"))
        arc.add(rec(candidate_id(2, 0), "Reflexion", 2, dict.fromkeys(ids, 0.7)), code=REFLEXION)
        arc.add_test_result(
            candidate_id(2, 0), score(dict.fromkeys([f"x{i}" for i in range(5)], 0.4))
        )
    return Archive.open(tmp_path / "source", readonly=True)


# --------------------------------------------------------------------------- fitness


def test_fitness_is_adas_bootstrap_of_the_per_task_scores() -> None:
    scores = {f"t{i}": float(i % 4 != 0) for i in range(32)}
    split = SplitScore(0.75, 0.0, 1.0, 32, scores)  # the stored CI is ignored: scores win
    f = fitness_of(split)
    ref = bootstrap_ci([scores[k] for k in sorted(scores)], n_resamples=100_000)
    assert (f.ci_low, f.ci_high, f.median, f.n_resamples) == (
        ref.ci_low,
        ref.ci_high,
        ref.median,
        100_000,
    )
    assert ref.ci_low < 0.75 < ref.ci_high


def test_fitness_without_per_task_scores_uses_the_stored_interval() -> None:
    f = fitness_of(SplitScore(0.5, 0.3, 0.7, 20, {}, median=0.52))
    assert (f.mean, f.ci_low, f.ci_high, f.median) == (0.5, 0.3, 0.7, 0.52)


def test_entry_format(source: Archive) -> None:
    entries = export_adas(source)
    assert [e["name"] for e in entries] == ["Chain-of-Thought", "Vote", "Reflexion"]  # ok only
    assert [e["generation"] for e in entries] == ["initial", 1, 2]
    assert set(entries[0]) == {"thought", "name", "code", "generation", "fitness"}
    assert (
        entries[0]["fitness"] == "95% Bootstrap Confidence Interval: (50.0%, 50.0%), Median: 50.0%"
    )
    vote = parse_adas_fitness(entries[1]["fitness"])
    assert vote.ci_low < 0.6 < vote.ci_high and abs(vote.median - 0.6) <= 0.051
    assert entries[2]["test_fitness"].endswith("Median: 40.0%")
    assert entries[1]["code"] == VOTE
    json.dumps(entries)  # plain JSON


# --------------------------------------------------------------------------- round trip


def test_export_then_import_gives_the_same_agents(source: Archive, tmp_path: Path) -> None:
    path = write_adas(tmp_path / "archive.json", export_adas(source))
    with Archive.open(tmp_path / "dest") as dest:
        report = import_adas(read_adas(path), dest, source=str(path), suite="arith")
    assert [e.outcome for e in report.entries] == ["added"] * 3
    imported = Archive.open(tmp_path / "dest", readonly=True)
    originals = [r for r in source.records() if r.status == "ok"]
    copies = imported.records()
    assert [r.name for r in copies] == [r.name for r in originals]
    assert [imported.read_agent(r.id) for r in copies] == [
        source.read_agent(r.id) for r in originals
    ]
    assert [r.fingerprint for r in copies] == [
        fingerprint(source.read_agent(r.id)) for r in originals
    ]
    assert [r.id for r in copies] == [
        "imp-000-Chain-of-Thought",
        "imp-001-Vote",
        "imp-002-Reflexion",
    ]
    assert all(r.generation == "imported" and r.val is None for r in copies)
    assert copies[2].meta["adas"]["test_fitness"].endswith("Median: 40.0%")
    assert copies[1].meta["adas"]["suite"] == "arith"
    # ... and exporting the copies gives back the very same ADAS entries
    assert export_adas(imported) == export_adas(source)


def test_cli_round_trip(source: Archive, tmp_path: Path) -> None:
    from metasearch.cli.app import app

    runner = CliRunner()
    out = tmp_path / "a.json"
    res = runner.invoke(app, ["export", str(source.root), "--format", "adas", "--out", str(out)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "export",
            str(source.root),
            "--format",
            "adas",
            "--best",
            "--out",
            str(tmp_path / "best.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert [e["name"] for e in json.loads((tmp_path / "best.json").read_text())] == ["Reflexion"]
    res = runner.invoke(
        app, ["archive", "import", str(out), "--into", str(tmp_path / "d"), "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["added"] == 3 and doc["rejected"] == 0
    # importing the same file again: every entry is a duplicate, nothing added, exit 1
    res = runner.invoke(app, ["archive", "import", str(out), "--into", str(tmp_path / "d")])
    assert res.exit_code == 1 and "0 added, 3 not added" in res.output
    res = runner.invoke(
        app, ["archive", "import", str(out), "--into", str(tmp_path / "d"), "--json"]
    )
    doc = json.loads(res.stdout)
    assert doc["entries"][0]["problems"] == ["is the same agent as imp-000-Chain-of-Thought"]


# --------------------------------------------------------------------------- hand-written archive


def hand_written() -> list[object]:
    good = {
        "thought": "Reflect and retry.",
        "name": "Reflexion",
        "code": REFLEXION,
        "generation": "initial",
        "fitness": FITNESS,
    }
    return [
        good,
        {
            "thought": "Route to an expert.",
            "name": "Dynamic Roles",
            "code": ROUTER,
            "generation": 3,
            "fitness": FITNESS,
            "test_fitness": FITNESS,
        },
        {
            "thought": "t",
            "name": "Syntax",
            "code": "def forward(self, taskInfo)\n    return 1\n",
            "generation": 1,
            "fitness": FITNESS,
        },
        {
            "thought": "t",
            "name": "Escape",
            "generation": 1,
            "fitness": FITNESS,
            "code": "import os\n\ndef forward(self, taskInfo):\n    return os.getcwd()\n",
        },
        {"thought": "t", "name": "No code", "generation": 1, "fitness": FITNESS},
        {
            "thought": "t",
            "name": "In a class",
            "generation": 2,
            "fitness": FITNESS,
            "code": "class A:\n    def forward(self, taskInfo):\n        return 'x'\n",
        },
        "not an entry",
        {"thought": "t", "code": COT, "generation": 1},  # no name
        dict(
            good,
            name="Reflexion again",
            thought="same code, new comment",
            code="# a comment\n" + REFLEXION,
        ),
        {"thought": "t", "name": "Odd fitness", "code": COT, "generation": 4, "fitness": "great"},
    ]


def test_import_of_a_mixed_archive_reports_each_failure(tmp_path: Path) -> None:
    with Archive.open(tmp_path / "camp") as arc:
        report = import_adas(hand_written(), arc, source="mixed.json")
    outcomes = {e.name: (e.outcome, " ".join(e.problems)) for e in report.entries}
    assert outcomes["Reflexion"][0] == outcomes["Dynamic Roles"][0] == "added"
    assert outcomes["Odd fitness"][0] == "added"
    assert outcomes["Syntax"][0] == "invalid" and "line 1" in outcomes["Syntax"][1]
    assert outcomes["Escape"][0] == "invalid" and "os" in outcomes["Escape"][1]
    assert outcomes["No code"] == (
        "invalid",
        "has no `code` (the source of `def forward(self, taskInfo):`)",
    )
    assert outcomes["In a class"][0] == "invalid" and "class" in outcomes["In a class"][1]
    assert outcomes["entry 6"] == ("invalid", "is a JSON str, not an object")
    assert outcomes["entry 7"] == ("invalid", "has no `name` (a non-empty string)")
    assert outcomes["Reflexion again"] == ("duplicate", "is the same agent as imp-000-Reflexion")
    odd = next(e for e in report.entries if e.name == "Odd fitness")
    assert "not in ADAS's format" in odd.warnings[0]
    assert [e.index for e in report.added] == [0, 1, 9]

    arc = Archive.open(tmp_path / "camp", readonly=True)
    assert [r.name for r in arc.records()] == ["Reflexion", "Dynamic Roles", "Odd fitness"]
    routed = arc.get("imp-001-Dynamic_Roles")
    assert routed.meta["adas"] == {
        "source": "mixed.json",
        "index": 1,
        "generation": 3,
        "fitness": FITNESS,
        "test_fitness": FITNESS,
    }
    assert routed.status == "ok" and routed.val is None and routed.strategy == "import"
    assert export_adas(arc)[1]["generation"] == 3  # the original generation goes back out


def test_imported_adas_agents_run_unchanged_and_get_rescored(tmp_path: Path) -> None:
    """--evaluate: an injected evaluator; here it runs the code with metasearch's runtime."""
    from metasearch.runtime import load_agent

    tasks = {"q1": "4", "q2": "4", "q3": "5"}
    seen: list[str] = []

    def evaluate_code(code: str) -> tuple[SplitScore, int, int, float, int]:
        seen.append(code)
        transport = FakeTransport(always("4"))
        agent = load_agent(code, runtime_settings("json"), transport)
        scores = {t: float(agent(f"question {t}").strip() == gold) for t, gold in tasks.items()}
        f = bootstrap_ci(list(scores.values()), n_resamples=1000)
        return SplitScore.of(f, scores), len(transport.requests), 100, 0.0, 0

    def broken(code: str) -> tuple[SplitScore, int, int, float, int]:
        raise RuntimeError("sandbox exploded")

    entries = hand_written()
    with Archive.open(tmp_path / "camp") as arc:
        report = import_adas(entries[:2], arc, evaluate=evaluate_code)
        again = import_adas([entries[9]], arc, evaluate=broken)
    assert seen == [REFLEXION, ROUTER]  # exactly the ADAS code, unchanged
    assert [e.status for e in report.added] == ["ok", "ok"]
    arc = Archive.open(tmp_path / "camp", readonly=True)
    reflexion = arc.get(report.added[0].id)
    assert reflexion.val is not None and reflexion.val.mean == pytest.approx(2 / 3)
    assert reflexion.val.scores == {"q1": 1.0, "q2": 1.0, "q3": 0.0}
    assert reflexion.calls > 3  # the critic loop ran (the critic never says 'True')
    assert again.added[0].id == "imp-002-Odd_fitness"  # numbering continues
    failed = arc.get("imp-002-Odd_fitness")
    assert failed.status == "failed" and "sandbox exploded" in failed.reason
    assert arc.best().id == reflexion.id  # re-scored imports compete on validation


def test_read_adas_rejects_files_that_are_not_archives(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_adas(bad)
    bad.write_text('{"a": 1}')
    with pytest.raises(DataError, match="expected a JSON list"):
        read_adas(bad)
    with pytest.raises(DataError, match="does not exist"):
        read_adas(tmp_path / "missing.json")
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"name": "x", "code": COT}))
    assert read_adas(one) == [{"name": "x", "code": COT}]


def test_to_adas_entry_of_an_imported_record_keeps_its_strings() -> None:
    r = CandidateRecord(
        id="imp-000-x",
        name="x",
        generation="imported",
        status="ok",
        meta={"adas": {"fitness": FITNESS, "generation": "initial"}},
    )
    assert to_adas_entry(r, COT) == {
        "thought": "",
        "name": "x",
        "code": COT,
        "generation": "initial",
        "fitness": FITNESS,
    }
