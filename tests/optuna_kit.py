"""A toy Optuna campaign in a child process, for the kill -9 tests (tests/test_optuna_strategy.py).

    python tests/optuna_kit.py DIR [DELAY_S] [PARALLEL]

The task model answers right when the solver's temperature is at most 0.5
(so pruning has something to find) and logs every call it is actually sent
to ``DIR/calls.log``: a cache hit never reaches it, so a key logged twice
was billed twice.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from pathlib import Path

from metasearch.llm.types import LLMRequest
from metasearch.search.optuna import OptunaSettings, OptunaStrategy, open_study
from metasearch.search.spaces import load_space
from metasearch.testing.campaigns import TOY_TASKS, ScriptedModel, close_campaign, toy_campaign

SPACE = """
[space]
name = "toy"
description = "Chain-of-Thought or Step-back, at one of two temperatures"

[blocks]
answerer = { kind = "categorical", choices = ["chain_of_thought", "step_back"] }
ensemble = "none"
refine_rounds = 0
role_assignment = "none"

[roles.solver]
temperature = { kind = "categorical", choices = [0.1, 0.9] }
"""


class ColdModel(ScriptedModel):
    """Right when the temperature is <= 0.5; logs each call it is sent."""

    def __init__(self, log: Path | None = None, delay_s: float = 0.0) -> None:
        super().__init__()
        self.log, self.delay_s = log, delay_s
        self._file_lock = threading.Lock()

    def __call__(self, req: LLMRequest) -> str:
        with self._lock:
            self.requests.append(req)
        text = "\n".join(m["content"] for m in req.messages)
        if self.log is not None:
            key = hashlib.sha256(f"{text}|{req.temperature}|{req.sample_index}".encode())
            with self._file_lock, self.log.open("a") as f:
                f.write(json.dumps({"key": key.hexdigest(), "candidate": req.candidate}) + "\n")
        if self.delay_s:
            time.sleep(self.delay_s)
        task = next((t for t in TOY_TASKS if t.question in text), None)
        if task is None:
            return "## thinking\nok\n\n## answer\n0"
        gold = int(task.answer)
        right = req.temperature <= 0.5
        return f"## thinking\nI add them.\n\n## answer\n{gold if right else gold + 1}"


def settings() -> OptunaSettings:
    return OptunaSettings(space="toy.toml", width=3, seed=3, startup_trials=3, min_tasks=2)


def run(directory: Path, model: ScriptedModel, *, parallel: int = 1, generations: int = 3,
        opt: OptunaSettings | None = None, **kw):
    space_file = directory.parent / "toy.toml"
    if not space_file.exists():
        space_file.write_text(SPACE)
    opt = (opt or settings()).model_copy(update={"space": str(space_file)})
    space = load_space(opt.space)
    directory.mkdir(parents=True, exist_ok=True)

    def make(gateway, parallel):
        return OptunaStrategy(space=space, study=open_study(directory, opt, space),
                              settings=opt, generations=generations)

    campaign = toy_campaign(directory, model, make, parallel=parallel, pruning=True, val=12,
                            test=4, **kw)
    try:
        return campaign.run(), campaign.strategy
    finally:
        close_campaign(campaign)


if __name__ == "__main__":
    d = Path(sys.argv[1])
    delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    par = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    d.mkdir(parents=True, exist_ok=True)
    run(d, ColdModel(d / "calls.log", delay), parallel=par)
