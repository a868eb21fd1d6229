"""Program-of-thought with the embedded 0.5B task model, in the real sandbox (slow).

Four arith validation tasks at the default difficulty. It checks the whole path, not a
score: the model is asked for a program, run_python runs it in the jail, every task ends
in an answer, and the runs are counted. The score is printed for the record.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
POT = Path(__file__).resolve().parents[1] / "archive" / "program_of_thought.py"


@pytest.fixture()
def keep_stdout():
    """``build_gateway`` diverts fd 1 to llama.cpp's log file; give pytest its stdout back."""
    saved_fd, saved_stream = os.dup(1), sys.stdout
    yield
    sys.stdout.flush()
    os.dup2(saved_fd, 1)
    os.close(saved_fd)
    sys.stdout = saved_stream


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_program_of_thought_with_the_local_model(keep_stdout):
    pytest.importorskip("xllamacpp")
    from metasearch.campaign.build import build_bench
    from metasearch.runtime.seeds import load_seed
    from metasearch.suites import get_suite, split_tasks

    suite = get_suite("arith", difficulty=1)
    tasks = split_tasks(suite.load(), seed=0, n_val=4, n_test=0).validation
    start = time.monotonic()
    with build_bench(suite, task_model="local/qwen2.5-coder-0.5b", max_tokens=256,
                     concurrency=2, sandbox="auto", cache_enabled=False) as bench:
        ev = bench.evaluate(load_seed(POT).code, tasks, candidate="pot-local")
    runs = {k: v for k, v in ev.cost.events.items() if k.startswith("python_")}
    print(f"program-of-thought, 0.5B, {len(tasks)} arith tasks: score {ev.result.fitness.mean:.2f}, "
          f"{ev.cost.calls} calls, runs {runs}, {time.monotonic() - start:.0f} s")
    assert ev.result.n == len(tasks) and ev.result.n_errors == 0
    assert sum(runs.values()) == len(tasks)  # one program per task
    assert ev.cost.calls >= len(tasks)
