"""The campaign runner with a scripted model: feedback loops, pruning, budget, selection, yield.

The scripted model (see ``test_campaign_kit``) plays the meta agent from a
table keyed by candidate id and stage, and the task model by looking up the
gold answer of the question in the prompt.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_campaign_kit import (
    META_MODEL,
    RAISES,
    SEEDS,
    TEST,
    VAL,
    Script,
    agent,
    archive_lines,
    as_json,
    candidate_runs,
    close,
    debug_reply,
    make_campaign,
    mlflow_store,
    sections,
)

from metasearch.campaign.loop import CampaignResult
from metasearch.runtime.seeds import load_seed
from metasearch.search.adas.context import archive_entries, idea_for
from metasearch.store.archive import Archive
from metasearch.store.records import CandidateRecord, SplitScore, progress_curve

PLACEHOLDER = (
    "def check(answer):\n    pass\n\n"
    "def forward(self, taskInfo):\n"
    "    a = LLMAgentBase(['thinking', 'answer'], 'Checker')\n"
    "    thinking, answer = a([taskInfo], 'Solve it. MODE-GOOD')\n"
    "    check(answer)\n"
    "    return answer\n"
)


def run(tmp_path: Path, script: Script, **kw) -> tuple[CampaignResult, Path]:
    d = tmp_path / "campaign"
    campaign = make_campaign(d, script, **kw)
    try:
        return campaign.run(), d
    finally:
        close(campaign)


def by_id(result: CampaignResult) -> dict:
    return {r.id: r for r in result.records}


def meta_calls(script: Script, cid: str) -> list:
    return [r for r in script.requests if r.role == "meta" and r.candidate == cid]


def task_calls(script: Script, cid: str) -> list:
    return [r for r in script.requests if r.role == "task" and r.candidate == cid]


# ---------------------------------------------------------------- feedback loops


def test_repair_loop_turns_invalid_code_into_a_valid_evaluated_candidate(tmp_path):
    script = Script({"g001-00": {"propose": sections(PLACEHOLDER, "Checker"),
                                 "repair": sections(agent("GOOD", calls=2), "Checker")}})
    result, d = run(tmp_path, script)
    rec = by_id(result)["g001-00"]
    assert rec.status == "ok" and rec.val.mean == 1.0 and rec.name == "Checker"
    assert rec.meta["stages"] == ["parsed", "normalised", "valid", "ran", "scored"]
    repair = meta_calls(script, "g001-00")[1].messages[-1]["content"]
    assert "cannot be run yet" in repair and "`def check(answer):`" in repair
    assert (d / rec.code_path).read_text() == agent("GOOD", calls=2)
    transcript = (d / "transcripts" / "g001-00.md").read_text()
    assert "repair-1" in transcript
    # the meta agent's calls are charged to the candidate along with its task calls
    assert rec.calls == 2 + 2 * len(VAL)


def test_debug_round_fixes_a_candidate_that_raises_at_runtime(tmp_path):
    fixed = agent("GOOD", calls=2)
    script = Script({"g001-00": {"propose": sections(RAISES, "Broken"),
                                 "debug": debug_reply(fixed)}})
    # pruning on, with a perfect incumbent: the crashing minibatch must still get a debug round
    result, d = run(tmp_path, script, pruning=True, minibatch=4)
    rec = by_id(result)["g001-00"]
    assert rec.status == "ok" and rec.val.mean == 1.0 and rec.val.n == len(VAL)
    assert rec.name == "Broken"  # a debug reply keeps the name
    debug = meta_calls(script, "g001-00")[1].messages[-1]["content"]
    assert "failed with an error" in debug and "TypeError" in debug
    assert (d / rec.code_path).read_text() == fixed
    assert "debug-1:parsed,normalised,valid" in rec.meta["stages"]
    assert "debug-1" in (d / "transcripts" / "g001-00.md").read_text()


def test_a_candidate_still_broken_after_the_debug_rounds_is_failed_with_its_error(tmp_path):
    still = RAISES.replace("Broken Agent", "Still Broken")
    script = Script({"g001-00": {"propose": sections(RAISES, "Broken"),
                                 "debug": [debug_reply(still), debug_reply(RAISES + "\n")]}})
    result, _ = run(tmp_path, script, debug_rounds=2)
    rec = by_id(result)["g001-00"]
    assert rec.status == "failed" and rec.errors == len(VAL)
    assert rec.reason.startswith("every task failed; first error: TypeError")
    assert len(meta_calls(script, "g001-00")) == 3  # propose + 2 debug rounds
    assert "ran" not in rec.meta["stages"]
    assert result.yield_counts["ran"] == 0


def test_all_zero_score_gets_debug_feedback_with_gold_answers(tmp_path):
    script = Script({"g001-00": {"propose": sections(agent("WRONG")),
                                 "debug": debug_reply(agent("HALF"))}})
    result, _ = run(tmp_path, script)
    debug = meta_calls(script, "g001-00")[1].messages[-1]["content"]
    assert "every answer was wrong" in debug and f"Correct answer: {VAL[0].answer}" in debug
    assert by_id(result)["g001-00"].val.mean == 0.5


# ---------------------------------------------------------------- duplicates


def test_reproposing_a_seed_is_rejected_as_a_duplicate(tmp_path):
    seed_code = load_seed(SEEDS / "chain_of_thought.py").code
    script = Script({"g001-00": {"propose": sections(seed_code, "My CoT"),
                                 "repair": sections("# the same again\n" + seed_code, "CoT 2")}})
    result, _ = run(tmp_path, script)
    rec = by_id(result)["g001-00"]
    assert rec.status == "invalid" and rec.reason.startswith("duplicate:")
    assert "identical to an agent already in the archive" in rec.reason
    repair = meta_calls(script, "g001-00")[1].messages[-1]["content"]
    assert "same as one already in the archive" in repair
    assert rec.meta["failure"] == "duplicate" and rec.val is None
    assert not task_calls(script, "g001-00")  # nothing was run


def test_a_seed_with_new_prompts_is_a_near_duplicate_and_an_idea_is_suggested(tmp_path):
    seed_code = load_seed(SEEDS / "chain_of_thought.py").code
    renamed = seed_code.replace("Chain-of-Thought Agent", "Careful Agent").replace(
        "step by step", "very carefully")
    assert renamed != seed_code
    script = Script({"g001-00": {"propose": sections(renamed, "Careful"),
                                 "repair": sections(agent("HALF", calls=2), "Twice")}})
    result, _ = run(tmp_path, script, near_duplicates=True, idea_hints=True)
    rec = by_id(result)["g001-00"]
    assert rec.status == "ok" and rec.name == "Twice"
    propose, repair = (m.messages[-1]["content"] for m in meta_calls(script, "g001-00"))
    idea = idea_for(1, 0)
    assert f"Write a NEW agent that builds this idea: {idea}" in propose
    assert propose.index("builds this idea") > propose.index("# The archive")  # asked last
    assert "the same design as seed-chain_of_thought (Chain-of-Thought)" in repair
    assert f"Build this idea instead: {idea}" in repair


def test_without_near_duplicates_a_reprompted_seed_is_accepted(tmp_path):
    seed_code = load_seed(SEEDS / "chain_of_thought.py").code
    renamed = seed_code.replace("Chain-of-Thought Agent", "Careful Agent")
    script = Script({"g001-00": {"propose": sections(renamed, "Careful")}})
    result, _ = run(tmp_path, script, near_duplicates=False)
    assert by_id(result)["g001-00"].status == "ok"
    propose = meta_calls(script, "g001-00")[0].messages[-1]["content"]
    assert "builds this idea" not in propose and "Design a NEW agent" in propose


# ---------------------------------------------------------------- pruning


def test_a_clearly_worse_candidate_is_pruned_after_the_minibatch(tmp_path):
    script = Script({"g001-00": {"propose": sections(agent("QUARTER"), "Weak")}})
    result, d = run(tmp_path, script, pruning=True, minibatch=4)
    rec = by_id(result)["g001-00"]
    assert rec.status == "pruned" and "pruned after 4 of 8 tasks" in rec.reason
    assert rec.val.n == 4 and rec.val.mean == 0.25  # the partial score
    assert len(task_calls(script, "g001-00")) == 4  # only the minibatch ran
    assert rec.meta["calls_saved_by_pruning"] == 4
    assert result.best.id == "seed-chain_of_thought"
    assert "Pruning saved an estimated 4 LLM calls." in (d / "report.md").read_text()


def test_pruning_off_runs_every_task(tmp_path):
    script = Script({"g001-00": {"propose": sections(agent("QUARTER"), "Weak")}})
    result, _ = run(tmp_path, script, pruning=False)
    rec = by_id(result)["g001-00"]
    assert rec.status == "ok" and rec.val.n == len(VAL) and rec.val.mean == 0.25


# ---------------------------------------------------------------- malformed output


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("I would build a debate agent with three voices.", "unparseable: "),
        ("## thought\nVote.\n\n## name\nVoter\n", "unparseable: "),
        ('{"thought": "Vote.", "name": "Voter"}', "unparseable: "),
        (sections("def forward(self, question, context):\n    return question\n"),
         "forward-signature"),
        (sections("def forward(self, taskInfo)\n    return taskInfo\n"), "syntax"),
    ],
    ids=["prose", "sections-without-code", "json-without-code", "wrong-signature", "syntax"],
)
def test_malformed_meta_output_is_an_invalid_record_and_the_campaign_goes_on(
    tmp_path, reply, reason
):
    script = Script({"g001-00": {"propose": reply}, "g002-00": {"propose": sections(agent("HALF"))}})
    result, d = run(tmp_path, script, generations=2, repair_rounds=0)
    recs = by_id(result)
    bad = recs["g001-00"]
    assert bad.status == "invalid" and reason in bad.reason, bad.reason
    assert bad.generation == 1 and bad.val is None and bad.calls == 1
    assert (d / "transcripts" / "g001-00.md").is_file()
    assert recs["g002-00"].status == "ok" and recs["g002-00"].val.mean == 0.5
    assert not result.stopped


def test_an_invalid_attempt_is_kept_and_a_fresh_proposal_takes_the_generation(tmp_path):
    script = Script({"g001-00": {"propose": "I would vote."},
                     "g001-01": {"propose": sections(agent("HALF"), "Second Try")}})
    result, d = run(tmp_path, script, generations=1, attempts=3, repair_rounds=0)
    recs = by_id(result)
    assert recs["g001-00"].status == "invalid" and recs["g001-00"].generation == 1
    assert recs["g001-01"].status == "ok" and recs["g001-01"].name == "Second Try"
    assert "g001-02" not in recs  # a valid attempt ends the generation
    first, second = meta_calls(script, "g001-00")[0], meta_calls(script, "g001-01")[0]
    assert first.messages == second.messages  # same prompt, sampled apart
    assert first.sample_index != second.sample_index
    assert result.yield_counts["proposed"] == 2 and result.yield_counts["valid"] == 1


def test_an_agent_that_crashes_on_every_task_does_not_end_the_generation(tmp_path):
    script = Script({"g001-00": {"propose": sections(RAISES, "Broken"),
                                 "debug": debug_reply(RAISES + "\n")},
                     "g001-01": {"propose": sections(agent("HALF"), "Runs")}})
    result, _ = run(tmp_path, script, attempts=2)
    recs = by_id(result)
    assert recs["g001-00"].status == "failed" and recs["g001-01"].status == "ok"


def test_resume_with_more_attempts_does_not_reopen_finished_generations(tmp_path):
    d = tmp_path / "campaign"
    meta = {"g001-00": {"propose": "no code"}, "g002-00": {"propose": sections(agent("HALF"))}}
    for attempts, generations in ((1, 1), (3, 2)):
        script = Script(meta)
        campaign = make_campaign(d, script, attempts=attempts, generations=generations,
                                 repair_rounds=0, disk_cache=True)
        result = campaign.run()
        close(campaign)
    assert set(by_id(result)) == {"seed-chain_of_thought", "g001-00", "g002-00"}
    assert not meta_calls(script, "g001-01")


def test_attempts_stop_at_the_cap_when_every_proposal_is_invalid(tmp_path):
    script = Script({f"g001-0{i}": {"propose": "no code"} for i in range(3)}
                    | {"g002-00": {"propose": sections(agent("HALF"))}})
    result, _ = run(tmp_path, script, generations=2, attempts=2, repair_rounds=0)
    recs = by_id(result)
    assert [recs[c].status for c in ("g001-00", "g001-01", "g002-00")] == [
        "invalid", "invalid", "ok"]
    assert "g001-02" not in recs and "g002-01" not in recs


def test_resume_between_attempts_neither_reasks_nor_duplicates(tmp_path):
    d = tmp_path / "campaign"
    meta = {"g001-00": {"propose": "no code"},
            "g001-01": {"propose": sections(agent("HALF"), "Second Try")}}
    first = Script(meta)  # the seed takes 8 calls, attempt 1 one: stop before attempt 2
    campaign = make_campaign(d, first, attempts=2, repair_rounds=0, max_calls=9,
                             disk_cache=True, threads=1)
    assert campaign.run().stopped
    close(campaign)
    assert [x["id"] for x in archive_lines(d) if x["kind"] == "candidate"] == [
        "seed-chain_of_thought", "g001-00"]
    second = Script(meta)
    campaign = make_campaign(d, second, attempts=2, repair_rounds=0, max_calls=1000,
                             disk_cache=True, threads=1)
    result = campaign.run()
    close(campaign)
    assert not result.stopped and not meta_calls(second, "g001-00")
    assert len(meta_calls(second, "g001-01")) == 1
    assert [x["id"] for x in archive_lines(d) if x["kind"] == "candidate"] == [
        "seed-chain_of_thought", "g001-00", "g001-01"]


def test_the_search_time_limit_starts_nothing_new_but_still_tests_and_resumes(tmp_path):
    d = tmp_path / "campaign"
    meta = {"g001-00": {"propose": "no code"},
            "g001-01": {"propose": sections(agent("HALF"), "Second Try")},
            "g002-00": {"propose": sections(agent("GOOD", calls=2), "Third")}}
    ticks = iter([0.0, 10.0])  # deadline set at 0; before g001-00: 10 s; then 100 s

    campaign = make_campaign(d, Script(meta), generations=2, attempts=2, repair_rounds=0,
                             disk_cache=True)
    campaign.max_search_s, campaign.clock = 60.0, lambda: next(ticks, 100.0)
    result = campaign.run()
    close(campaign)
    recs = by_id(result)
    assert set(recs) == {"seed-chain_of_thought", "g001-00"}
    assert not result.stopped and "after g001-00 started" in result.time_limit
    assert recs["seed-chain_of_thought"].test is not None  # the final test still ran
    assert "budget.max_search_minutes = 1" in (d / "report.md").read_text()

    second = Script(meta)  # no limit: the open generation and the next one go on
    campaign = make_campaign(d, second, generations=2, attempts=2, repair_rounds=0,
                             disk_cache=True)
    result = campaign.run()
    close(campaign)
    assert [by_id(result)[c].status for c in ("g001-00", "g001-01", "g002-00")] == [
        "invalid", "ok", "ok"]
    assert not meta_calls(second, "g001-00") and not result.time_limit


def test_past_the_search_time_limit_a_candidate_gets_no_debug_round(tmp_path):
    script = Script({"g001-00": {"propose": sections(agent("WRONG")),
                                 "debug": debug_reply(agent("HALF"))}})
    ticks = iter([0.0, 10.0])  # the limit passes while g001-00 is evaluated
    campaign = make_campaign(tmp_path / "c", script, debug_rounds=2)
    campaign.max_search_s, campaign.clock = 60.0, lambda: next(ticks, 100.0)
    try:
        result = campaign.run()
    finally:
        close(campaign)
    rec = by_id(result)["g001-00"]
    assert rec.status == "ok" and rec.val.mean == 0.0
    assert len(meta_calls(script, "g001-00")) == 1  # proposed, never debugged
    assert "debug rounds were skipped" in result.time_limit


def test_json_replies_work_as_well_as_sections(tmp_path):
    script = Script({"g001-00": {"propose": as_json(agent("GOOD", calls=3), "Thrice")}})
    result, _ = run(tmp_path, script, output_format="json")
    rec = by_id(result)["g001-00"]
    assert rec.status == "ok" and rec.name == "Thrice" and rec.val.mean == 1.0
    assert meta_calls(script, "g001-00")[0].response_format == {"type": "json_object"}


# ---------------------------------------------------------------- budget


def test_budget_stop_mid_generation_then_resume_with_a_higher_cap(tmp_path):
    d = tmp_path / "campaign"
    meta = {"g001-00": {"propose": sections(agent("GOOD", calls=2), "Twice")}}
    # the seed takes 8 calls, g001-00's proposal 1, its evaluation 16: stop inside it
    first = Script(meta)
    campaign = make_campaign(d, first, max_calls=14, disk_cache=True, threads=1)
    result = campaign.run()
    close(campaign)
    assert result.stopped and "budget.max_calls = 14" in result.stopped
    assert [r.id for r in result.records] == ["seed-chain_of_thought"]
    assert len(first.requests) == 14
    lines = archive_lines(d)
    assert [x["id"] for x in lines if x["kind"] == "candidate"] == ["seed-chain_of_thought"]
    assert "Stopped early" in (d / "report.md").read_text()
    Archive.open(d, readonly=True)  # intact

    # the same cap again: nothing new can be bought, and nothing breaks
    again = Script(meta)
    campaign = make_campaign(d, again, max_calls=14, disk_cache=True, threads=1)
    assert campaign.run().stopped
    close(campaign)
    assert again.requests == []  # the cache answered what was paid for

    second = Script(meta)
    campaign = make_campaign(d, second, max_calls=1000, disk_cache=True, threads=1)
    result = campaign.run()
    close(campaign)
    assert not result.stopped
    assert [r.id for r in result.records] == ["seed-chain_of_thought", "g001-00"]
    rec = result.records[1]
    assert rec.status == "ok" and rec.val.mean == 1.0
    # the meta call and the first task calls of g001-00 came from the cache
    assert not meta_calls(second, "g001-00")
    assert len(task_calls(second, "g001-00")) == 16 - (14 - 8 - 1)
    assert rec.meta["cached_calls"] == 1 + 5


# ---------------------------------------------------------------- selection and test


def test_selection_uses_validation_only_and_test_runs_once_for_best_and_seeds(tmp_path):
    script = Script(
        {"g001-00": {"propose": sections(agent("VALHIGH"), "Overfit")},
         "g002-00": {"propose": sections(agent("TESTHIGH"), "Lucky on test")}},
        seed_mode="HALF",
    )
    result, d = run(tmp_path, script, generations=2)
    recs = by_id(result)
    overfit, lucky, seed = recs["g001-00"], recs["g002-00"], recs["seed-chain_of_thought"]
    assert overfit.val.mean == 1.0 and lucky.val.mean == 0.5 and seed.val.mean == 0.5
    assert result.best.id == "g001-00" == result.best_generated.id
    assert result.best_seed.id == "seed-chain_of_thought"
    assert overfit.test.mean == 0.0 and seed.test.mean == 0.5
    assert lucky.test is None  # never evaluated on test, though it would have done best
    tested = {r.candidate for r in script.requests if (r.candidate or "").endswith(":test")}
    assert tested == {"g001-00:test", "seed-chain_of_thought:test"}
    assert len(task_calls(script, "g001-00:test")) == len(TEST)
    p = result.paired
    assert p.n == len(TEST) and p.mean_diff == pytest.approx(-0.5)
    report = (d / "report.md").read_text()
    assert "Paired difference on the same 6 test tasks, `g001-00` − `seed-chain_of_thought`" in report
    assert "**-50.0 points**" in report

    # resuming a finished campaign evaluates nothing again
    campaign = make_campaign(d, Script({}), generations=2)
    again = campaign.run()
    close(campaign)
    assert campaign.gateway.backend.calls == []
    assert again.paired == result.paired
    tests = [x["id"] for x in archive_lines(d) if x["kind"] == "test_result"]
    assert sorted(tests) == ["g001-00", "seed-chain_of_thought"]


def test_test_seeds_tests_the_named_seeds_and_the_validation_best_one_only(tmp_path):
    d = tmp_path / "campaign"
    campaign = make_campaign(d, Script({}, seed_mode="HALF"), generations=0,
                             seeds=("chain_of_thought", "self_consistency", "step_back_abstraction"))
    campaign.test_seeds = ("step_back_abstraction",)
    try:
        result = campaign.run()
    finally:
        close(campaign)
    tested = {r.id for r in result.records if r.test is not None}
    # every seed ties on validation: the first is the validation-best, so it is tested too
    assert result.best_seed.id == "seed-chain_of_thought"
    assert tested == {"seed-chain_of_thought", "seed-step_back_abstraction"}
    assert by_id(result)["seed-self_consistency"].val is not None  # still on validation
    # the report pairs the pick with the other tested seed (HALF scores the same everywhere)
    report = (d / "report.md").read_text(encoding="utf-8")
    assert "| `seed-chain_of_thought` − `seed-step_back_abstraction` | " in report
    assert "| +0.0 | [+0.0, +0.0] |" in report


def test_when_a_seed_is_best_the_best_generated_agent_is_still_tested_and_compared(tmp_path):
    script = Script({"g001-00": {"propose": sections(agent("HALF"), "Half")}})
    result, _ = run(tmp_path, script)
    assert result.best.id == "seed-chain_of_thought" and result.best_generated.id == "g001-00"
    assert by_id(result)["g001-00"].test.mean == pytest.approx(0.5)
    assert result.paired.mean_diff == pytest.approx(-0.5)


# ---------------------------------------------------------------- yield


def test_yield_counts_are_in_the_result_and_the_report(tmp_path):
    script = Script({
        "g001-00": {"propose": "no code here"},  # not parsed
        "g002-00": {"propose": sections(PLACEHOLDER)},  # parsed, invalid
        "g003-00": {"propose": sections(RAISES, "Broken")},  # valid, never runs a task
        "g004-00": {"propose": sections(agent("WRONG", calls=2), "Wrong")},  # runs, scores 0
        "g005-00": {"propose": sections(agent("HALF", calls=2), "Half")},  # scores > 0
    })  # g005-00 is g004-00 with another prompt string: valid, but not a new structure
    result, d = run(tmp_path, script, generations=5, repair_rounds=0, debug_rounds=0)
    assert result.yield_counts == {
        "proposed": 5, "parsed": 4, "normalised": 3, "valid": 3, "ran": 2, "scored>0": 1,
        "new structure": 2,
    }
    statuses = [r.status for r in result.records[1:]]
    assert statuses == ["invalid", "invalid", "failed", "ok", "ok"]
    report = (d / "report.md").read_text()
    assert "## Meta agent yield" in report
    for row in ("| proposed | 5 | 100% |", "| parsed | 4 | 80% |", "| normalised | 3 | 60% |",
                "| valid | 3 | 60% |", "| new structure | 2 | 40% |", "| ran | 2 | 40% |", "| scored>0 | 1 | 20% |"):
        assert row in report


def test_a_copy_of_the_prompts_example_is_not_a_new_structure():
    """Measured (quickstart run 9): the 1.5B meta agent resubmitted the prompt's example."""
    from metasearch.campaign.summary import yield_counts
    from metasearch.search.adas.context import IDEAS
    from metasearch.search.adas.strategy import AdasStrategy
    from metasearch.search.adas.text import EXAMPLE_CODE

    copy = EXAMPLE_CODE.replace("Think step by step", "Think carefully") + "\n# mine\n"
    own = EXAMPLE_CODE.replace("    return answer", "    thinking, answer = solver("
                               "[taskInfo, answer], 'Check.')\n    return answer")
    records = [
        CandidateRecord(id=f"g00{i}-00", name=n, generation=i, status="ok", code_path=f"{n}.py",
                        meta={"stages": ["parsed", "normalised", "valid"]})
        for i, n in ((1, "copy"), (2, "own"))
    ]
    codes = {"copy": copy, "own": own}
    assert yield_counts(records, lambda r: codes[r.name], (EXAMPLE_CODE,))["new structure"] == 1
    assert AdasStrategy.reference_code == (EXAMPLE_CODE,)
    assert not any("Verify and retry" in idea for idea in IDEAS)


def test_the_meta_agent_sees_validation_fitness_never_test():
    rec = CandidateRecord(
        id="g001-00", name="A", generation=1, status="ok",
        val=SplitScore(0.25, 0.1, 0.4, 8, median=0.25), test=SplitScore(0.875, 0.8, 0.9, 6),
    )
    pruned = CandidateRecord(id="g002-00", name="P", generation=2, status="pruned",
                             val=SplitScore(0.1, 0.0, 0.2, 4))
    (entry,) = archive_entries([rec, pruned], lambda r: "code")
    assert entry.score == 0.25 and "25.0%" in entry.fitness and "87" not in entry.fitness


# ---------------------------------------------------------------- MLflow


@pytest.mark.slow  # real MLflow (sqlite)
def test_mlflow_mirrors_the_archive(tmp_path):
    from metasearch.store.tracking import Tracker, read_campaign

    uri = mlflow_store()
    name = f"campaign-{tmp_path.name}"
    params = {"search.generations": "3", "suite.name": "toy", "models.meta.model": META_MODEL}

    def tracker() -> Tracker:
        t = Tracker(tracking_uri=uri, experiment_name=name,
                    artifact_location=(tmp_path / "mlartifacts").as_uri())
        t.start(params, models={"meta_model": META_MODEL})
        return t

    script = Script({
        "g001-00": {"propose": sections(agent("HALF"), "Half")},
        "g002-00": {"propose": "nothing usable"},
        "g003-00": {"propose": sections(agent("QUARTER"), "Weak")},
    })
    result, d = run(tmp_path, script, generations=3, repair_rounds=0, pruning=True,
                    tracker=tracker())
    records = result.records
    assert [r.status for r in records] == ["ok", "ok", "invalid", "pruned"]

    data = read_campaign(uri, name)
    assert {k: data.params[k] for k in params} == params
    rows = {row.id: row for row in data.candidates}
    assert sorted(rows) == sorted(r.id for r in records)
    for r in records:
        row = rows[r.id]
        assert row.status == r.status and row.tags["status"] == r.status
        assert row.params["name"] == r.name and row.params["generation"] == str(r.generation)
        assert row.params["strategy"] == r.strategy
        assert row.params["model.meta_model"] == META_MODEL
        assert row.params["parent"] == ",".join(r.parent_ids)
        assert row.metrics["calls"] == r.calls
        if r.val is not None:
            assert row.metrics["val_score"] == pytest.approx(r.val.mean)
            assert row.metrics["val_ci_low"] == pytest.approx(r.val.ci_low)
        else:
            assert "val_score" not in row.metrics
        if r.test is not None:
            assert row.metrics["test_score"] == pytest.approx(r.test.mean)
        else:
            assert "test_score" not in row.metrics
        if r.reason:
            assert row.tags["reason"] == r.reason
    assert {r.id for r in records if r.test is not None} == {"seed-chain_of_thought", "g001-00"}
    # best-so-far validation score: one step per archived candidate
    curve = progress_curve(records)
    assert list(data.best_so_far) == [(p.step, p.best_val) for p in curve]
    # artifacts of a candidate run
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    arts = {a.path for a in client.list_artifacts(rows["g001-00"].run_id)}
    assert {"agent.py", "thought.md", "transcript.md", "results.json", "scores.json"} <= arts
    parent_arts = {a.path for a in client.list_artifacts(data.parent_run_id)}
    assert "report.md" in parent_arts
    assert client.get_run(data.parent_run_id).info.status == "FINISHED"

    # resuming the finished campaign adds no runs
    campaign = make_campaign(d, Script({}), generations=3, tracker=tracker())
    campaign.run()
    close(campaign)
    assert len(candidate_runs(uri, name)) == len(records)


def test_the_strategy_is_told_every_stored_record(tmp_path):
    d = tmp_path / "campaign"
    campaign = make_campaign(d, Script({"g002-00": {"propose": "no code"}}), generations=2)
    told = []
    campaign.strategy.tell = told.append  # type: ignore[method-assign]
    result = campaign.run()
    close(campaign)
    assert [r.id for r in told] == [r.id for r in result.records]
    assert told[-1].status == "invalid" and told[0].code_path == "agents/seed-chain_of_thought.py"


# ---------------------------------------------------------------- through the sandbox


def bwrap_or_skip() -> None:
    import sys

    from metasearch.execution.sandbox.launch import probe

    if probe("bwrap", sys.executable, 60000) is not None:
        pytest.skip("bwrap sandbox unavailable (needs root and bubblewrap)")


def test_debug_and_pruning_through_the_bwrap_sandbox(tmp_path):
    bwrap_or_skip()
    script = Script({"g001-00": {"propose": sections(RAISES, "Broken"),
                                 "debug": debug_reply(agent("GOOD", calls=2))},
                     "g002-00": {"propose": sections(agent("QUARTER"), "Weak")}})
    result, _ = run(tmp_path, script, generations=2, pruning=True, sandbox="bwrap")
    recs = by_id(result)
    assert recs["seed-chain_of_thought"].val.mean == 1.0
    assert recs["g001-00"].status == "ok" and recs["g001-00"].val.mean == 1.0
    debug = meta_calls(script, "g001-00")[1].messages[-1]["content"]
    assert "TypeError" in debug and 'File "<agent>"' in debug  # the traceback crossed the jail
    assert recs["g002-00"].status == "pruned" and recs["g002-00"].val.n == 4


def test_budget_stop_inside_the_bwrap_sandbox_then_resume(tmp_path):
    bwrap_or_skip()
    d = tmp_path / "campaign"
    meta = {"g001-00": {"propose": sections(agent("GOOD", calls=2), "Twice")}}
    campaign = make_campaign(d, Script(meta), max_calls=14, disk_cache=True, sandbox="bwrap")
    result = campaign.run()
    close(campaign)
    assert "budget.max_calls = 14" in result.stopped
    assert [r.id for r in result.records] == ["seed-chain_of_thought"]
    second = Script(meta)
    campaign = make_campaign(d, second, max_calls=1000, disk_cache=True, sandbox="bwrap")
    result = campaign.run()
    close(campaign)
    assert not result.stopped and result.records[1].val.mean == 1.0
    assert not meta_calls(second, "g001-00")


def test_a_tracking_server_that_refuses_the_report_does_not_fail_the_finished_campaign(
        tmp_path, monkeypatch):
    from metasearch.store.tracking import Tracker

    t = Tracker(tracking_uri=mlflow_store(), experiment_name=f"refuses-{tmp_path.name}",
                artifact_location=(tmp_path / "mlartifacts").as_uri())
    t.start({"search.generations": "1"}, models={"meta_model": META_MODEL})

    def refuse(_directory):
        raise ConnectionError("the server went away")

    monkeypatch.setattr(t, "log_report", refuse)
    script = Script({"g001-00": {"propose": sections(agent("HALF"), "Half")}})
    result, d = run(tmp_path, script, generations=1, tracker=t)
    assert [r.status for r in result.records] == ["ok", "ok"]
    assert (d / "report.md").is_file() and result.report == d / "report.md"
