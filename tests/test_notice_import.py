"""``archive import --evaluate`` shows the sandbox's fallback as the same one-line notice.

``run`` and ``eval`` are tested with a real fallback (``test_disk_full_cli``,
``test_doctor``); here the evaluator's builder is replaced by one that warns as
the sandbox pool does, so the test checks the command's wiring in this process.
"""

from __future__ import annotations

import warnings

from typer.testing import CliRunner

import metasearch.cli.archive_import as archive_import
from metasearch.cli.app import app
from metasearch.execution.sandbox import SandboxWarning

FALLBACK = ("bubblewrap does not work here (bwrap: fake failure); using the 'unshare' sandbox, "
            "whose file-system isolation is weaker.")


def test_archive_import_evaluate_shows_the_sandbox_fallback_as_a_notice(tmp_path, monkeypatch):
    def build(*_args, **_kw):
        warnings.warn(FALLBACK, SandboxWarning, stacklevel=2)
        return None

    monkeypatch.setattr(archive_import, "_build_evaluator", build)
    adas = tmp_path / "a.json"
    adas.write_text("[]")
    res = CliRunner().invoke(app, ["archive", "import", str(adas), "--into",
                                   str(tmp_path / "d"), "--evaluate", "--suite", "arith"])
    out = " ".join(res.output.split())
    assert res.exit_code == 0, out
    assert f"notice: {FALLBACK} `metasearch doctor` says what is missing" in out, out
    assert "SandboxWarning" not in out, out
