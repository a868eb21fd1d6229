"""``metasearch run`` with ``strategy = "optuna"`` on the embedded 0.5B model, from the CLI.

Real model, real sandbox, real Optuna journal storage and MLflow store: a
tiny space (Chain-of-Thought or Program-of-Thought, two temperatures), one
seed, one generation of one trial on two validation tasks (evaluated a task
at a time, through the pruning seam); then ``--resume --generations 2`` adds
a trial to the same study. Kept small: it runs in CI on two cores.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SPACE = """
[space]
name = "tiny"
description = "Chain-of-Thought or Program-of-Thought at one of two temperatures"

[blocks]
answerer = { kind = "categorical", choices = ["chain_of_thought", "program_of_thought"] }
ensemble = "none"
refine_rounds = 0
role_assignment = "none"

[roles.solver]
temperature = { kind = "categorical", choices = [0.0, 0.8] }
max_tokens = 128

[roles.coder]
temperature = 0.0
"""

CONFIG = """
[suite]
name = "arith"
n_val = 2
n_test = 1
seed = 0
difficulty = 1

[models.task]
model = "local/qwen2.5-coder-0.5b"
temperature = 0.0
max_tokens = 128

[search]
strategy = "optuna"
generations = 1
seeds = ["chain_of_thought"]

[search.optuna]
space = "{space}"
width = 1
startup_trials = 1
min_tasks = 2

[pruning]
enabled = true
minibatch = 1

[run]
concurrency = 2
sandbox = "auto"
out = "{out}"
task_timeout_s = 300
candidate_timeout_s = 900

[local]
n_parallel = 2
"""


def metasearch(*args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "metasearch.cli.app", *args], env=env,
                          capture_output=True, text=True, timeout=1500)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_optuna_campaign_on_the_local_model_from_the_cli(tmp_path):
    pytest.importorskip("xllamacpp")
    import optuna
    from optuna.trial import TrialState

    from metasearch.search.optuna.storage import open_storage, read_location
    from metasearch.store.archive import Archive
    from metasearch.store.tracking import default_tracking_uri, read_campaign

    space, out = tmp_path / "tiny.toml", tmp_path / "campaign"
    space.write_text(SPACE)
    config = tmp_path / "optuna.toml"
    config.write_text(CONFIG.format(space=space, out=out))
    done = metasearch("run", str(config))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    with Archive.open(out, readonly=True) as archive:
        records = archive.records()
    assert [r.id for r in records] == ["seed-chain_of_thought", "g001-00"]
    trials = [r for r in records if not r.is_seed]
    for r in trials:
        assert r.strategy == "optuna" and r.status in ("ok", "pruned", "failed", "timeout")
        assert set(r.meta["params"]) == {"blocks.answerer", "roles.solver.temperature"} or \
            set(r.meta["params"]) == {"blocks.answerer"}  # PoT's solver has no temperature knob
    loc = read_location(out)
    assert loc.storage == str(out / "optuna.journal")
    study = optuna.load_study(study_name=loc.study, storage=open_storage(loc.storage))
    assert [t.user_attrs["candidate_id"] for t in study.trials] == ["g001-00"]
    for t, r in zip(study.trials, trials, strict=True):
        assert t.state == (TrialState.PRUNED if r.status == "pruned" else TrialState.COMPLETE)
        assert t.params == r.meta["params"]
    data = read_campaign(default_tracking_uri(out), out.name)
    rows = {row.id: row for row in data.candidates}
    assert rows["g001-00"].params["param.blocks.answerer"] == trials[0].meta["params"][
        "blocks.answerer"]
    report = (out / "report.md").read_text()
    assert "Validation score against cost" in report

    more = metasearch("run", str(config), "--resume", "--generations", "2")
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    study = optuna.load_study(study_name=loc.study, storage=open_storage(loc.storage))
    assert [t.user_attrs["candidate_id"] for t in study.trials] == ["g001-00", "g002-00"]
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
