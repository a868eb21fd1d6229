"""Shared pieces for the export, ADAS and compare tests (no tests here).

- :class:`FakeOpenAI`: a tiny OpenAI-compatible chat endpoint on 127.0.0.1
  that answers with a scripted function and records every request.
- :func:`shared_store`: one MLflow sqlite store per test session (building
  its tables takes seconds), plus :func:`fresh_db` to give a campaign
  directory its own ``mlflow.db`` by copying an empty one.
- :func:`make_campaign`: a campaign directory built with ``Archive`` and
  logged with ``Tracker``.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from metasearch.store.archive import Archive
from metasearch.store.records import CandidateRecord, SplitScore
from metasearch.store.tracking import Tracker

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

Reply = Callable[[list[dict[str, str]]], str]

COT = (
    "def forward(self, taskInfo):\n"
    "    cot = LLMAgentBase(['thinking', 'answer'], 'Chain-of-Thought Agent')\n"
    "    thinking, answer = cot([taskInfo], 'Think step by step, then answer.')\n"
    "    return answer\n"
)
VOTE = (
    "def forward(self, taskInfo):\n"
    "    from collections import Counter\n"
    "\n"
    "    agents = [LLMAgentBase(['thinking', 'answer'], 'CoT', temperature=0.8) for _ in range(3)]\n"
    "    answers = [a([taskInfo], 'Solve it.')[1].content for a in agents]\n"
    "    return Counter(answers).most_common(1)[0][0]\n"
)


def json_reply(answer: str = "42") -> Reply:
    """A model that always answers ``answer`` in the JSON protocol."""

    def reply(messages: list[dict[str, str]]) -> str:
        return json.dumps({"thinking": "I add the numbers.", "answer": answer})

    return reply


def sections_reply(answer: str = "42") -> Reply:
    def reply(messages: list[dict[str, str]]) -> str:
        return f"## thinking\nI add the numbers.\n\n## answer\n{answer}\n"

    return reply


class FakeOpenAI:
    """``with FakeOpenAI(reply) as server: solve(q, model="openai/fake", api_base=server.url)``."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                text = outer.reply(body["messages"])
                data = json.dumps(
                    {
                        "id": f"chatcmpl-{len(outer.requests)}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", "fake"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- MLflow stores


def shared_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(uri, root) of the session's shared store; created on first use, by any test module."""
    root = tmp_path_factory.getbasetemp() / "metasearch-export-mlflow"
    db = root / "mlflow.db"
    if not db.exists():
        root.mkdir(parents=True, exist_ok=True)
        from mlflow import MlflowClient

        tmp_db = root / "empty.db"
        MlflowClient(tracking_uri=f"sqlite:///{tmp_db}").search_experiments()  # builds tables
        shutil.copy(tmp_db, root / "pristine.db")
        tmp_db.rename(db)
    return f"sqlite:///{db}", root


def fresh_db(tmp_path_factory: pytest.TempPathFactory, campaign_dir: Path) -> str:
    """Give ``campaign_dir`` its own empty ``mlflow.db`` (a copy); returns its URI."""
    _, root = shared_store(tmp_path_factory)
    campaign_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "pristine.db", campaign_dir / "mlflow.db")
    return f"sqlite:///{(campaign_dir / 'mlflow.db').resolve()}"


def score(values: Mapping[str, float]) -> SplitScore:
    from metasearch.evaluation.stats import bootstrap_ci

    f = bootstrap_ci(list(values.values()), n_resamples=2000)
    return SplitScore.of(f, dict(values))


def make_campaign(
    root: Path,
    records: Sequence[tuple[CandidateRecord, str | None]],
    *,
    uri: str,
    artifacts: Path | None = None,
    params: Mapping[str, str] | None = None,
    tests: Mapping[str, SplitScore] | None = None,
) -> Archive:
    """Write ``records`` (with code) into ``root`` and log the campaign to ``uri``."""
    arc = Archive.open(root)
    for rec, code in records:
        arc.add(rec, code=code)
    for cid, test in (tests or {}).items():
        arc.add_test_result(cid, test)
    tracker = Tracker(
        tracking_uri=uri,
        experiment_name=root.resolve().name,
        artifact_location=(artifacts or root / "mlartifacts").resolve().as_uri(),
    )
    tracker.start(dict(params or {}))
    tracker.sync(arc)
    tracker.finish()
    arc.close()
    return Archive.open(root, readonly=True)


DEFAULT_PARAMS = {
    "suite.name": "arith",
    "suite.data": "",
    "suite.difficulty": "",
    "suite.seed": "0",
    "suite.n_val": "4",
    "models.task.model": "openai/gpt-4o-mini",
    "models.task.protocol": "auto",
    "models.task.max_tokens": "256",
    "models.meta.model": "openai/gpt-4o",
}
