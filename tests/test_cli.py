"""The CLI end to end: user errors are one paragraph with no traceback; eval is cached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COT = ROOT / "archive" / "chain_of_thought.py"


def metasearch(*args: str, env: dict[str, str] | None = None, timeout: float = 600):
    full = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "metasearch.cli.app", *args],
        capture_output=True, text=True, env=full, timeout=timeout, cwd=ROOT,
    )


def assert_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    text = " ".join(proc.stderr.split())
    for needle in needles:
        assert needle in text, (needle, proc.stderr)


def test_help_imports_nothing_heavy():
    """What keeps ``--help`` fast is the absence of heavy imports; its time is a benchmark's job."""
    code = (
        "import sys; import metasearch.cli.app as c; "
        "print([m for m in ('litellm', 'mlflow', 'optuna', 'ray', 'sqlalchemy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stderr
    assert metasearch("--help").returncode == 0


def test_unknown_suite(tmp_path):
    proc = metasearch("eval", str(COT), "--suite", "nosuch", "--cache-dir", str(tmp_path))
    assert_clean_error(proc, "Unknown task suite 'nosuch'", "arith")


def test_unknown_model(tmp_path):
    proc = metasearch("eval", str(COT), "--model", "local/no-such-model", "--limit", "1",
                      "--cache-dir", str(tmp_path))
    assert_clean_error(proc, "no-such-model")


def test_openai_model_without_key(tmp_path):
    env = {k: "" for k in ("OPENAI_API_KEY",)}
    proc = metasearch("eval", str(COT), "--model", "openai/gpt-4o-mini", "--limit", "1",
                      "--cache-dir", str(tmp_path), env=env)
    assert_clean_error(proc, "OPENAI_API_KEY")


def test_unreachable_endpoint(tmp_path):
    proc = metasearch("eval", str(COT), "--model", "openai/x", "--api-base",
                      "http://127.0.0.1:9/v1", "--limit", "1", "--cache-dir", str(tmp_path))
    assert_clean_error(proc, "127.0.0.1:9")


def test_missing_data_file(tmp_path):
    proc = metasearch("eval", str(COT), "--suite", "mgsm", "--data", str(tmp_path / "no.tsv"),
                      "--cache-dir", str(tmp_path), env={"HF_HUB_OFFLINE": "1"})
    assert_clean_error(proc, "no.tsv")


def test_agent_without_forward(tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text("def backward(self, taskInfo):\n    return '1'\n")
    proc = metasearch("eval", str(agent), "--cache-dir", str(tmp_path))
    assert_clean_error(proc, str(agent), "forward")


def test_missing_agent_file(tmp_path):
    proc = metasearch("eval", str(tmp_path / "nope.py"), "--cache-dir", str(tmp_path))
    assert_clean_error(proc, "nope.py", "does not exist")


def test_validate_exit_codes(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\ndef forward(self, taskInfo):\n    return os.getcwd()\n")
    proc = metasearch("validate", str(bad), "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert any(f["line"] == 1 for e in report["entries"] for f in e["findings"])
    assert metasearch("validate", str(COT)).returncode == 0


def test_bad_config_names_the_field(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[search]\ngenerashuns = 3\n")
    proc = metasearch("run", str(cfg))
    assert_clean_error(proc, "generashuns", "generations", str(cfg))


@pytest.mark.parametrize(("flag", "field"), [("--generations", "search.generations"),
                                           ("--budget-usd", "budget.max_usd")])
def test_run_shortcut_flags_are_validated_like_the_config(tmp_path, flag, field):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[suite]\nname = 'arith'\n")
    proc = metasearch("run", str(cfg), flag, "-1", "--out", str(tmp_path / "out"))
    assert_clean_error(proc, field, "-1")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_eval_real_local_model_then_fully_cached(tmp_path):
    """The foundation's acceptance check, on 2 tasks to keep CI time down."""
    # The weights come from the user cache whatever --cache-dir says; the reply cache is fresh.
    # A generous task timeout: on a loaded machine a task that times out is an error whose
    # replay legitimately differs (its late reply is cached, its repair call never made).
    args = ("eval", str(COT), "--suite", "arith", "--limit", "2", "--task-timeout", "1800",
            "--model", "local/qwen2.5-coder-0.5b", "--cache-dir", str(tmp_path), "--json")
    first = metasearch(*args)
    assert first.returncode == 0, first.stderr
    a = json.loads(first.stdout)
    assert a["errors"] == 0, a
    assert a["n"] == 2 and a["calls"] >= 2 and a["cached_calls"] < a["calls"]
    assert 0.0 <= a["ci_low"] <= a["score"] <= a["ci_high"] <= 1.0
    second = metasearch(*args)
    b = json.loads(second.stdout)
    assert b["cached_calls"] == b["calls"] == a["calls"]
    assert b["score"] == a["score"]
    assert b["wall_s"] * 5 <= a["wall_s"]


def test_strategies_lists_adas_with_its_settings():
    proc = metasearch("strategies", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert "attempts" in rows["adas"]["settings"]
    # a default made by a factory is shown as its value (it printed PydanticUndefined)
    assert rows["optuna"]["settings"]["objectives"]["default"] == ["score"]
    assert "PydanticUndefined" not in metasearch("strategies").stdout


def test_unknown_strategy_is_one_paragraph(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[search]\nstrategy = "mcts-nope"\n')
    proc = metasearch("run", str(cfg), "--out", str(tmp_path / "out"))
    assert_clean_error(proc, "'mcts-nope' is not a known search strategy", "Known strategies: adas")
    assert not (tmp_path / "out").exists()


def test_parallel_candidates_out_of_range_names_the_field(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[run]\nparallel_candidates = 0\n")
    proc = metasearch("run", str(cfg), "--out", str(tmp_path / "out"))
    assert_clean_error(proc, "run.parallel_candidates = 0", "1 to 64")


def test_eval_concurrency_zero_is_a_clear_error(tmp_path):
    proc = metasearch("eval", str(COT), "--concurrency", "0", "--cache-dir", str(tmp_path))
    assert_clean_error(proc, "--concurrency 0 is invalid", "run.concurrency", "from 1 to 1024")


def test_test_seeds_naming_a_seed_that_does_not_run_is_a_clear_error(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[search]\nseeds = ["chain_of_thought"]\ntest_seeds = ["self_refine"]\n')
    proc = metasearch("run", str(cfg), "--out", str(tmp_path / "out"))
    assert_clean_error(proc, "search.test_seeds names self_refine, which search.seeds does "
                       "not include (it has chain_of_thought)")
    assert not (tmp_path / "out" / "archive.jsonl").exists()  # refused before any record


def test_an_old_config_with_adas_fields_under_search_gets_a_note(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[search]\nattempts = 2\nseeds = ["nope"]\n')
    # an unknown seed stops before anything starts, after the config loaded
    proc = metasearch("run", str(cfg), "--out", str(tmp_path / "out"), "--resume")
    assert_clean_error(proc, "search.seeds names seed agents that do not exist: nope")
    assert "search.attempts now lives in [search.adas]" in " ".join(proc.stderr.split())


def test_the_progress_line_counts_billed_calls_apart_from_cache_hits():
    """A replayed campaign (every reply from the cache) must not read as money spent."""
    import io

    from rich.console import Console
    from rich.progress import Progress

    from metasearch.cli.run import RichReporter
    from metasearch.store.records import CandidateRecord

    reporter = RichReporter()
    buf = io.StringIO()
    reporter.progress = Progress(console=Console(file=buf, width=200))
    reporter.candidate(CandidateRecord(id="seed-a", name="A", generation="initial", status="ok",
                                       calls=41, meta={"cached_calls": 41}), None)
    reporter.candidate(CandidateRecord(id="g001-00", name="B", generation=1, status="ok",
                                       calls=10, meta={"cached_calls": 4}), None)
    lines = buf.getvalue().splitlines()
    assert "spent: 0 calls (+41 from the cache)" in lines[0]
    assert "spent: 6 calls (+45 from the cache)" in lines[1]
