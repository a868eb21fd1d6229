"""Cgroup limits through the real CLI: ``metasearch run`` with a ``[sandbox]`` table, where the
meta model writes a valid agent whose ``run_python`` children together go over
``sandbox.memory_mb``. That candidate is recorded ``failed`` with a "memory limit" reason, the
seed beside it stays ``ok``, and the campaign finishes with its final test.

The models are the fake OpenAI-compatible server of ``test_campaign_resume_cli``. Needs root,
a jail and cgroups (skipped, with the reason, elsewhere).
"""

from __future__ import annotations

import json
import os
import sys

import pytest
from test_campaign_resume_cli import config_text, start
from test_cgroups import MEMORY_HOG

from metasearch.execution.sandbox import cgroups
from metasearch.execution.sandbox.launch import probe
from metasearch.testing.fake_openai import FakeOpenAIServer, Reply

FOUND, WHY = cgroups.worker_cgroups(1024, 64) if os.geteuid() == 0 else (None, "not root")
pytestmark = pytest.mark.skipif(FOUND is None, reason=f"no cgroups here: {WHY}")


def respond(body: dict) -> Reply:
    if body.get("model") == "meta":
        return Reply(text="## thought\nFour programs at once.\n\n## name\nWide\n\n"
                          f"## code\n```python\n{MEMORY_HOG.strip()}\n```\n")
    return Reply(text="## thinking\nI add.\n\n## answer\n4")


def test_a_campaign_records_the_memory_breach_and_goes_on(tmp_path):
    if probe("bwrap", sys.executable, 60000) is not None:
        pytest.skip("the bwrap sandbox does not work here")
    with FakeOpenAIServer(respond=respond) as server:
        text = config_text(server.url).replace('sandbox = "none"', 'sandbox = "bwrap"')
        text += "[sandbox]\nmemory_mb = 512\nmax_pids = 64\n"
        cfg = tmp_path / "c.toml"
        cfg.write_text(text)
        proc = start(cfg, tmp_path / "out", "--generations", "1")
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "cgroups are not available" not in err
    rows = [json.loads(line) for line in (tmp_path / "out" / "archive.jsonl").read_text()
            .splitlines()]
    cands = {r["id"]: r for r in rows if r.get("kind", "candidate") == "candidate"}
    assert cands["seed-chain_of_thought"]["status"] == "ok"
    hog = cands["g001-00"]
    assert hog["status"] == "failed", hog
    assert "memory limit" in hog["reason"] and "512 MB (sandbox.memory_mb)" in hog["reason"]
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert (config["sandbox.memory_mb"], config["sandbox.max_pids"]) == ("512", "64")
    assert (tmp_path / "out" / "report.md").is_file()
    mine = f"{cgroups.PREFIX}{proc.pid}-"
    left = [d.name for parent in {FOUND.memory_parent, FOUND.pids_parent}
            for d in parent.iterdir() if d.name.startswith(mine)]
    assert left == []  # the campaign's worker cgroups went with its workers
