"""Provider faults through the real CLI: survived, counted, and shown.

The campaign runs ``metasearch run`` in a child process against the fake
OpenAI-compatible server of ``test_campaign_resume_cli`` (same scripted meta
and task replies). At 20% faults (429, 500, dropped connections, empty
``choices``, non-JSON bodies, choices without a message) a 3-generation
campaign ends with the same candidates ``ok`` as at 0%, and the CLI summary,
``report.md`` and the archive's checkpoint show every retried call by kind.
A task call that fails after all its retries is an error of its candidate's
task and the campaign goes on; a meta-agent call that does stops the campaign
with one paragraph, and ``--resume`` continues it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest
from test_campaign_resume_cli import config_text, records, start

from metasearch.testing.campaigns import toy_agent
from metasearch.testing.fake_openai import FakeOpenAIServer, Reply

#: the fake server's fault names -> the gateway's fault kinds
KIND = {"rate_limited": "rate_limited", "server_error": "server_error",
        "connection": "connection", "empty_choices": "malformed", "non_json": "malformed",
        "no_message": "malformed"}
IDS = ["seed-chain_of_thought", "g001-00", "g002-00", "g003-00"]


def respond(body: dict) -> Reply:
    """Each generation's meta agent sees one more agent and adds one more pass; tasks get 4."""
    if body.get("model") == "meta":
        text = json.dumps(body["messages"])
        tag = hashlib.sha256(text.encode()).hexdigest()[:6]
        code = toy_agent(calls=2 + text.count("def forward"), instruction=f"Solve it ({tag}).")
        return Reply(text=f"## thought\nMore passes.\n\n## name\nPasses {tag}\n\n"
                          f"## code\n```python\n{code}```\n")
    return Reply(text="## thinking\nI add.\n\n## answer\n4")


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    """Exit code and stdout + stderr (the summary is on stdout), whitespace folded."""
    out, err = proc.communicate(timeout=300)
    return proc.returncode, " ".join((out + "\n" + err).split())


def spent(out: Path) -> dict:
    """The last checkpoint's ``spent``: what the report and the CLI read."""
    rows = [json.loads(line) for line in (out / "archive.jsonl").read_text().splitlines()]
    states = [r for r in rows if r.get("kind") == "state"]
    return states[-1]["meta"]["spent"]


def run_campaign(server: FakeOpenAIServer, d: Path, *extra: str) -> tuple[int, str]:
    cfg = d / "c.toml"
    cfg.write_text(config_text(server.url))
    return finish(start(cfg, d / "out", "--generations", "3", *extra))


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> list[tuple[str, str]]:
    d = tmp_path_factory.mktemp("clean")
    with FakeOpenAIServer(respond=respond) as server:
        code, err = run_campaign(server, d)
    assert code == 0, err
    assert "provider faults: calls retried: 0; calls failed: 0" in err, err
    rows = records(d / "out")
    assert [r[0] for r in rows] == IDS, rows
    assert [s for _, s in rows] == ["ok"] * 4, rows
    return rows


def test_at_20_percent_faults_the_campaign_keeps_the_same_ok_candidates(clean, tmp_path):
    with FakeOpenAIServer(respond=respond, faults=0.2, fault_seed=0) as server:
        code, err = run_campaign(server, tmp_path)
        sent = Counter(server.faults_sent)
    assert code == 0, err
    assert "Traceback" not in err
    assert records(tmp_path / "out") == clean
    assert sum(sent.values()) >= 5 and len(sent) == 6, sent  # every kind was sent
    expected: Counter[str] = Counter()
    for name, n in sent.items():
        expected[KIND[name]] += n
    counts = spent(tmp_path / "out")
    assert counts["retried"] == dict(expected), (counts, sent)  # each fault retried once
    assert counts["failed"] == {}
    from metasearch.llm.billed_log import logged_spend  # the CLI's campaign logs each bill
    assert logged_spend(tmp_path / "out")["calls"] == counts["calls"] > 0
    total = sum(expected.values())
    assert f"provider faults: calls retried: {total} (" in err, err
    report = (tmp_path / "out" / "report.md").read_text()
    line = next(x for x in report.splitlines() if x.startswith("- Provider faults"))
    assert f"calls retried: {total} (" in line and "calls failed: 0" in line, line
    for kind, n in expected.items():
        assert f"{kind} {n}" in line, line


class Doomed:
    """Scripted replies where the calls of one design fail with a 500, every retry."""

    def __init__(self, *, meta_failures: int = 0) -> None:
        self.meta_failures = meta_failures  # the first N meta requests get a 500
        self.meta_seen = 0
        self.lock = threading.Lock()

    def __call__(self, body: dict) -> Reply:
        text = json.dumps(body["messages"])
        if body.get("model") == "meta":
            with self.lock:
                self.meta_seen += 1
                first, fail = self.meta_seen == 1, self.meta_seen <= self.meta_failures
            if fail:
                return Reply(status=500, message="overloaded")
            if first:  # generation 1 proposes the design whose task calls all fail
                code = toy_agent(calls=2, instruction="Solve it (doomed design).")
                return Reply(text=f"## thought\nDoomed.\n\n## name\nDoomed\n\n"
                                  f"## code\n```python\n{code}```\n")
            return respond(body)
        if "doomed design" in text:
            return Reply(status=500, message="overloaded")
        return respond(body)


def test_a_task_call_failing_after_its_retries_fails_its_candidate_not_the_campaign(tmp_path):
    with FakeOpenAIServer(respond=Doomed()) as server:
        cfg = tmp_path / "c.toml"
        cfg.write_text(config_text(server.url))
        code, err = finish(start(cfg, tmp_path / "out"))
    assert code == 0, err
    assert "Traceback" not in err
    rows = records(tmp_path / "out")
    assert [r[0] for r in rows] == IDS[:3], rows
    assert dict(rows)["g001-00"] == "failed" and dict(rows)["g002-00"] == "ok", rows
    lines = (tmp_path / "out" / "archive.jsonl").read_text().splitlines()
    doomed = next(json.loads(x) for x in lines if json.loads(x).get("id") == "g001-00")
    assert "overloaded" in doomed["reason"] or "500" in doomed["reason"], doomed["reason"]
    counts = spent(tmp_path / "out")
    assert counts["failed"].get("server_error", 0) >= 2, counts  # one per validation task
    assert counts["retried"]["server_error"] >= 3 * counts["failed"]["server_error"], counts
    assert "calls failed: " in err and "server_error" in err, err


def test_a_meta_call_failing_after_its_retries_is_its_candidates_failure(tmp_path):
    """The candidate whose proposal could not be written is recorded invalid, with the
    provider's error as its reason; the campaign goes on to the next one and finishes."""
    with FakeOpenAIServer(respond=Doomed(meta_failures=4)) as server:  # 1 try + 3 retries
        cfg = tmp_path / "c.toml"
        cfg.write_text(config_text(server.url))
        code, err = finish(start(cfg, tmp_path / "out"))
    assert code == 0, err
    assert "Traceback" not in err, err
    rows = records(tmp_path / "out")
    assert rows[:2] == [("seed-chain_of_thought", "ok"), ("g001-00", "invalid")], rows
    assert any(status == "ok" for cid, status in rows[2:]), rows
    from metasearch.store.archive import Archive

    with Archive.open(tmp_path / "out", readonly=True) as archive:
        failed = archive.get("g001-00")
    assert failed.meta["failure"] == "provider"
    assert "the meta model failed while proposing g001-00" in failed.reason
    assert "overloaded" in failed.reason or "500" in failed.reason, failed.reason


def test_fault_counts_are_summed_over_runs_and_read_back_by_the_report(tmp_path):
    from metasearch.campaign.summary import prior_state, spent_so_far
    from metasearch.llm.ledger import Counts
    from metasearch.reporting.report import read_faults, render_markdown, write_report
    from metasearch.store.archive import Archive
    from metasearch.store.records import CampaignState

    assert read_faults(tmp_path) is None  # no archive: no line
    with Archive.open(tmp_path) as archive:
        prior = prior_state(archive)
        assert prior["retried"] == {} and prior["failed"] == {}
        first = Counts(calls=5, retried={"rate_limited": 2, "malformed": 1})
        archive.checkpoint(CampaignState(generation=0, step="a",
                                         meta={"spent": spent_so_far(prior, first)}))
    assert "Provider faults" not in render_markdown([])  # no counts given: no line
    with Archive.open(tmp_path) as archive:  # a resumed run adds its own counts
        prior = prior_state(archive)
        assert prior["calls"] == 5 and prior["retried"] == {"rate_limited": 2, "malformed": 1}
        second = Counts(calls=3, retried={"malformed": 2}, failed={"timeout": 1})
        archive.checkpoint(CampaignState(generation=1, step="b",
                                         meta={"spent": spent_so_far(prior, second)}))
    assert read_faults(tmp_path) == {"retried": {"rate_limited": 2, "malformed": 3},
                                     "failed": {"timeout": 1}}
    text = (write_report(tmp_path, [])).read_text()
    assert ("- Provider faults, by kind: calls retried: 5 (malformed 3, rate_limited 2); "
            "calls failed: 1 (timeout 1)") in text, text
