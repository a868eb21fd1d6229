"""A toy hybrid campaign in a child process, for the kill -9 tests.

    python tests/hybrid_kit.py DIR [DELAY_S] [PARALLEL]

Both models are scripted (the meta model by ``test_hybrid_strategy.hybrid_reply``)
and every call actually sent is logged to ``DIR/calls.log``: a cache hit
never reaches the model, so a key logged twice was billed twice.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from test_hybrid_strategy import hybrid, hybrid_reply  # noqa: E402

from metasearch.llm.types import LLMRequest  # noqa: E402
from metasearch.testing.campaigns import ScriptedModel, close_campaign, toy_campaign  # noqa: E402


class LoggedModel(ScriptedModel):
    def __init__(self, log: Path, delay_s: float) -> None:
        super().__init__(hybrid_reply)
        self.log, self.delay_s = log, delay_s
        self._file_lock = threading.Lock()

    def __call__(self, req: LLMRequest) -> str:
        text = "\n".join(m["content"] for m in req.messages)
        key = hashlib.sha256(f"{text}|{req.temperature}|{req.sample_index}".encode())
        with self._file_lock, self.log.open("a") as f:
            f.write(json.dumps({"key": key.hexdigest(), "candidate": req.candidate}) + "\n")
        if self.delay_s:
            time.sleep(self.delay_s)
        return super().__call__(req)


def run(directory: Path, delay_s: float = 0.0, parallel: int = 1):
    directory.mkdir(parents=True, exist_ok=True)
    campaign = toy_campaign(directory, LoggedModel(directory / "calls.log", delay_s),
                            lambda gw, _n: hybrid(directory, gw, generations=2, trials=3), parallel=parallel,
                            pruning=True)
    try:
        return campaign.run()
    finally:
        close_campaign(campaign)


if __name__ == "__main__":
    run(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0,
        int(sys.argv[3]) if len(sys.argv) > 3 else 1)
