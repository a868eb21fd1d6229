"""Sandbox overhead against in-process execution, measured in the same run.

    python benchmarks/sandbox_overhead.py [--tasks 500] [--repeats 5] [--modes bwrap,unshare]

1. Start latency of a candidate (call → agent loaded in the worker); target <= 150 ms.
2. Added time per task for an agent without LLM calls over N tasks; target <= 2 ms.
3. Round trip per LLM call over the sandbox RPC vs a direct gateway call, with a
   scripted zero-latency model.
Figures are medians over ``--repeats`` runs; the machine's load is printed too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from metasearch.execution.sandbox import SandboxLimits, SandboxRunner
from metasearch.llm import scripted_gateway
from metasearch.runtime.gateway_transport import GatewayTransport
from metasearch.runtime.inprocess import run_tasks_inprocess
from metasearch.runtime.settings import AgentSettings
from metasearch.suites.task import Task

NO_LLM = '''
def forward(self, taskInfo):
    words = taskInfo.content.split()
    return str(sum(len(w) for w in words))
'''
ONE_CALL = '''
def forward(self, taskInfo):
    agent = LLMAgentBase(["answer"], "one call")
    return agent([taskInfo], "Answer.")[0]
'''


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=500)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--modes", default="bwrap,unshare")
    args = ap.parse_args()
    tasks = [Task(id=f"t{i}", question=f"question number {i} with a few words", answer="")
             for i in range(args.tasks)]
    settings = AgentSettings(model="scripted/bench", answer_hint="", protocol="json",
                             candidate="bench", threads=8)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; "
          f"{args.tasks} tasks, {args.repeats} repeats (medians)")

    gw = scripted_gateway(['{"answer": "42"}'])
    try:
        inproc = statistics.median(
            timed(lambda: run_tasks_inprocess(NO_LLM, tasks, settings, GatewayTransport(gw)))[0]
            for _ in range(args.repeats))
        print(f"in-process, no LLM: {inproc * 1000:.1f} ms for {args.tasks} tasks")
        one = settings.__class__(**{**settings.to_json(), "threads": 1})
        call_tasks = tasks[:args.calls]
        direct = statistics.median(
            timed(lambda: run_tasks_inprocess(ONE_CALL, call_tasks, one, GatewayTransport(gw)))[0]
            for _ in range(args.repeats)) / len(call_tasks)
        print(f"in-process, 1 LLM call per task (1 thread): {direct * 1e3:.3f} ms per task")
        for mode, prewarm in [(m, p) for m in args.modes.split(",") for p in (False, True)]:
            label = f"{mode}{' prewarm' if prewarm else ''}"
            with SandboxRunner(mode=mode, gateway=gw, limits=SandboxLimits(),
                               prewarm=prewarm) as runner:
                runner.run(NO_LLM, tasks[:2], settings)  # warm the page cache
                runs = []
                for _ in range(args.repeats):
                    if prewarm:  # between candidates, the spare comes up while the meta agent thinks
                        runner.warm_up()
                    runs.append(runner.run_detailed(NO_LLM, tasks, settings))
                assert all(o.ok for r in runs for o in r.outcomes)
                start = statistics.median(r.start_s for r in runs)
                wall = statistics.median(r.wall_s for r in runs)
                per_task = (wall - start - inproc) / args.tasks
                calls = []
                for _ in range(args.repeats):
                    if prewarm:  # between candidates, the spare comes up while the meta agent thinks
                        runner.warm_up()
                    calls.append(runner.run_detailed(ONE_CALL, call_tasks, one))
                assert all(o.ok for r in calls for o in r.outcomes)
                rpc = statistics.median((r.wall_s - r.start_s) / len(call_tasks) for r in calls)
            print(f"[{label}] candidate start latency: {start * 1e3:.1f} ms (target <= 150 ms)")
            print(f"[{label}] {args.tasks} tasks: {wall * 1e3:.1f} ms total, added per task "
                  f"{per_task * 1e3:.3f} ms (target <= 2 ms); ratio to in-process "
                  f"{(wall - start) / inproc:.2f}x after start")
            print(f"[{label}] LLM call via RPC: {rpc * 1e3:.3f} ms per task vs direct "
                  f"{direct * 1e3:.3f} ms: +{(rpc - direct) * 1e3:.3f} ms per call "
                  f"({rpc / direct:.2f}x)")
    finally:
        gw.close()


if __name__ == "__main__":
    main()
