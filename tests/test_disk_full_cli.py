"""A campaign whose directory fills up: one paragraph, a valid archive, then ``--resume``.

Each test runs ``metasearch run`` in a child process with its campaign
directory on a small tmpfs (mounted here, so it needs root, as CI has; it
skips elsewhere), its models on the fake OpenAI-compatible server of
``test_campaign_resume_cli``. One campaign meets a full disk three times:
at start-up (the tmpfs is full before it starts), at a sandboxed agent's
reply (the server fills the tmpfs with a ballast file just before it
answers, so the reply's response-cache write finds no room), and in the
MLflow store (40 KiB left at the next meta reply: the cache, the side files
and the archive lines fit, MLflow's candidate run does not). The archive
append cut mid-line and a side file are tested on a tmpfs in
``test_disk_full``, in this process. Each run must stop with
the disk-full paragraph (exit 4) and no traceback, and leave valid JSONL
with no duplicate ids; after a remount with more room, the next
``--resume`` goes on, and the last one ends with the same records as a run
that never filled up, and one complete MLflow run per candidate. That
reference run is the sandbox notice's test as well: it runs in ``auto`` mode
with bubblewrap's probe made to fail, so it must fall back to ``unshare`` and
say so in one line (the records do not depend on the jail).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from test_campaign_kit import candidate_runs
from test_campaign_resume_cli import ENV, ROOT, config_text, respond, start
from tmpfs_kit import fill, grow, tmpfs

from metasearch.store.archive import Archive

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

BIG_KB = 8 * 1024  # room for the whole campaign (it needs about 1.5 MB)


class Filler:
    """``respond``, but the first call ``when`` picks after :meth:`arm` fills the disk first."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.when: Callable[[dict], bool] | None = None
        self.leave = 0
        self.lock = threading.Lock()

    def arm(self, when: Callable[[dict], bool], leave: int = 0) -> None:
        self.when, self.leave = when, leave

    @property
    def fired(self) -> bool:
        return self.when is None

    def __call__(self, body: dict):
        with self.lock:
            if self.when is not None and self.when(body):
                fill(self.root, self.leave)
                self.when = None
        return respond(body)


def run(cfg: Path, out: Path, *extra: str) -> tuple[int, str]:
    proc = start(cfg, out, *extra)
    stdout, stderr = proc.communicate(timeout=300)
    return proc.returncode, " ".join((stdout + "\n" + stderr).split())


def summary(out: Path) -> list[tuple]:
    """Every line is valid JSON and no id repeats; the records as the archive loads them."""
    if not (out / "archive.jsonl").is_file():
        return []
    lines = (out / "archive.jsonl").read_bytes().decode("utf-8").splitlines()
    rows = [json.loads(line) for line in lines]  # raises on a torn or corrupt line
    ids = [r["id"] for r in rows if r.get("kind") == "candidate"]
    assert len(ids) == len(set(ids)), ids
    with Archive.open(out, readonly=True) as arc:
        return [(r.id, r.name, r.status, r.calls, r.val and (r.val.mean, r.val.n),
                 r.test and (r.test.mean, r.test.n)) for r in arc.records()]


#: ``metasearch run``, with bubblewrap's probe made to fail, so ``auto`` must fall back
FALLBACK = (
    "import sys; from metasearch.execution.sandbox import pool; real = pool.probe; "
    "pool.probe = lambda m, py, uid: 'fake failure' if m == 'bwrap' else real(m, py, uid); "
    "from metasearch.cli.app import app; sys.argv[0] = 'metasearch'; app()")


@pytest.fixture(scope="module")
def fallback_run(tmp_path_factory) -> tuple[list[tuple], str]:
    """The same campaign on a disk with room (its records: what every resumed run must end
    with), run in ``auto`` mode with bubblewrap failing, so it uses ``unshare``; and its output."""
    import sys

    from metasearch.execution.sandbox import pool
    from metasearch.testing.fake_openai import FakeOpenAIServer

    if pool.probe("unshare", sys.executable, 60000) is not None:
        pytest.skip("the unshare sandbox does not work here (needs root and util-linux)")
    d = tmp_path_factory.mktemp("room")
    with FakeOpenAIServer(respond=respond) as server:
        cfg = d / "c.toml"
        cfg.write_text(config_text(server.url).replace('sandbox = "none"', 'sandbox = "auto"'))
        proc = subprocess.run([sys.executable, "-c", FALLBACK, "run", str(cfg), "--out",
                               str(d / "out")], cwd=ROOT, env=ENV, capture_output=True,
                              text=True, timeout=300)
    err = " ".join((proc.stdout + "\n" + proc.stderr).split())
    assert proc.returncode == 0, err
    rows = summary(d / "out")
    assert [r[0] for r in rows] == ["seed-chain_of_thought", "g001-00", "g002-00"], rows
    return rows, err


@pytest.fixture(scope="module")
def reference(fallback_run) -> list[tuple]:
    return fallback_run[0]


def test_run_says_in_one_line_when_it_must_use_a_weaker_sandbox(fallback_run):
    err = fallback_run[1]
    assert "notice: bubblewrap does not work here (bwrap: fake failure); using the 'unshare' " \
           "sandbox, whose file-system isolation is weaker. `metasearch doctor` says what is " \
           "missing" in err, err
    assert err.count("notice: bubblewrap") == 1 and "SandboxWarning" not in err, err
    assert "Traceback" not in err, err


def meta_call(body: dict) -> bool:
    return body.get("model") == "meta"


def generated_task_call(body: dict) -> bool:
    """A task call of a generated agent (the seed's prompts do not say "carefully")."""
    return body.get("model") != "meta" and "Solve it carefully" in json.dumps(body["messages"])


#: Where the disk fills, in the order one campaign meets them: (the call that fills it,
#: bytes left, what the message must name). "start" fills it before the first run.
#: (The meta agent's reply meeting a full cache is tested in this process, cheaper, in
#: test_disk_full; each point here costs a CLI start.)
POINTS = [
    ("start", None, 0, ""),  # config.toml, or the cache or MLflow store being created
    ("a sandboxed agent's reply cache write", generated_task_call, 0, "cache"),
    # 16 KiB left here runs out in the cache, 32-64 KiB in MLflow, 96 KiB in the final test
    ("the MLflow store, 40 KiB after the next meta reply", meta_call, 40 * 1024, "MLflow"),
]


def test_a_full_disk_stops_the_campaign_cleanly_and_resume_finishes_it(reference, tmp_path):
    """One campaign fills its disk at each point in turn; each time it stops with the
    paragraph, leaves a valid archive, and the next ``--resume`` (after a remount with
    more room) goes on from there, until one finishes with the reference's records."""
    from metasearch.testing.fake_openai import FakeOpenAIServer

    size = BIG_KB
    named = []
    with tmpfs(tmp_path / "disk", size) as disk:
        out = disk / "out"
        filler = Filler(disk)
        with FakeOpenAIServer(respond=filler) as server:
            cfg = tmp_path / "c.toml"
            cfg.write_text(config_text(server.url))
            for label, when, leave, names in POINTS:
                if when is None:
                    fill(disk, leave)
                else:
                    filler.arm(when, leave)
                code, err = run(cfg, out, "--resume")
                assert filler.fired, f"{label}: the call that fills the disk never came"
                assert code == 4, (label, err)
                assert "Traceback" not in err and "torn" not in err, (label, err)
                assert f"The campaign directory {out} ran out of disk space while writing" \
                    in err, (label, err)
                what = err.split("while writing ", 1)[1].split(" (", 1)[0]
                assert names in what, (label, err)
                named.append(what)
                assert "run the same command with --resume" in err, (label, err)
                partial = summary(out)  # valid JSONL, no duplicate ids, loads
                before_test = [r[:-1] for r in reference[:len(partial)]]  # test comes last
                assert [r[:-1] for r in partial] == before_test, (label, partial)
                size += BIG_KB
                grow(disk, size)
            code, err = run(cfg, out, "--resume")
            assert code == 0, err
            assert "Traceback" not in err and "torn" not in err, err
        assert summary(out) == reference
        runs = candidate_runs(f"sqlite:///{out / 'mlflow.db'}", out.name)
        ids = sorted(r.data.tags["metasearch.candidate_id"] for r in runs)
        assert ids == sorted(r[0] for r in reference), ids  # one complete run each
    print("disk-full points named:", named)
