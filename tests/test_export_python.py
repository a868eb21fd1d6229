"""Exported agents that use run_python carry metasearch's runner; others carry nothing extra."""

from __future__ import annotations

import os
from pathlib import Path

from test_export import load_module, rec
from test_export_helpers import COT, FakeOpenAI

from metasearch.interop.export import CampaignInfo, render_module
from metasearch.interop.python_block import uses_run_python
from metasearch.runtime.seeds import load_seed

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
POT = load_seed(Path(__file__).resolve().parents[1] / "archive" / "program_of_thought.py").code
INFO = CampaignInfo(name="c", suite="arith", task_model="openai/fake", protocol="sections",
                    answer_hint="an integer")


def exported(tmp_path: Path, code: str):
    path = tmp_path / "agent.py"
    path.write_text(render_module(rec("g001-00", "PoT", {"a": 1.0}), code, INFO))
    return path, load_module(path)


def test_a_program_of_thought_export_runs_its_program(tmp_path: Path) -> None:
    path, module = exported(tmp_path, POT)
    assert "def run_program(" in path.read_text() and "<tools>" in path.read_text()

    def reply(messages: list[dict[str, str]]) -> str:
        return "## thinking\nAdd.\n\n## code\n```python\nprint(17 + 25)\n```\n"

    with FakeOpenAI(reply) as server:
        answer = module.solve("What is 17 + 25?", model="openai/fake", api_base=server.url,
                              api_key="x")
    assert answer == "42" and len(server.requests) == 1
    failed = module.TOOLS["run_python"]("raise ValueError('no')")
    assert failed.startswith("Error: the program raised") and not failed.ok


def test_other_exports_carry_no_runner(tmp_path: Path) -> None:
    path, module = exported(tmp_path, COT)
    assert "run_program" not in path.read_text() and module.TOOLS == {}
    assert uses_run_python(POT) and not uses_run_python(COT)
    assert not uses_run_python("def forward(self, t):\n    return 'run_python'\n")
