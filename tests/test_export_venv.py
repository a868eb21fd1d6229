"""The standalone export runs in a venv that holds only litellm (no metasearch, no mlflow).

Building the venv (``pip install litellm==1.106.2`` from the local mirror)
takes about two minutes; it is built once per test session. Set
``METASEARCH_TEST_LITELLM_VENV`` to an existing venv with litellm to reuse it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_export_helpers import VOTE, FakeOpenAI, json_reply, score, sections_reply

from metasearch.interop.export import export_py
from metasearch.runtime.seeds import load_seed
from metasearch.store.archive import Archive
from metasearch.store.records import CandidateRecord, candidate_id, seed_id

LITELLM = "litellm==1.106.2"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def litellm_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("METASEARCH_TEST_LITELLM_VENV")
    if given:
        return Path(given) / "bin" / "python"
    venv = tmp_path_factory.mktemp("litellm-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", LITELLM],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=900,
    )
    return python


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return env | {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "OPENAI_API_KEY": "x"}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv-camp") / "venv-camp"
    cot = load_seed(Path(__file__).parents[1] / "archive" / "chain_of_thought.py")
    with Archive.open(root) as arc:
        arc.add(
            CandidateRecord(
                id=seed_id("cot"),
                name=cot.name,
                generation="initial",
                status="ok",
                thought=cot.thought,
                val=score({"a": 1.0, "b": 0.0}),
            ),
            code=cot.code,
        )
        arc.add(
            CandidateRecord(
                id=candidate_id(1, 0),
                name="Vote",
                generation=1,
                status="ok",
                val=score({"a": 1.0, "b": 1.0}),
            ),
            code=VOTE,
        )
    return root


def test_litellm_only_venv_has_no_metasearch(litellm_python: Path) -> None:
    probe = "import importlib.util as u; print(u.find_spec('metasearch'), u.find_spec('mlflow'))"
    out = subprocess.run(
        [str(litellm_python), "-c", probe],
        env=_env(),
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["None", "None"]


@pytest.mark.parametrize("protocol", ["json", "sections"])
def test_exported_module_solves_in_a_litellm_only_venv(
    litellm_python: Path, campaign: Path, tmp_path: Path, protocol: str
) -> None:
    path, rec, _ = export_py(campaign, tmp_path / "vote.py", best=True, protocol=protocol)
    assert rec.id == candidate_id(1, 0)
    script = textwrap.dedent(
        f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("agent", {str(path)!r})
        agent = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(agent)
        assert "metasearch" not in sys.modules
        print(agent.solve("What is 2+3?", model="openai/fake", api_base=sys.argv[1], api_key="x"))
        """
    )
    reply = json_reply("5") if protocol == "json" else sections_reply("5")
    with FakeOpenAI(reply) as server:
        out = subprocess.run(
            [str(litellm_python), "-c", script, server.url],
            env=_env(),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "5"
    assert len(server.requests) == 3


def test_exported_module_main_answers_from_the_command_line(
    litellm_python: Path, campaign: Path, tmp_path: Path
) -> None:
    path, _, _ = export_py(campaign, tmp_path / "cot.py", agent_id=seed_id("cot"))
    with FakeOpenAI(json_reply("12")) as server:
        out = subprocess.run(
            [
                str(litellm_python),
                str(path),
                "What",
                "is",
                "3*4?",
                "--model",
                "openai/fake",
                "--api-base",
                server.url,
            ],
            env=_env(),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "12"
    assert server.requests[0]["messages"][1]["content"].startswith("# Your Task:\nWhat is 3*4?")
