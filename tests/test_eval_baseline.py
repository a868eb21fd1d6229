"""`metasearch eval A --baseline B`: both agents on the same tasks, then the paired difference.

The agents answer without an LLM call, so the real sandbox runs them and no model starts;
their per-task scores, and so the difference, follow from the gold answers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from metasearch.evaluation.stats import paired_bootstrap
from metasearch.suites import get_suite, load_split

GOLD = [7, 7, 8, 7, 8, 7, 8, 7]  # the agents answer "7" and "8"


def agent(tmp_path: Path, answer: str) -> Path:
    path = tmp_path / f"says_{answer}.py"
    path.write_text(f"def forward(self, taskInfo):\n    return {answer!r}\n")
    return path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "metasearch.cli.app", *args], capture_output=True,
                          text=True, timeout=600)


def test_the_agent_and_its_baseline_are_paired_on_the_same_tasks(tmp_path):
    data = tmp_path / "gsm8k.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {g} + 0? ({i})",
                                        "answer": f"{g} + 0 = {g}\n#### {g}"}) + "\n"
                            for i, g in enumerate(GOLD)))
    seven, eight = agent(tmp_path, "7"), agent(tmp_path, "8")
    common = ("--suite", "gsm8k", "--data", str(data), "--n-val", "6", "--skip-validation",
              "--cache-dir", str(tmp_path / "cache"))
    proc = run("eval", str(seven), "--baseline", str(eight), *common, "--json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["n"] == got["baseline"]["n"] == 6 and got["calls"] == 0
    golds = [t.answer for t in load_split(get_suite("gsm8k"), "validation", data_path=data,
                                          seed=0, n_val=6, n_test=None)]
    a = [1.0 if g == "7" else 0.0 for g in golds]
    b = [1.0 - x for x in a]
    assert got["score"] == sum(a) / 6 and got["baseline"]["score"] == sum(b) / 6
    assert got["baseline"]["agent"] == str(eight)
    want = paired_bootstrap(a, b)
    assert got["paired"] == {"n": 6, "mean_diff": want.mean_diff, "ci_low": want.ci_low,
                             "ci_high": want.ci_high, "p_value": want.p_value}
    table = run("eval", str(seven), "--baseline", str(eight), *common)
    assert table.returncode == 0, table.stderr
    assert f"says_7.py − says_8.py on the same 6 tasks: {100 * want.mean_diff:+.1f} points" \
        in table.stdout


def test_a_missing_baseline_fails_before_anything_runs(tmp_path):
    proc = run("eval", str(agent(tmp_path, "7")), "--baseline", str(tmp_path / "nope.py"),
               "--suite", "arith", "--limit", "2")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "nope.py does not exist" in proc.stderr + proc.stdout
