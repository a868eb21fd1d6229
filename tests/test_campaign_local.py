"""A real campaign with the embedded local models, built by ``build_campaign`` from a config.

1 seed, 1 generation, 2 validation and 2 test tasks, no reflexion, small
``max_tokens``. Both honest outcomes of the generated candidate are
accepted: valid and evaluated, or invalid with a reason.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

CONFIG = """
[suite]
name = "arith"
n_val = 2
n_test = 2
seed = 0
difficulty = 1

[models.meta]
model = "local/qwen2.5-coder-1.5b"
temperature = 0.8
max_tokens = 600

[models.task]
model = "local/qwen2.5-coder-0.5b"
temperature = 0.0
max_tokens = 96

[search]
generations = 1
reflexion_rounds = 0
repair_rounds = 1
debug_rounds = 0
seeds = ["chain_of_thought"]
archive_context = 1

[pruning]
enabled = false

[run]
concurrency = 2
sandbox = "auto"
task_timeout_s = 300  # two local servers share 2 cores; a loaded machine needs the room
candidate_timeout_s = 300

[local]
n_parallel = 2
"""


@pytest.fixture()
def keep_stdout():
    """``build_gateway`` diverts fd 1 to llama.cpp's log file for the rest of the process
    (meant for the CLI); give pytest its stdout back afterwards."""
    saved_fd, saved_stream = os.dup(1), sys.stdout
    yield
    sys.stdout.flush()
    os.dup2(saved_fd, 1)
    os.close(saved_fd)
    sys.stdout = saved_stream


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_real_local_campaign_one_generation(tmp_path, keep_stdout):
    pytest.importorskip("xllamacpp")
    from metasearch.campaign.build import build_campaign, close_campaign
    from metasearch.config import load_config
    from metasearch.store.tracking import default_tracking_uri, read_campaign

    path = tmp_path / "local.toml"
    path.write_text(CONFIG)
    out = tmp_path / "campaign"
    cfg = load_config(path, {"run.out": str(out)})
    start = time.monotonic()
    campaign = build_campaign(cfg, config_text=CONFIG)
    try:
        result = campaign.run()
    finally:
        close_campaign(campaign)
    print(f"local campaign: {time.monotonic() - start:.0f} s, "
          f"{sum(r.calls for r in result.records)} calls, yield {result.yield_counts}")

    assert not result.stopped
    ids = [r.id for r in result.records]
    assert ids == ["seed-chain_of_thought", "g001-00"]
    seed, gen = result.records
    assert seed.status == "ok" and seed.val is not None and seed.val.n == 2
    assert seed.test is not None and seed.test.n == 2  # the seeds are always tested
    assert gen.generation == 1
    if gen.status == "invalid":
        assert gen.reason and gen.val is None
    else:
        assert gen.status in ("ok", "failed", "timeout") and gen.val is not None
        assert (out / gen.code_path).is_file()
    assert (out / "transcripts" / "g001-00.md").is_file()
    assert result.yield_counts["proposed"] == 1
    assert (out / "report.md").is_file() and (out / "config.toml").read_text() == CONFIG

    data = read_campaign(default_tracking_uri(out), out.name)
    rows = {row.id: row for row in data.candidates}
    assert sorted(rows) == sorted(ids)
    assert rows["g001-00"].status == gen.status
    assert rows["seed-chain_of_thought"].metrics["val_score"] == pytest.approx(seed.val.mean)
    assert data.params["search.generations"] == "1"
