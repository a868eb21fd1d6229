"""``metasearch run --resume`` is safe to script: a requeued job always passes it.

The campaign runs through the real CLI in a child process, its models on a
fake OpenAI-compatible server in this process (so the server outlives every
kill). ``--resume`` on a directory without records starts the campaign and
says so in one line; a directory holding a different campaign still refuses;
and a loop of starts killed with SIGKILL at random early moments (from the
first second: during imports, before config.json, before the first record),
each followed by ``--resume``, ends with the same records as an unkilled run,
no duplicate ids and valid JSONL.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metasearch.testing.campaigns import toy_agent
from metasearch.testing.fake_openai import FakeOpenAIServer, Reply

ROOT = Path(__file__).resolve().parent.parent
ENV = os.environ | {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "OPENAI_API_KEY": "sk-fake"}


def respond(body: dict) -> Reply:
    """The meta model proposes a two-pass agent (its wording keyed by the prompt); tasks get 4."""
    if body.get("model") == "meta":
        tag = hashlib.sha256(json.dumps(body["messages"]).encode()).hexdigest()[:6]
        code = toy_agent(calls=2, instruction=f"Solve it carefully ({tag}).")
        return Reply(text=f"## thought\nTwo passes.\n\n## name\nTwo Pass {tag}\n\n"
                          f"## code\n```python\n{code}```\n")
    return Reply(text="## thinking\nI add.\n\n## answer\n4")


def config_text(url: str, *, n_val: int = 2) -> str:
    return f"""
[suite]
name = "arith"
n_val = {n_val}
n_test = 2
[models.meta]
model = "openai/meta"
api_base = "{url}"
protocol = "sections"
[models.task]
model = "openai/task"
api_base = "{url}"
protocol = "sections"
[search]
generations = 2
seeds = ["chain_of_thought"]
[search.adas]
reflexion_rounds = 0
repair_rounds = 0
debug_rounds = 0
[pruning]
enabled = false
[run]
sandbox = "none"
"""


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer(respond=respond) as s:
        yield s


def start(cfg: Path, out: Path, *extra: str) -> subprocess.Popen:
    # its own session, so a kill takes the whole job (workers included), as a scheduler does
    return subprocess.Popen(
        [sys.executable, "-m", "metasearch.cli.app", "run", str(cfg), "--out", str(out), *extra],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=300)
    return proc.returncode, " ".join(err.split())


def records(out: Path) -> list[tuple[str, str]]:
    """(id, status) of every candidate line; every line must be valid JSON."""
    lines = (out / "archive.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]  # valid JSONL: raises on a torn line
    return [(r["id"], r["status"]) for r in rows if r.get("kind", "candidate") == "candidate"]


@pytest.fixture(scope="module")
def reference(server, tmp_path_factory) -> list[tuple[str, str]]:
    d = tmp_path_factory.mktemp("reference")
    cfg = d / "c.toml"
    cfg.write_text(config_text(server.url))
    code, err = finish(start(cfg, d / "out"))
    assert code == 0, err
    rows = records(d / "out")
    assert [r[0] for r in rows] == ["seed-chain_of_thought", "g001-00", "g002-00"], rows
    return rows


def test_resume_on_a_directory_that_does_not_exist_starts_and_says_so(server, tmp_path,
                                                                     reference):
    cfg = tmp_path / "c.toml"
    cfg.write_text(config_text(server.url))
    code, err = finish(start(cfg, tmp_path / "new" / "out", "--resume"))
    assert code == 0, err
    assert "holds no records yet, so the campaign starts from the beginning" in err
    assert "Traceback" not in err
    assert records(tmp_path / "new" / "out") == reference


def test_resume_after_a_kill_before_the_first_record_starts(server, tmp_path, reference):
    """What a kill before the first record leaves: config.json, the cache, an empty archive."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(config_text(server.url))
    out = tmp_path / "out"
    (out / "cache").mkdir(parents=True)
    (out / "archive.jsonl").write_text("")
    subprocess.run([sys.executable, "-c", (
        "import json, sys; from metasearch.config import load_config; "
        "c = load_config(sys.argv[1], {'run.out': sys.argv[2]}); "
        "open(sys.argv[2] + '/config.json', 'w').write(json.dumps(c.to_flat_params()))"),
        str(cfg), str(out)], check=True, cwd=ROOT, env=ENV)
    code, err = finish(start(cfg, out, "--resume"))
    assert code == 0, err
    assert "holds no records yet" in err
    assert records(out) == reference


def test_resume_on_a_different_campaign_without_records_still_refuses(server, tmp_path):
    out = tmp_path / "out"
    other = tmp_path / "other.toml"
    other.write_text(config_text(server.url, n_val=3))  # another validation split
    proc = start(other, out)
    deadline = time.monotonic() + 120
    while not (out / "config.json").is_file():  # killed once config.json is written
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (out / "archive.jsonl").write_text("")  # no records, whatever the kill left
    cfg = tmp_path / "c.toml"
    cfg.write_text(config_text(server.url))
    code, err = finish(start(cfg, out, "--resume"))
    assert code != 0 and "Traceback" not in err
    assert "Cannot resume the campaign" in err and "suite.n_val was '3', now '2'" in err, err
    assert records(out) == []


def test_kill_9_at_random_early_moments_then_resume_in_a_loop(server, tmp_path, reference):
    cfg = tmp_path / "c.toml"
    cfg.write_text(config_text(server.url))
    out = tmp_path / "out"
    rng = random.Random(15)
    # the first kill inside the first second (imports, config.json), later ones a bit later
    delays = [rng.uniform(0.0, 1.0)] + [rng.uniform(0.5, 10.0) for _ in range(3)]
    finished = False
    for delay in delays:
        proc = start(cfg, out, "--resume")
        time.sleep(delay)
        if proc.poll() is not None:  # it finished (or failed) before the kill
            code, err = finish(proc)
            assert code == 0, (delay, err)
            finished = True
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    if not finished:
        code, err = finish(start(cfg, out, "--resume"))
        assert code == 0, (delays, err)
    rows = records(out)
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), ids
    assert rows == reference, delays


def test_sigterm_stops_like_ctrl_c_and_resume_finishes_the_same_campaign(
        server, tmp_path, reference):
    """A scheduler preempting the job sends SIGTERM: one line, exit 143, nothing lost."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(config_text(server.url))
    out = tmp_path / "out"
    proc = start(cfg, out)
    deadline = time.monotonic() + 120
    while not (out / "archive.jsonl").is_file() or not records(out):  # the seed's record
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # to the campaign's process only, as `kill PID` does
    code, err = finish(proc)
    assert code == 143, err
    assert "terminated (SIGTERM); everything completed so far is saved" in err
    assert "Traceback" not in err
    with sqlite3.connect(out / "mlflow.db") as db:  # the campaign's run is not left RUNNING
        parents = [row[0] for row in db.execute(
            "SELECT status FROM runs WHERE run_uuid NOT IN "
            "(SELECT run_uuid FROM tags WHERE key = 'mlflow.parentRunId')")]
    assert parents == ["KILLED"], parents
    code, err = finish(start(cfg, out, "--resume"))
    assert code == 0, err
    assert records(out) == reference
