"""Campaign scheduling: how well concurrent candidates use the time.

A real :class:`~metasearch.campaign.loop.Campaign` (ADAS strategy, no seeds,
no pruning, no debug rounds, no final test) runs the same candidates twice:
with ``parallel_candidates = 1`` (12 generations of one) and with
``parallel_candidates = N`` (12 / N generations of N, ``AdasStrategy(width=N)``).

The meta agent is scripted and instant: candidate ``i`` is a chain of
``calls[i]`` sequential LLM calls per task. The task model is a fake
OpenAI-compatible server on 127.0.0.1 (aiohttp, a child process) that answers
every call after a fixed latency with unlimited concurrency, reached through
the real gateway (litellm, per-endpoint limit ``--concurrency``, response
cache off), so every call really waits.

The ideal is the critical path of LLM latency: a task's calls are
sequential, a candidate's tasks run in parallel, the candidates of a
generation run in parallel, generations one after another::

    ideal(N) = sum over generations of max over its candidates of calls x latency

It ignores the gateway limit; the bound printed beside it does not (the
optimal schedule of the same call chains on ``--concurrency`` slots: with 4
candidates x 20 tasks = 80 chains on 64 slots it is 9 s, not 7 s).
``--detail`` breaks each generation down (proposal, slowest evaluation,
commit lag, gap before it); ``--backend direct`` swaps the gateway's own
transport (its fast path for this OpenAI-compatible endpoint; litellm for
other providers) for a bare aiohttp client under the same gateway, to tell
the loop's scheduling from the transport's per-call CPU; ``--sandbox-call-threads`` sets the sandbox host's
LLM call threads, which the library leaves at its default.

    python benchmarks/campaign_schedule.py [--quick] [--candidates 12] [--tasks 20]
        [--width 4] [--latency 1.0] [--concurrency 64] [--threads 20] [--calls 1,2,...]
        [--sandbox bwrap [--sandbox-call-threads N]] [--backend litellm|direct] [--detail]

Targets: N=4 wall/ideal <= 1.25; N=4 at least 2.5x faster than N=1. Exits 1
on a miss or when a candidate did not run as scripted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metasearch.campaign.build import build_gateway, build_sandbox  # noqa: E402
from metasearch.campaign.loop import Campaign  # noqa: E402
from metasearch.candidate.validate import validate_code  # noqa: E402
from metasearch.execution.inprocess import InProcessRunner  # noqa: E402
from metasearch.llm import LLMRequest, LLMResponse  # noqa: E402
from metasearch.runtime.settings import AgentSettings  # noqa: E402
from metasearch.scoring import numeric_match  # noqa: E402
from metasearch.search.adas.context import TaskBrief  # noqa: E402
from metasearch.search.adas.proposer import Proposer  # noqa: E402
from metasearch.search.adas.strategy import AdasStrategy  # noqa: E402
from metasearch.store.archive import Archive  # noqa: E402
from metasearch.suites.registry import Suite  # noqa: E402
from metasearch.suites.task import Task  # noqa: E402

TASK_MODEL = "openai/fake-task"
META_MODEL = "scripted/meta"
#: Calls per task of candidate i (cycled). Each generation of 4 mixes short and long
#: chains, so its critical path is its longest chain, not the mean.
DEFAULT_CALLS = (1, 2, 2, 2, 3, 2, 3, 3, 1, 1, 2, 1)
REPLY = "## thinking\nThe two numbers add up to 42.\n\n## answer\n42"
TARGET_RATIO = 1.25
TARGET_SPEEDUP = 2.5


# ------------------------------------------------------------------ the fake server

def serve(conn: Any, latency_s: float) -> None:
    """A chat-completions endpoint on 127.0.0.1: fixed latency, no concurrency limit.

    Sends its port through ``conn``; ``GET /stats`` reports calls and the peak
    number in flight since the last ``POST /reset``. Exits when its parent dies.
    """
    from aiohttp import web

    body = {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": "fake-task",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52},
    }
    payload = json.dumps(body).encode()
    stats = {"calls": 0, "in_flight": 0, "peak": 0}
    parent = os.getppid()

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        stats["calls"] += 1
        stats["in_flight"] += 1
        stats["peak"] = max(stats["peak"], stats["in_flight"])
        try:
            await asyncio.sleep(latency_s)
        finally:
            stats["in_flight"] -= 1
        return web.Response(body=payload, content_type="application/json")

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(stats)

    async def reset(request: web.Request) -> web.Response:
        stats["calls"], stats["peak"] = 0, stats["in_flight"]
        return web.json_response(stats)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_get("/stats", get_stats)
        app.router.add_post("/reset", reset)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))  # loopback only; the kernel picks a free port
        sock.listen(4096)
        await web.SockSite(runner, sock, backlog=4096).start()
        conn.send(sock.getsockname()[1])
        conn.close()
        while os.getppid() == parent:  # orphaned (the benchmark was killed): stop
            await asyncio.sleep(0.5)
        await runner.cleanup()

    asyncio.run(main())


class FakeServer:
    """The fake endpoint in a spawned child process; a context manager that stops it."""

    def __init__(self, latency_s: float) -> None:
        ctx = mp.get_context("spawn")
        here, there = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=serve, args=(there, latency_s), daemon=True,
                                name="fake-openai")
        self.proc.start()
        there.close()
        if not here.poll(60):
            self.close()
            raise SystemExit("the fake server did not start within 60 s")
        self.port = int(here.recv())
        here.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def stats(self, reset: bool = False) -> dict[str, int]:
        req = urllib.request.Request(self.url + ("/reset" if reset else "/stats"),
                                     method="POST" if reset else "GET")
        with self._http.open(req, timeout=10) as r:
            return json.loads(r.read())

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DirectBackend:
    """A diagnostic gateway backend: one aiohttp POST per call, no litellm.

    Same gateway around it (limits, retries, ledger); only the per-call client
    work differs, which separates the loop's scheduling from litellm's CPU cost.
    """

    def __init__(self) -> None:
        self._session: Any = None

    def check(self, route: Any) -> None:
        pass

    async def acomplete(self, request: LLMRequest, route: Any) -> Any:
        import aiohttp

        from metasearch.llm.backend import RawCompletion

        if self._session is None:  # created on the gateway's loop, used only there
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), trust_env=False)
        body = {"model": route.target.split("/", 1)[1], "messages": list(request.messages),
                "temperature": request.temperature, "max_tokens": request.max_tokens}
        async with self._session.post(f"{route.api_base}/chat/completions", json=body) as r:
            data = await r.json()
        usage = data.get("usage") or {}
        return RawCompletion(text=data["choices"][0]["message"]["content"],
                             prompt_tokens=int(usage.get("prompt_tokens", 0)),
                             completion_tokens=int(usage.get("completion_tokens", 0)),
                             finish_reason=data["choices"][0].get("finish_reason"))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


# ------------------------------------------------------------------ agents and meta agent

def agent_code(i: int, calls: int) -> str:
    """Candidate ``i``: ``calls`` sequential calls per task, each refining the last answer."""
    lines = [
        "def forward(self, taskInfo):",
        f"    solver = LLMAgentBase(['thinking', 'answer'], 'Chain Agent {i}')",
        f"    thinking, answer = solver([taskInfo], 'Solve the task step by step (design {i}).')",
    ]
    for k in range(1, calls):
        lines.append(
            f"    thinking, answer = solver([taskInfo, thinking, answer], "
            f"'Check the previous answer and give the final one (design {i}, pass {k}).')")
    lines.append("    return answer")
    return "\n".join(lines) + "\n"


def sections_reply(code: str, name: str) -> str:
    return (f"## thought\nA chain of refinement calls.\n\n## name\n{name}\n\n"
            f"## code\n```python\n{code}```\n")


class ScriptedMeta:
    """The meta agent: answers every request at once with candidate ``i``'s code."""

    def __init__(self, calls: Sequence[int], width: int) -> None:
        self.calls = list(calls)
        self.width = width
        self.requests = 0
        self._lock = threading.Lock()

    def index(self, cid: str) -> int:
        g, k = cid.removeprefix("g").split("-")  # "g002-03": generation 2, slot 3
        return (int(g) - 1) * self.width + int(k)

    def complete(self, req: LLMRequest) -> LLMResponse:
        with self._lock:
            self.requests += 1
        i = self.index(req.candidate or "")
        text = sections_reply(agent_code(i, self.calls[i]), f"Chain Agent {i}")
        return LLMResponse(text=text, model=req.model, finish_reason="stop")


# ------------------------------------------------------------------ instrumentation

@dataclass
class Span:
    propose: tuple[float, float] | None = None
    run: tuple[float, float] | None = None
    commit: float | None = None


@dataclass
class Timeline:
    """When each candidate was proposed, evaluated and committed (monotonic seconds).

    Also the campaign's :class:`~metasearch.campaign.loop.Reporter` (commits).
    """

    spans: dict[str, Span] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def span(self, cid: str) -> Span:
        with self.lock:
            return self.spans.setdefault(cid, Span())

    def phase(self, text: str) -> None:
        pass

    def tasks(self, label: str, total: int) -> None:
        pass

    def task_done(self) -> None:
        pass

    def candidate(self, record: Any, best: Any) -> None:
        self.span(record.id).commit = time.monotonic()


class TimedStrategy:
    """Delegates to the strategy; notes when each proposal starts and ends."""

    def __init__(self, inner: AdasStrategy, timeline: Timeline) -> None:
        self.inner = inner
        self.timeline = timeline
        self.name = inner.name
        self.reference_code = inner.reference_code

    def ask(self, free: int, archive: Any) -> Any:
        return self.inner.ask(free, archive)

    def propose(self, slot: Any, archive: Any) -> Any:
        t0 = time.monotonic()
        try:
            return self.inner.propose(slot, archive)
        finally:
            self.timeline.span(slot.candidate_id).propose = (t0, time.monotonic())

    def tell(self, record: Any) -> None:
        self.inner.tell(record)


class TimedRunner:
    """Delegates to the runner; notes when each candidate's evaluation starts and ends."""

    def __init__(self, inner: Any, timeline: Timeline) -> None:
        self.inner = inner
        self.timeline = timeline

    def run(self, code: str, tasks: Sequence[Task], settings: AgentSettings, *,
            on_outcome: Any = None) -> Any:
        t0 = time.monotonic()
        try:
            return self.inner.run(code, tasks, settings, on_outcome=on_outcome)
        finally:
            self.timeline.span(settings.candidate or "?").run = (t0, time.monotonic())

    def close(self) -> None:
        getattr(self.inner, "close", lambda: None)()


# ------------------------------------------------------------------ ideals

def ideal_s(calls: Sequence[int], width: int, latency_s: float, tasks: int, threads: int) -> float:
    """Sum over generations of the longest chain in it (tasks in waves of ``threads``)."""
    waves = math.ceil(tasks / max(1, threads))
    gens = [calls[g:g + width] for g in range(0, len(calls), width)]
    return sum(max(gen) * waves * latency_s for gen in gens)


def bound_at_limit_s(calls: Sequence[int], width: int, latency_s: float, tasks: int,
                     threads: int, limit: int) -> float:
    """The shortest schedule of the same call chains on ``limit`` concurrent slots.

    Every call takes ``latency_s``, so time moves in rounds; a round runs up to
    ``limit`` ready calls, longest remaining chain first (optimal for chains of
    unit-time calls, Hu 1961, when ``threads`` >= ``tasks``), at most ``threads``
    tasks of one candidate at once.
    """
    total = 0
    for g in range(0, len(calls), width):
        # per task: [remaining calls, candidate]; a task keeps its thread until it ends
        chains = [[c, j] for j, c in enumerate(calls[g:g + width]) for _ in range(tasks)]
        active: list[list[int]] = []
        queue = list(chains)  # not started yet, in task order per candidate
        rounds = 0
        while active or queue:
            per_cand: dict[int, int] = {}
            for ch in active:
                per_cand[ch[1]] = per_cand.get(ch[1], 0) + 1
            for ch in list(queue):
                if per_cand.get(ch[1], 0) < threads:
                    per_cand[ch[1]] = per_cand.get(ch[1], 0) + 1
                    active.append(ch)
                    queue.remove(ch)
            active.sort(key=lambda ch: -ch[0])
            for ch in active[:limit]:
                ch[0] -= 1
            active = [ch for ch in active if ch[0] > 0]
            rounds += 1
        total += rounds
    return total * latency_s


# ------------------------------------------------------------------ one campaign

def loop_cpu_s(gateway: Any) -> float:
    """CPU seconds the gateway's event-loop thread has used (all litellm work runs there)."""

    async def now() -> float:
        return time.thread_time()

    loop = gateway._ensure_loop()  # a benchmark may peek: the loop is the gateway's own
    return asyncio.run_coroutine_threadsafe(now(), loop).result(timeout=10)


@dataclass
class RunResult:
    width: int
    wall_s: float
    ideal_s: float
    bound_s: float
    timeline: Timeline
    gen_of: dict[str, int]
    calls_of: dict[str, int]
    server: dict[str, int]
    problems: list[str]
    setup_s: float
    finish_s: float
    runner: str
    loop_cpu_s: float
    cpu_s: float


def run_campaign(args: argparse.Namespace, server: FakeServer, calls: list[int], width: int,
                 root: Path) -> RunResult:
    n = len(calls)
    tasks = [Task(id=f"t{i:02d}", question=f"What is {i} + {42 - i}?", answer="42")
             for i in range(args.tasks)]
    suite = Suite(name="schedule", description="Add two numbers.", answer_hint="an integer",
                  scorer=numeric_match, source="generated by benchmarks/campaign_schedule.py")
    directory = root / f"n{width}"
    gateway = build_gateway(task_model=TASK_MODEL, api_base=server.url + "/v1",
                            cache_dir=root / f"cache-n{width}", cache_enabled=False,
                            concurrency=args.concurrency)
    runner: Any = None
    archive: Archive | None = None
    if args.backend == "direct":
        gateway.backend = DirectBackend()  # before the first call: no route exists yet
    try:
        assert gateway.cache is None, "the response cache must be off"
        # litellm's import and first client are paid here, outside the timing
        gateway.complete(LLMRequest(model=TASK_MODEL, messages=({"role": "user", "content": "hi"},),
                                    candidate="warm-up"))
        # the report's plot imports matplotlib on first use; pay that here, for both runs
        from metasearch.reporting.report import plot_progress

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty plot has no legend entries
            plot_progress([], root / f"warm-up-n{width}.png")
        if args.sandbox == "bwrap" and args.sandbox_call_threads:
            from metasearch.execution.sandbox import SandboxRunner

            runner = SandboxRunner(mode="bwrap", gateway=gateway, allowed_models=[TASK_MODEL],
                                   prewarm=width, call_threads=args.sandbox_call_threads)
        elif args.sandbox == "bwrap":  # as build_bench wires it for a campaign
            runner = build_sandbox("bwrap", gateway, allowed_models=[TASK_MODEL], prewarm=width,
                                   call_threads=max(16, args.concurrency * width))
        else:
            runner = InProcessRunner(gateway=gateway)
        timeline = Timeline()
        meta = ScriptedMeta(calls, width)
        proposer = Proposer(complete=meta.complete, model=META_MODEL, output_format="sections",
                            reflexion_rounds=0, repair_rounds=0, validate=validate_code)
        strategy = AdasStrategy(proposer=proposer, task=TaskBrief.from_suite(suite),
                                generations=n // width, width=width, attempts=1,
                                debug_rounds=0, near_duplicates=False)
        settings = AgentSettings(model=TASK_MODEL, answer_hint=suite.answer_hint,
                                 protocol=gateway.resolve_protocol(TASK_MODEL), max_tokens=64,
                                 threads=args.threads)
        archive = Archive.open(directory)
        campaign = Campaign(
            directory=directory, archive=archive, strategy=TimedStrategy(strategy, timeline),
            runner=TimedRunner(runner, timeline), gateway=gateway, suite=suite,
            val_tasks=tasks, test_tasks=[], seeds=[], settings=settings,
            parallel_candidates=width, pruning=False, reporter=timeline,
            title=f"schedule N={width}",
        )
        server.stats(reset=True)
        loop_cpu0, cpu0 = loop_cpu_s(gateway), time.process_time()
        t0 = time.monotonic()
        result = campaign.run()
        wall = time.monotonic() - t0
        loop_cpu, cpu = loop_cpu_s(gateway) - loop_cpu0, time.process_time() - cpu0
        t_end = t0 + wall
        stats = server.stats()

        label = "in-process"
        if args.sandbox == "bwrap":
            st = runner.stats
            label = (f"sandbox {runner.mode}, prewarm {width}, host call threads "
                     f"{runner._pool._max_workers}: {st['runs']} runs, {st['prewarmed']} "
                     f"on a spare, {st['cold']} cold")
        problems: list[str] = []
        snap = gateway.snapshot()
        gen_of, calls_of = {}, {}
        for rec in result.records:
            i = meta.index(rec.id)
            gen_of[rec.id] = rec.generation
            calls_of[rec.id] = calls[i]
            got = snap.by_candidate.get(rec.id)
            want = calls[i] * args.tasks
            if rec.status != "ok":
                problems.append(f"{rec.id}: status {rec.status} ({rec.reason})")
            elif rec.val is None or rec.val.mean < 1.0:
                problems.append(f"{rec.id}: validation score {rec.val and rec.val.mean}")
            if got is None or got.calls != want or got.cached_calls or got.errors:
                problems.append(f"{rec.id}: {got and got.calls} task calls "
                                f"({got and got.cached_calls} cached, {got and got.errors} "
                                f"errors), expected {want} real ones")
        if len(result.records) != n:
            problems.append(f"{len(result.records)} records, expected {n}")
        if result.stopped:
            problems.append(f"stopped: {result.stopped}")
        starts = [s.propose[0] for s in timeline.spans.values() if s.propose]
        commits = [s.commit for s in timeline.spans.values() if s.commit]
        return RunResult(
            width=width, wall_s=wall,
            ideal_s=ideal_s(calls, width, args.latency, args.tasks, args.threads),
            bound_s=bound_at_limit_s(calls, width, args.latency, args.tasks, args.threads,
                                     args.concurrency),
            timeline=timeline, gen_of=gen_of, calls_of=calls_of, server=stats,
            problems=problems,
            setup_s=(min(starts) - t0) if starts else 0.0,
            finish_s=(t_end - max(commits)) if commits else 0.0, runner=label,
            loop_cpu_s=loop_cpu, cpu_s=cpu,
        )
    finally:
        if runner is not None:
            with contextlib.suppress(Exception):
                runner.close()
        gateway.close()
        if archive is not None:
            archive.close()


# ------------------------------------------------------------------ report

def breakdown(r: RunResult, latency_s: float, tasks: int, threads: int) -> list[str]:
    """Per generation: wall, ideal, and where the excess went."""
    waves = math.ceil(tasks / max(1, threads))
    gens: dict[int, list[str]] = {}
    for cid, g in r.gen_of.items():
        gens.setdefault(g, []).append(cid)
    out = [f"    {'gen':>4} {'calls':>9} {'wall':>6} {'ideal':>6}  {'propose':>7} "
           f"{'eval-max':>8} {'eval-ideal':>10} {'commit-lag':>10} {'gap-before':>10}"]
    prev_end = None
    for g in sorted(gens):
        ids = sorted(gens[g])
        sp = [r.timeline.spans[c] for c in ids]
        start = min(s.propose[0] for s in sp if s.propose)
        end = max(s.commit for s in sp if s.commit)
        ideal = max(r.calls_of[c] for c in ids) * waves * latency_s
        prop = max(s.propose[1] - s.propose[0] for s in sp if s.propose)
        ev = max(s.run[1] - s.run[0] for s in sp if s.run)
        last_run_end = max(s.run[1] for s in sp if s.run)
        lag = end - last_run_end
        gap = (start - prev_end) if prev_end is not None else r.setup_s
        calls = ",".join(str(r.calls_of[c]) for c in ids)
        out.append(f"    {g:>4} {calls:>9} {end - start:6.2f} {ideal:6.2f}  {prop:7.3f} "
                   f"{ev:8.2f} {ideal:10.2f} {lag:10.3f} {gap:10.3f}")
        prev_end = end
    out.append(f"    after the last commit (report, close): {r.finish_s:.3f} s")
    return out


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="8 candidates x 10 tasks at 0.5 s a call (under a minute)")
    ap.add_argument("--candidates", type=int, default=None, help="default 12 (quick: 8)")
    ap.add_argument("--tasks", type=int, default=None, help="validation tasks (default 20, quick 10)")
    ap.add_argument("--width", type=int, default=4, help="N compared against 1 (default 4)")
    ap.add_argument("--latency", type=float, default=None,
                    help="seconds per task-model call (default 1.0, quick 0.5)")
    ap.add_argument("--concurrency", type=int, default=64,
                    help="the gateway's per-endpoint limit, run.concurrency (default 64)")
    ap.add_argument("--threads", type=int, default=None,
                    help="AgentSettings.threads: tasks of one candidate at once (default: --tasks)")
    ap.add_argument("--calls", default=",".join(map(str, DEFAULT_CALLS)),
                    help="calls per task of candidate i, cycled (default %(default)s)")
    ap.add_argument("--sandbox", choices=("none", "bwrap"), default="none",
                    help="run candidates in the bwrap sandbox (if it works here)")
    ap.add_argument("--sandbox-call-threads", type=int, default=0,
                    help="with --sandbox: the host's LLM call threads (default: the library's)")
    ap.add_argument("--backend", choices=("litellm", "direct"), default="litellm",
                    help="the gateway's backend: 'litellm' = the real routing (the fast path for "
                         "this endpoint) or, to diagnose, 'direct' = a bare aiohttp client")
    ap.add_argument("--detail", action="store_true", help="print the per-generation breakdown")
    args = ap.parse_args()
    args.candidates = args.candidates or (8 if args.quick else 12)
    args.tasks = args.tasks or (10 if args.quick else 20)
    args.latency = args.latency or (0.5 if args.quick else 1.0)
    args.threads = args.threads or args.tasks
    pattern = [int(c) for c in args.calls.split(",") if c.strip()]
    if not pattern or min(pattern) < 1:
        ap.error("--calls needs positive integers")
    calls = [pattern[i % len(pattern)] for i in range(args.candidates)]
    if args.candidates % args.width:
        ap.error(f"--candidates ({args.candidates}) must be a multiple of --width ({args.width})")
    if args.sandbox == "bwrap":
        from metasearch.execution.sandbox import SandboxRunner, SandboxUnavailable

        try:
            SandboxRunner(mode="bwrap").close()  # probes bwrap
        except SandboxUnavailable as e:
            print(f"note: the bwrap sandbox does not work here ({e}); running in-process")
            args.sandbox = "none"

    print(f"campaign schedule: {args.candidates} candidates x {args.tasks} validation tasks, "
          f"{args.latency:g} s a call, gateway limit {args.concurrency}, "
          f"threads {args.threads}, no seeds, no pruning, no debug, no test split")
    print(f"calls per task, by candidate: {' '.join(map(str, calls))}")
    results: dict[int, RunResult] = {}
    with FakeServer(args.latency) as server, \
            tempfile.TemporaryDirectory(prefix="metasearch-schedule-") as tmp:
        for width in sorted({1, args.width}):
            results[width] = run_campaign(args, server, calls, width, Path(tmp))

    ok = True
    for width, r in results.items():
        ratio = r.wall_s / r.ideal_s
        target = ""
        if width == args.width and width > 1:
            passed = ratio <= TARGET_RATIO
            ok &= passed
            target = f"  (target <= {TARGET_RATIO:g}: {verdict(passed)})"
        print(f"N={width}: {args.candidates // width:>2} generations x {width}  "
              f"wall {r.wall_s:6.2f} s  ideal {r.ideal_s:6.2f} s  wall/ideal {ratio:.3f}{target}")
        print(f"      runner: {r.runner}")
        print(f"      best possible at gateway limit {args.concurrency}: {r.bound_s:6.2f} s "
              f"(wall/bound {r.wall_s / r.bound_s:.3f}); server saw {r.server['calls']} calls, "
              f"peak {r.server['peak']} in flight")
        calls_n = max(1, r.server["calls"])
        print(f"      CPU: this process {r.cpu_s:.1f} s ({r.cpu_s / r.wall_s:.0%} of one core), "
              f"of it the gateway's loop thread {r.loop_cpu_s:.1f} s = "
              f"{1000 * r.loop_cpu_s / calls_n:.1f} ms a call")
        if args.detail:
            print("\n".join(breakdown(r, args.latency, args.tasks, args.threads)))
        for p in r.problems:
            ok = False
            print(f"      PROBLEM: {p}")
    one, many = results[1], results[args.width]
    speedup = one.wall_s / many.wall_s
    passed = speedup >= TARGET_SPEEDUP
    ok &= passed
    print(f"speed-up N={args.width} over N=1: {speedup:.2f}x  (target >= {TARGET_SPEEDUP:g}x: "
          f"{verdict(passed)}; ideal {one.ideal_s / many.ideal_s:.2f}x, "
          f"best possible at limit {args.concurrency}: {one.bound_s / many.bound_s:.2f}x)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
