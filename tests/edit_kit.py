"""A toy campaign of an edit strategy in a child process, for the kill -9 tests.

    python tests/edit_kit.py STRATEGY DIR [DELAY_S] [PARALLEL]

Both models are scripted (the meta model by ``test_strategy_contract.edit_reply``)
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
from test_strategy_contract import EDIT_STRATEGIES, edit_reply  # noqa: E402

from metasearch.llm.types import LLMRequest  # noqa: E402
from metasearch.testing.campaigns import ScriptedModel, close_campaign, toy_campaign  # noqa: E402


class LoggedModel(ScriptedModel):
    """The scripted model ``reply`` (default ``edit_reply``), logging every call it answers."""

    def __init__(self, log: Path, delay_s: float, reply=edit_reply) -> None:
        super().__init__(reply)
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


def run(strategy: str, directory: Path, delay_s: float = 0.0, parallel: int = 1):
    directory.mkdir(parents=True, exist_ok=True)
    campaign = toy_campaign(directory, LoggedModel(directory / "calls.log", delay_s),
                            EDIT_STRATEGIES[strategy], parallel=parallel, pruning=True)
    try:
        return campaign.run()
    finally:
        close_campaign(campaign)


if __name__ == "__main__":
    run(sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 0.0,
        int(sys.argv[4]) if len(sys.argv) > 4 else 1)
