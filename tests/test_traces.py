"""Per-task traces: recorded on the host, capped, stored beside the results, shown to
strategies for validation only, and mirrored as MLflow traces and logged models."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from test_runtime_fakes import FakeTransport, settings

from metasearch.evaluation.score import TaskResult
from metasearch.execution.sandbox import SandboxLimits, SandboxRunner
from metasearch.execution.sandbox.launch import probe
from metasearch.llm import scripted_gateway
from metasearch.llm.types import LLMRequest, LLMResponse
from metasearch.outcomes import TaskError
from metasearch.runtime import run_tasks_inprocess
from metasearch.runtime.traces import TraceLimits, TraceRecorder, task_traces
from metasearch.search.base import ArchiveView, Slot
from metasearch.suites.task import Task
from metasearch.testing.campaigns import ScriptedModel, close_campaign, seed_agent, toy_campaign

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

TWO_AGENTS = '''
def forward(self, taskInfo):
    solver = LLMAgentBase(["thinking", "answer"], "Solver")
    critic = LLMAgentBase(["answer"], "Critic")
    thinking, answer = solver([taskInfo], "Solve it.")
    (final,) = critic([taskInfo, answer], "Check it.")
    return final
'''
TASKS = [Task(id=f"q{i}", question=f"What is {i}+1?", answer=str(i + 1)) for i in range(3)]


def request(text: str = "hello") -> LLMRequest:
    return LLMRequest(model="m", messages=({"role": "system", "content": "sys"},
                                           {"role": "user", "content": text}))


# ------------------------------------------------------------------ recorder and caps


def test_recorder_caps_texts_and_calls_and_says_what_it_cut():
    rec = TraceRecorder(2, TraceLimits(prompt_chars=30, reply_chars=20, calls_per_task=2))
    a = rec.begin(request("x" * 100), task=0, agent="Solver ab12")
    rec.end(a, LLMResponse(text="y" * 50, model="m", prompt_tokens=7, cached=True))
    rec.event("repair", call_id=a)
    rec.begin(request(), task=0)
    assert rec.begin(request(), task=0) == -1  # the third call of task 0 is over the cap
    (first, second) = rec.task_calls(0)
    assert first["agent"] == "Solver ab12" and first["events"] == ["repair"]
    assert first["cut"] == {"prompt": 100, "reply": 50} and "characters cut" in first["prompt"]
    assert len(first["prompt"]) < 100 and first["cached"] and first["prompt_tokens"] == 7
    assert second["reply"] == "" and rec.task_extra(0) == {"dropped_calls": 1}
    assert rec.task_calls(1) == []


def test_untagged_calls_go_to_the_only_running_task():
    rec = TraceRecorder(2)
    rec.started(1)
    rec.end(rec.begin(request(), task=None), error="LLMError: down")
    assert [c["error"] for c in rec.task_calls(1)] == ["LLMError: down"]


def test_the_candidate_cap_serves_failed_and_wrong_tasks_first():
    calls = {"calls": [{"system": "", "prompt": "p" * 60, "reply": "r" * 40, "cut": {}}]}
    results = [TaskResult("a", 1.0, "1", "1"), TaskResult("b", 0.0, "2", "3"),
               TaskResult("c", 0.0, None, "4", TaskError("exception", "ValueError", "bad"))]
    lines = task_traces(results, {r.task_id: calls for r in results}, {"a": "qa"},
                        TraceLimits(chars_per_candidate=250))
    assert [ln["task_id"] for ln in lines] == ["a", "b", "c"]  # task order kept
    kept = {ln["task_id"]: bool(ln["calls"][0]["prompt"]) for ln in lines}
    assert kept == {"a": False, "b": True, "c": True}
    assert "trace cap" in lines[0]["cut"] and lines[0]["calls"][0]["cut"]["prompt"] == 60
    assert lines[2]["error"] == "ValueError: bad" and lines[1]["gold"] == "3"
    assert lines[0]["question"] == "qa"


# ------------------------------------------------------------------ runners


def check_two_agent_trace(outcomes, questions):
    for o, q in zip(outcomes, questions, strict=True):
        calls = o.trace["calls"]
        assert [c["agent"].split()[0] for c in calls] == ["Solver", "Critic"]
        assert q in calls[0]["prompt"] and "Check it." in calls[1]["prompt"]
        assert calls[0]["reply"] and calls[0]["model"] and calls[0]["n_messages"] == 2
        assert all(c["latency_s"] >= 0 and c["error"] is None for c in calls)


def test_inprocess_runner_records_each_tasks_calls_agents_and_repairs():
    t = FakeTransport(lambda req: "## thinking\nok\n\n## answer\n5")
    outs = run_tasks_inprocess(TWO_AGENTS, TASKS, settings(threads=3), t)
    check_two_agent_trace(outs, [task.question for task in TASKS])
    # an unusable reply: the call says so, and the repair call is marked
    bad = FakeTransport(replies=["no headings", "## thinking\nok\n\n## answer\n5",
                                 "## answer\n5"])
    (out,) = run_tasks_inprocess(TWO_AGENTS, TASKS[:1], settings(threads=1), bad)
    first, repair, critic = out.trace["calls"]
    assert first["events"] == ["repair"] and not first["repair"]
    assert repair["repair"] and repair["agent"] == first["agent"] and repair["n_messages"] == 4
    assert critic["events"] == []


def sandbox_mode() -> str:
    for mode in ("bwrap", "unshare"):
        if probe(mode, sys.executable, 61140) is None:
            return mode
    pytest.skip("no isolating sandbox here")


def test_sandbox_host_records_the_same_trace():
    mode = sandbox_mode()
    gw = scripted_gateway(['{"thinking": "t", "answer": "5"}'])
    s = settings(protocol="json", model="scripted/test", threads=3)
    limits = SandboxLimits(cpu_s=20, memory_mb=1024, nproc=64, task_timeout_s=10.0,
                           candidate_timeout_s=60.0)
    try:
        with SandboxRunner(mode=mode, gateway=gw, limits=limits, uids=range(61140, 61150)) as r:
            outs = r.run(TWO_AGENTS, TASKS, s)
    finally:
        gw.close()
    assert all(o.ok for o in outs)
    check_two_agent_trace(outs, [task.question for task in TASKS])


# ------------------------------------------------------------------ the campaign


def run_toy(root: Path, tracker=None):
    from metasearch.search.random import RandomStrategy
    from metasearch.search.spaces import load_space

    space = load_space("search_spaces/reasoning.toml")
    campaign = toy_campaign(root, ScriptedModel(), lambda _gw, _n: RandomStrategy(
        space=space, generations=1, width=2, seed=0), seeds=[seed_agent(calls=2)])
    campaign.tracker = tracker
    try:
        return campaign, campaign.run()
    finally:
        close_campaign(campaign)


def test_traces_sit_beside_the_results_and_strategies_see_validation_only(tmp_path):
    campaign, result = run_toy(tmp_path / "c")
    val = {t.id for t in campaign.val_tasks}
    test_questions = [t.question for t in campaign.test_tasks]
    tested = [r for r in result.records if r.test is not None]
    assert tested
    for r in tested:  # the test split's traces: their own file, beside the test results
        lines = campaign.archive.read_traces(r.id, split="test")
        assert {ln["task_id"] for ln in lines} == set(r.test.scores)
        assert (tmp_path / "c" / "traces" / f"{r.id}.test.jsonl").is_file()
    view = ArchiveView.for_slot(campaign.archive, Slot("g009-00", generation=9, index=0))
    for r in result.records:
        traces = view.read_traces(r.id)
        assert traces is not None and set(traces) == val
        results = {x["task_id"]: x for x in campaign.archive.read_results(r.id)["results"]}
        for tid, calls in traces.items():
            assert calls and all({"agent", "prompt", "reply", "events"} <= set(c) for c in calls)
            line = next(ln for ln in campaign.archive.read_traces(r.id) if ln["task_id"] == tid)
            assert (line["answer"], line["gold"], line["score"]) == (
                results[tid]["answer"], results[tid]["gold"], results[tid]["score"])
        shown = repr(traces)
        assert not any(q in shown for q in test_questions)  # no test task reaches a strategy
    seed = next(r for r in result.records if r.is_seed)
    assert all(len(c) == 2 for c in view.read_traces(seed.id).values())  # a two-call seed
    # a slot of generation 1 sees the seed's traces, not its siblings'
    early = ArchiveView.for_slot(campaign.archive, Slot("g001-05", generation=1, index=5))
    assert early.read_traces(seed.id) is not None
    assert all(early.read_traces(r.id) is None for r in result.records if r.generation == 1)


# ------------------------------------------------------------------ MLflow


@pytest.mark.slow  # real MLflow (sqlite)
def test_mlflow_traces_and_logged_models_read_back(tmp_path):
    from mlflow import MlflowClient

    from metasearch.store.tracking import TAG_MODEL, Tracker

    root = tmp_path / "camp"
    root.mkdir()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(tracking_uri=uri, experiment_name="traced",
                      artifact_location=(tmp_path / "art").as_uri(), max_trace_tasks=4)
    tracker.start({})
    campaign, result = run_toy(root, tracker)
    client = MlflowClient(tracking_uri=uri)
    eid = tracker.experiment_id
    runs = {r.data.tags["metasearch.candidate_id"]: r for r in client.search_runs([eid])
            if r.data.tags.get("metasearch.role") == "candidate"}
    models = {m.name: m for m in client.search_logged_models([eid])}
    for rec in result.records:
        run = runs[rec.id]
        traces = client.search_traces(locations=[eid], run_id=run.info.run_id)
        lines = campaign.archive.read_traces(rec.id)
        assert len(traces) == min(4, len(lines))  # capped per candidate
        for tr in traces:
            task = tr.info.tags["metasearch.task_id"]
            line = next(ln for ln in lines if ln["task_id"] == task)
            root_span, *calls = tr.data.spans
            assert root_span.outputs["gold"] == line["gold"]
            assert len(calls) == len(line["calls"])
            for span, call in zip(calls, line["calls"], strict=True):
                assert span.name == call["agent"] and span.outputs["reply"] == call["reply"]
                assert span.inputs["messages"][1]["content"] == call["prompt"]
                assert span.attributes["mlflow.chat.tokenUsage"]["input_tokens"] == \
                    call["prompt_tokens"]
            assert tr.info.trace_metadata["mlflow.modelId"] == run.data.tags[TAG_MODEL]
        wrong = [ln["task_id"] for ln in lines if ln["score"] < 1.0]
        picked = {tr.info.tags["metasearch.task_id"] for tr in traces}
        assert set(wrong[:4]) <= picked  # wrong tasks first
        # the candidate as an agent version, with its validation metrics
        model = models[rec.id]
        assert model.model_type == "agent" and model.source_run_id == run.info.run_id
        metrics = {m.key: m.value for m in client.get_logged_model(model.model_id).metrics}
        assert metrics["val_score"] == pytest.approx(rec.val.mean)
        if rec.test is not None:
            assert metrics["test_score"] == pytest.approx(rec.test.mean)
    # resuming logs nothing twice
    tracker2 = Tracker(tracking_uri=uri, experiment_name="traced",
                       artifact_location=(tmp_path / "art").as_uri(), max_trace_tasks=4)
    tracker2.start({})
    tracker2.sync(campaign.archive)
    assert len(client.search_logged_models([eid])) == len(models)
    assert len(client.search_traces(locations=[eid], max_results=500)) == sum(
        min(4, len(campaign.archive.read_traces(r.id))) for r in result.records)
