"""A toy hybrid campaign in a child process, for the kill -9 tests.

    python tests/hybrid_kit.py DIR [DELAY_S] [PARALLEL]

Both models are scripted (the meta model by ``test_hybrid_strategy.hybrid_reply``)
and every call actually sent is logged to ``DIR/calls.log``: a cache hit
never reaches the model, so a key logged twice was billed twice.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from edit_kit import LoggedModel  # noqa: E402
from test_hybrid_strategy import hybrid, hybrid_reply  # noqa: E402

from metasearch.testing.campaigns import close_campaign, toy_campaign  # noqa: E402


def run(directory: Path, delay_s: float = 0.0, parallel: int = 1):
    directory.mkdir(parents=True, exist_ok=True)
    campaign = toy_campaign(directory, LoggedModel(directory / "calls.log", delay_s, hybrid_reply),
                            lambda gw, _n: hybrid(directory, gw, generations=2, trials=3), parallel=parallel,
                            pruning=True)
    try:
        return campaign.run()
    finally:
        close_campaign(campaign)


if __name__ == "__main__":
    run(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0,
        int(sys.argv[3]) if len(sys.argv) > 3 else 1)
