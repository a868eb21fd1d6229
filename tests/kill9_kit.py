"""kill -9 a strategy's campaign mid-run, resume it, and compare with an uninterrupted run.

Each strategy's kit (``optuna_kit.py``, ``edit_kit.py``, ``hybrid_kit.py``) runs a
toy campaign in a child process as ``python KIT [ARGS...] DIR DELAY_S PARALLEL``
and appends each billed call's cache key to ``DIR/calls.log`` once it is cached,
so a key logged twice (across the kill) was paid for twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from metasearch.store.archive import Archive
from metasearch.testing.campaigns import comparable


def keys(d: Path) -> list[str]:
    """The billed calls' keys, in the order they were cached."""
    log = d / "calls.log"
    return [json.loads(x)["key"] for x in log.read_text().splitlines()] if log.exists() else []


def summary(d: Path) -> list[tuple]:
    """What a resumed run must share with an uninterrupted one (:func:`comparable`)."""
    with Archive.open(d, readonly=True) as arc:
        return comparable(arc.records())


def starter(kit: Path, *args: str) -> Callable[..., subprocess.Popen]:
    """``start(d, delay_s=0.0, parallel=1)``: the kit's campaign in ``d``, in a child process."""
    def start(d: Path, *, delay_s: float = 0.0, parallel: int = 1) -> subprocess.Popen:
        env = os.environ | {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        return subprocess.Popen([sys.executable, str(kit), *args, str(d), str(delay_s),
                                 str(parallel)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    return start


def run_to_end(start: Callable[..., subprocess.Popen], d: Path, **kw: float) -> Path:
    proc = start(d, **kw)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    return d


def kill_and_resume(start: Callable[..., subprocess.Popen], d: Path, reference: Path, *,
                    at: float, parallel: int) -> None:
    """SIGKILL the campaign from outside after a fraction ``at`` of the reference run's
    calls, resume it, and check that nothing answered before the kill was billed again and
    that the records equal the reference run's."""
    at_call = max(1, int(at * len(keys(reference))))
    proc = start(d, delay_s=0.01, parallel=parallel)
    deadline = time.monotonic() + 120
    while len(keys(d)) < at_call and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.003)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the campaign finished before the kill"
    before = keys(d)
    run_to_end(start, d, parallel=parallel)
    # A call cut off inside the backend may be sent again; nothing answered before may.
    # Each candidate runs up to 4 tasks at once (the toy campaign's threads) and every call
    # takes the same 10 ms, so the calls in flight at the kill are the last 4 x parallel logged.
    rebilled = set(keys(d)[len(before):]) & set(before[:-4 * parallel])
    assert not rebilled, f"{len(rebilled)} calls were billed twice"
    assert summary(d) == summary(reference)
