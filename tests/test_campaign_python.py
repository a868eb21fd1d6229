"""Campaigns with run_python: the program-of-thought seed, and hostile programs that fail cleanly.

The scripted task model answers a request for a ``code`` field with a program
that adds the task's two numbers; the meta agent proposes agents whose
programs are bombs. Every candidate is recorded and the campaign goes on.
"""

from __future__ import annotations

import re
import sys

import pytest
from test_campaign_kit import TASKS, VAL, Script, close, make_campaign, sections

from metasearch.execution.sandbox.launch import probe
from metasearch.llm.types import LLMRequest


class CodingScript(Script):
    """The kit's script, plus programs: a request for ``code`` gets ``print(a + b)``."""

    def _task(self, req: LLMRequest) -> str:
        system, user = req.messages[0]["content"], req.messages[1]["content"]
        task = next((t for t in TASKS if t.question in user), None)
        if task is not None and re.search(r"^## code$", system, re.M):
            a, b = (int(n) for n in re.findall(r"\d+", task.question)[:2])
            return f"## thinking\nAdd them.\n\n## code\n```python\nprint({a} + {b})\n```"
        return super()._task(req)


def bomb(program: str) -> str:
    return ("def forward(self, taskInfo):\n"
            f"    out = run_python({program!r})\n"
            "    a = LLMAgentBase(['thinking', 'answer'], 'Solver')\n"
            "    thinking, answer = a([taskInfo, Info('output', 'Python', out, -1)], 'Solve. MODE-HALF')\n"
            "    return answer\n")


MEMORY = "b = []\nwhile True:\n    b.append(bytearray(32 << 20))\n"
FLOOD = "while True:\n    print('x' * 1000)\n"
FORK = "import os\nwhile True:\n    os.fork()\n"
SOCKET = ("import os, socket\nfor fd in range(3, 256):\n    try:\n"
          "        socket.socket(fileno=fd).sendall(b'garbage')\n    except OSError:\n        pass\n"
          "print('sent')\n")


def run_campaign(tmp_path, programs: list[str], sandbox: str | None):
    meta = {f"g00{g + 1}-00": {"propose": sections(bomb(p), name=f"Bomb {g}")}
            for g, p in enumerate(programs)}
    campaign = make_campaign(tmp_path / "run", CodingScript(meta),
                             seeds=("program_of_thought", "chain_of_thought"),
                             generations=len(programs), debug_rounds=0, sandbox=sandbox)
    try:
        result = campaign.run()
        events = {cid: c.events for cid, c in campaign.gateway.snapshot().by_candidate.items()}
    finally:
        close(campaign)
    return result, events


def check(result, events, programs: list[str]) -> None:
    by_id = {r.id: r for r in result.records}
    pot = by_id["seed-program_of_thought"]
    assert pot.status == "ok" and pot.val.mean == 1.0
    assert events["seed-program_of_thought"] == {"python_ok": len(VAL)}
    assert pot.meta["events"] == {"python_ok": len(VAL)}  # the record keeps the runs
    for g in range(len(programs)):
        rec = by_id[f"g00{g + 1}-00"]  # recorded, ran, and the next generation still came
        assert rec.status == "ok", rec.reason
        assert rec.val is not None and 0 < rec.val.mean < 1
        assert sum(events[rec.id].values()) == len(VAL)


def test_program_of_thought_seed_and_hostile_programs_in_process(tmp_path):
    programs = [MEMORY, FLOOD]
    result, events = run_campaign(tmp_path, programs, sandbox=None)
    check(result, events, programs)
    assert events["g001-00"] == {"python_memory": len(VAL)}
    assert events["g002-00"] == {"python_output": len(VAL)}


@pytest.mark.skipif(probe("bwrap", sys.executable, 60000) is not None, reason="bwrap unavailable")
def test_program_of_thought_seed_and_hostile_programs_in_the_sandbox(tmp_path):
    programs = [FORK, SOCKET, MEMORY]
    result, events = run_campaign(tmp_path, programs, sandbox="bwrap")
    check(result, events, programs)
    assert events["g001-00"] == {"python_error": len(VAL)}  # fork: BlockingIOError
    assert events["g002-00"] == {"python_ok": len(VAL)}  # no socket among its fds: 'sent'
    assert events["g003-00"] == {"python_memory": len(VAL)}
