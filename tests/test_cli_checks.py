"""Every CLI value is checked before any work starts, with one paragraph naming the option.

Numbers go through the rule of the config field they stand for (``eval
--concurrency`` is ``run.concurrency``), so the command line and a config file
accept the same values. Output paths are probed without creating anything.
Runs in-process with Typer's CliRunner: a check that let a value through would
start real work (a sandbox, a model), which these tests would notice by
hanging or by a traceback.

"Not writable" uses paths that even root cannot create: under ``/proc``, and
under a regular file used as a parent. A chmod'ed directory is tried too,
skipped when running as root (root writes through any mode bits).
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metasearch.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
COT = str(ROOT / "archive" / "chain_of_thought.py")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=True)


def assert_clean_error(result, *needles: str) -> str:
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError("".join(traceback.format_exception(result.exception)))
    assert result.exit_code != 0
    text = " ".join(result.output.split())
    assert "Traceback" not in text
    for needle in needles:
        assert needle in text, (needle, text)
    return text


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "c.toml"
    path.write_text('[suite]\nname = "arith"\n[run]\nsandbox = "none"\n')
    return path


EVAL_BAD = [
    ("--concurrency", "0", "run.concurrency", "an integer from 1 to 1024"),
    ("--concurrency", "1025", "run.concurrency", "an integer from 1 to 1024"),
    ("--max-tokens", "0", "models.task.max_tokens", "an integer >= 1"),
    ("--n-val", "0", "suite.n_val", "an integer >= 1"),
    ("--n-val", "100001", "suite.n_val", "an integer >= 1"),
    ("--difficulty", "0", "suite.difficulty", "an integer 1-5"),
    ("--difficulty", "6", "suite.difficulty", "an integer 1-5"),
    ("--task-timeout", "0.0", "run.task_timeout_s", "a number > 0"),
    ("--task-timeout", "-1.5", "run.task_timeout_s", "a number > 0"),
    ("--seed", "-1", "suite.seed", "an integer >= 0"),
    ("--protocol", "nope", "models.task.protocol", "input should be 'auto', 'json' or 'sections'"),
    ("--limit", "0", "", "an integer >= 1"),
    ("--limit", "-3", "", "an integer >= 1"),
    ("--memory-mb", "100", "sandbox.memory_mb", "an integer from 512 to 1048576"),
    ("--max-pids", "8", "sandbox.max_pids", "an integer from 16 to 65536"),
]


def test_eval_hands_its_sandbox_limits_to_the_bench(monkeypatch, tmp_path):
    """--memory-mb and --max-pids reach the sandbox as a campaign's [sandbox] does."""
    import contextlib

    from metasearch import api

    seen: dict = {}

    @contextlib.contextmanager
    def fake_bench(_suite, **kw):
        seen.update(kw)
        raise RuntimeError("stop here")
        yield

    monkeypatch.setattr("metasearch.campaign.build.build_bench", fake_bench)
    with pytest.raises(RuntimeError, match="stop here"):
        api.evaluate(COT, limit=1, memory_mb=768, max_pids=64, cache_dir=tmp_path)
    assert (seen["memory_mb"], seen["max_pids"]) == (768, 64)


@pytest.mark.parametrize(("option", "value", "field", "fix"), EVAL_BAD)
def test_eval_numbers_at_their_bounds(tmp_path, option, value, field, fix):
    text = assert_clean_error(invoke("eval", COT, option, value, "--cache-dir", str(tmp_path)),
                              f"{option} {value} is invalid", f"Give {option}", fix)
    if field:
        assert f"the same rule as the config field {field}" in text


@pytest.mark.parametrize(("flag", "value", "field"), [
    ("--generations", "-1", "search.generations"),
    ("--budget-usd", "-1", "budget.max_usd"),
])
def test_run_numbers_are_config_fields(tmp_path, cfg, flag, value, field):
    assert_clean_error(invoke("run", str(cfg), flag, value, "--out", str(tmp_path / "o")),
                       field, value)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("port", ["0", "65536", "-5"])
def test_ui_port_at_its_bounds(tmp_path, port):
    assert_clean_error(invoke("ui", str(tmp_path), "--port", port),
                       f"--port {port} is invalid", "a TCP port, an integer from 1 to 65535")


def unwritable_dirs(tmp_path: Path) -> list[tuple[Path, str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    return [
        (a_file, "is a file, not a directory"),
        (a_file / "sub" / "dir", f"cannot be created: {a_file} is a file"),
        (Path("/proc/metasearch-no-such/out"), "cannot be created in /proc"),  # even for root
    ]


def test_run_out_that_is_a_file_or_cannot_be_created(tmp_path, cfg):
    for path, needle in unwritable_dirs(tmp_path):
        text = assert_clean_error(invoke("run", str(cfg), "--out", str(path)), "--out", needle)
        assert "Give --out a directory" in text or "Give --out a path" in text, text


def test_run_out_from_the_config_file_is_named_as_the_field(tmp_path):
    (tmp_path / "a-file").write_text("x")
    path = tmp_path / "c.toml"
    path.write_text(f'[run]\nout = "{tmp_path / "a-file"}"\n')
    assert_clean_error(invoke("run", str(path)), f"run.out of {path}", "is a file")


def test_eval_cache_dir_and_import_into_are_checked_the_same_way(tmp_path):
    adas = tmp_path / "a.json"
    adas.write_text("[]")
    for path, needle in unwritable_dirs(tmp_path):
        assert_clean_error(invoke("eval", COT, "--cache-dir", str(path)), "--cache-dir", needle)
        assert_clean_error(invoke("archive", "import", str(adas), "--into", str(path)),
                           "--into", needle)


def test_output_files_of_export_and_compare(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for args, opt in [(["export", str(tmp_path), "--format", "py", "--out"], "--out"),
                      (["compare", str(tmp_path), "--plot"], "--plot")]:
        assert_clean_error(invoke(*args, str(tmp_path)), f"{opt} {tmp_path} is a directory")
        assert_clean_error(invoke(*args, str(a_file / "x.png")), f"{a_file} is a file")
        assert_clean_error(invoke(*args, "/proc/metasearch-no-such/x.png"),
                           "cannot be written in /proc")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any mode bits; /proc covers it")
def test_a_read_only_directory_is_not_writable(tmp_path, cfg):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert_clean_error(invoke("run", str(cfg), "--out", str(ro)), "is not writable")
        assert_clean_error(invoke("run", str(cfg), "--out", str(ro / "new")), "cannot be created")
    finally:
        ro.chmod(0o700)
