"""Search efficiency: which strategy finds the best validation score for the fewest LLM calls.

Every strategy gets the same campaign file (suite, seed agents, models,
pruning) and the same call budget, ``budget.max_search_calls``, which counts
the calls of both roles (the meta agent's and the agents' own). Each runs
once per search seed (``search.<name>.seed``; ``adas`` has none, so its runs
differ only by the models' sampling), one after another, through the public
API (:func:`metasearch.run_campaign`), each in its own campaign directory.

The seed agents are evaluated once, in a campaign of their own (``seeds/``,
zero generations), and every run starts from a copy of its response cache:
the seeds replay identically and free in every run, so the budget buys the
same number of search calls for all. The curve of a run is its best
validation score (``ok`` records, seeds included) against the calls billed
by its search, from 0 (the best seed) to the budget.

Printed and written to ``OUT/search_efficiency.json`` (the figure to
``OUT/search_efficiency.png``: the mean curve of each strategy over its
seeds, with a band from the lowest to the highest seed):

- the area under that curve over [0, budget], divided by the budget (the
  mean best-so-far score), and its ratio to ``adas``'s (the baseline of this
  same run);
- the calls each run needs to reach ``adas``'s final best (the mean over
  ``adas``'s seeds), and that as a share of ``adas``'s own calls;
- each run's validation-selected pick (seeds included), scored once on the
  test split by the campaign's final test, and its paired difference with the
  best seed on the same test tasks (95% bootstrap CI, ``evaluation/stats.py``).

    python benchmarks/search_efficiency.py --model scripted [--out DIR]       # seconds
    python benchmarks/search_efficiency.py --model local --out runs/strategies \\
        [--config experiments/strategies.toml] [--seeds 0,1,2] [--budget N]      # hours

``--model scripted`` answers both roles from a fake OpenAI-compatible server
in this process (the meta agent writes random variants of a toy agent, the
task model answers right on about half of the requests, by a hash): it checks
that the machinery works, and its numbers say nothing about the strategies.
``--model local`` runs ``--config`` (the embedded 0.5B task and 1.5B meta
models; protocol in ``experiments/strategies.md``). Re-running a command
resumes it: finished campaigns are read, unfinished ones resumed. Exits 1
when a campaign failed (the others still run and are reported), 2 on bad
arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metasearch.campaign.summary import best_of  # noqa: E402
from metasearch.config import parse_override  # noqa: E402
from metasearch.errors import MetasearchError  # noqa: E402
from metasearch.evaluation.stats import paired_bootstrap  # noqa: E402
from metasearch.search.registry import get_strategy, strategy_names  # noqa: E402
from metasearch.store.archive import Archive  # noqa: E402
from metasearch.store.records import CandidateRecord  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ("random", "adas", "optuna", "mcts", "evolve", "hybrid")
BASELINE = "adas"
DONE = ".bench-done"  # a finished campaign's marker (its wall time, as JSON)
GRID = 200  # points of the mean curve and its band


# ------------------------------------------------------------------ the scripted world

SCRIPTED_KEY_ENV = "METASEARCH_SCRIPTED_KEY"

SCRIPTED_CONFIG = """\
# The scripted smoke run of benchmarks/search_efficiency.py (written by it): both models are a
# fake OpenAI-compatible server in the benchmark's process. Its numbers are not findings.
[suite]
name = "arith"
n_val = 4
n_test = 4
seed = 0

[models.meta]
model = "openai/scripted-meta"
api_base = "{url}"
api_key_env = "{key}"
protocol = "sections"

[models.task]
model = "openai/scripted-task"
api_base = "{url}"
api_key_env = "{key}"
protocol = "sections"
max_tokens = 64

[search]
generations = 100          # the call budget ends every search first
seeds = ["chain_of_thought"]

[search.adas]
reflexion_rounds = 0
repair_rounds = 1
debug_rounds = 0
near_duplicates = false    # the scripted variants share one skeleton
[search.random]
space = "{space}"
width = 2
[search.optuna]
space = "{space}"
width = 2
startup_trials = 2
min_tasks = 2
[search.mcts]
width = 1
debug_rounds = 0
[search.evolve]
width = 1
merge_every = 2

[pruning]
enabled = true
minibatch = 2

[budget]
max_search_calls = {budget}
max_calls = 100000

[run]
concurrency = 4
parallel_candidates = 1
sandbox = "{sandbox}"
task_timeout_s = 60
candidate_timeout_s = 300
"""

SCRIPTED_SPACE = """\
# The structured strategies' space in the scripted smoke run: one task model only.
[space]
name = "scripted"
description = "Chain-of-Thought or Step-back, alone or voted, at one of three temperatures"

[blocks]
answerer = { kind = "categorical", choices = ["chain_of_thought", "step_back"] }
ensemble = { kind = "categorical", choices = ["none", "self_consistency"] }
refine_rounds = 0
role_assignment = "none"

[self_consistency]
samples = 3

[roles.solver]
temperature = { kind = "categorical", choices = [0.1, 0.5, 0.9] }
"""

_FIELD = re.compile(r"^## (\w+)\n<", re.M)


class ScriptedModels:
    """Both roles, answered from the request body alone (the server calls it).

    The meta agent returns a variant of a toy agent named by a hash of the
    search seed and the prompt (so each seed searches differently); the task
    model answers each requested ``## field``, with the gold answer or a wrong
    one by a hash of the request.
    """

    def __init__(self, gold: dict[str, str]) -> None:
        self.gold = gold
        self.seed = 0

    def __call__(self, body: dict[str, Any]) -> Any:
        from metasearch.testing.campaigns import toy_agent
        from metasearch.testing.fake_openai import Reply

        messages = json.dumps(body.get("messages", []), sort_keys=True)
        if body.get("model") == "scripted-meta":
            tag = hashlib.sha256(f"{self.seed}|{messages}".encode()).hexdigest()[:8]
            code = toy_agent(calls=1 + int(tag, 16) % 2, instruction=f"Solve it ({tag}).")
            return Reply(text=f"## thought\nVariant {tag}.\n\n## name\nVariant {tag}\n\n"
                              f"## code\n```python\n{code}```\n")
        text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        gold = next((a for q, a in self.gold.items() if q in text), None)
        digest = hashlib.sha256(f"{messages}|{body.get('temperature')}".encode()).digest()
        number = "0" if gold is None else gold if digest[0] % 2 == 0 else str(int(gold) + 1)
        fields = _FIELD.findall(text) or ["thinking", "answer"]
        parts = []
        for f in dict.fromkeys(fields):
            value = {"answer": number, "code": f"```python\nprint({number})\n```"}.get(f, "ok")
            parts.append(f"## {f}\n{value}")
        return Reply(text="\n\n".join(parts))


@contextlib.contextmanager
def scripted_config(out: Path, budget: int,
                    sandbox: str) -> Iterator[tuple[Path, ScriptedModels]]:
    """Write the scripted campaign file into ``out`` and serve its two models while in use."""
    from metasearch.suites import get_suite
    from metasearch.testing.fake_openai import FakeOpenAIServer

    out.mkdir(parents=True, exist_ok=True)
    space = out / "scripted_space.toml"
    space.write_text(SCRIPTED_SPACE, encoding="utf-8")
    models = ScriptedModels({t.question: t.answer for t in get_suite("arith").load(None)})
    os.environ.setdefault(SCRIPTED_KEY_ENV, "scripted")  # the fake server ignores it
    with FakeOpenAIServer(respond=models) as server:
        path = out / "scripted.toml"
        path.write_text(SCRIPTED_CONFIG.format(url=server.url, key=SCRIPTED_KEY_ENV, budget=budget,
                                               space=space, sandbox=sandbox), encoding="utf-8")
        yield path, models


# ------------------------------------------------------------------ running the campaigns

@dataclass
class RunResult:
    """One campaign's figures (or why it has none)."""

    strategy: str
    seed: int
    directory: str
    error: str = ""
    wall_s: float | None = None
    curve: list[tuple[int, float]] = field(default_factory=list)  # (search calls billed, best)
    seed_calls: int = 0  # calls the seeds billed in this run (0 when they replayed)
    search_calls: int = 0  # calls the search billed
    last_start: int = 0  # calls billed (seeds included) when the last candidate started
    candidates: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    auc: float | None = None
    calls_to_target: int | None = None
    pick: dict[str, Any] | None = None
    best_seed: dict[str, Any] | None = None
    paired: dict[str, Any] | None = None
    budget_ok: bool | None = None


def run_campaign_dir(config: Path, directory: Path, overrides: dict[str, Any]) -> float:
    """Run or resume one campaign to its end; its wall time (0 when it had finished before)."""
    import metasearch

    done = directory / DONE
    if done.is_file():
        return float(json.loads(done.read_text(encoding="utf-8"))["wall_s"])
    start = time.monotonic()
    metasearch.run_campaign(config, resume=True, overrides=overrides | {"run.out": str(directory)})
    wall = time.monotonic() - start
    done.write_text(json.dumps({"wall_s": wall}), encoding="utf-8")
    return wall


def start_from_seeds(directory: Path, seeds_dir: Path) -> None:
    """A new run directory holding a copy of the seeds campaign's response cache."""
    if directory.exists():
        return
    tmp = directory.with_name(f".{directory.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # a copy interrupted earlier
    tmp.mkdir(parents=True)
    shutil.copytree(seeds_dir / "cache", tmp / "cache")
    os.replace(tmp, directory)


def seed_override(name: str, seed: int) -> dict[str, Any]:
    """``search.<name>.seed``, where the strategy has such a setting."""
    fields = getattr(get_strategy(name).settings, "model_fields", {})
    return {f"search.{name}.seed": seed} if "seed" in fields else {}


# ------------------------------------------------------------------ figures of one run

def billed(r: CandidateRecord) -> int:
    return max(0, int(r.calls) - int(r.meta.get("cached_calls", 0) or 0))


def read_run(res: RunResult, budget: int) -> None:
    """Fill ``res`` from its campaign directory's archive."""
    with Archive.open(res.directory, readonly=True) as archive:
        records = archive.records()
    seeds = [r for r in records if r.is_seed]
    search = [r for r in records if not r.is_seed]
    best_seed = best_of(seeds)
    best = best_seed.val.mean if best_seed is not None and best_seed.val else 0.0
    res.seed_calls = sum(billed(r) for r in seeds)
    x, curve = 0, [(0, best)]
    for r in search:
        res.last_start = res.seed_calls + x
        x += billed(r)
        if r.status == "ok" and r.val is not None and r.val.mean > best:
            best = r.val.mean
        curve.append((x, best))
    res.curve, res.search_calls, res.candidates = curve, x, len(search)
    res.statuses = {s: sum(r.status == s for r in search) for s in sorted({r.status for r in search})}
    res.budget_ok = not search or res.last_start < budget
    res.auc = area(curve, budget)
    pick = best_of(records)
    res.pick, res.best_seed = summary_of(pick), summary_of(best_seed)
    if pick is not None and best_seed is not None and pick.test and best_seed.test:
        shared = sorted(set(pick.test.scores) & set(best_seed.test.scores))
        if shared:
            diff = paired_bootstrap([pick.test.scores[t] for t in shared],
                                    [best_seed.test.scores[t] for t in shared])
            res.paired = diff.to_dict()


def summary_of(r: CandidateRecord | None) -> dict[str, Any] | None:
    if r is None:
        return None
    split = {k: None if s is None else {"mean": s.mean, "ci_low": s.ci_low, "ci_high": s.ci_high,
                                        "n": s.n, "scores": dict(s.scores)}
             for k, s in (("val", r.val), ("test", r.test))}
    return {"id": r.id, "name": r.name, **split}


def value_at(curve: Sequence[tuple[int, float]], x: float) -> float:
    """The best-so-far step function at ``x`` calls (the last point at or before it)."""
    y = curve[0][1]
    for cx, cy in curve:
        if cx > x:
            break
        y = cy
    return y


def area(curve: Sequence[tuple[int, float]], budget: int) -> float:
    """Mean of the best-so-far score over [0, budget] calls (the area divided by the budget)."""
    total = 0.0
    for (x0, y), (x1, _) in zip(curve, [*curve[1:], (budget, 0.0)], strict=True):
        lo, hi = min(x0, budget), min(max(x1, x0), budget)
        total += y * (hi - lo)
    return total / budget


def calls_to(curve: Sequence[tuple[int, float]], target: float, budget: int) -> int | None:
    """The first number of calls at which the curve reaches ``target`` within the budget."""
    return next((x for x, y in curve if y >= target - 1e-12 and x <= budget), None)


# ------------------------------------------------------------------ across runs

def summarise(runs: Sequence[RunResult], budget: int) -> dict[str, Any]:
    """Per strategy: AUC and its ratio to adas, calls to adas's final best, the test picks."""
    ok = [r for r in runs if not r.error and r.curve]
    base = [r for r in ok if r.strategy == BASELINE]
    target = (sum(value_at(r.curve, budget) for r in base) / len(base)) if base else None
    base_calls = (sum(min(r.search_calls, budget) for r in base) / len(base)) if base else None
    base_auc = _mean([r.auc for r in base])
    for r in ok:
        r.calls_to_target = None if target is None else calls_to(r.curve, target, budget)
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r.strategy for r in runs):
        mine = [r for r in ok if r.strategy == name]
        aucs = [r.auc for r in mine if r.auc is not None]
        reach = [r.calls_to_target for r in mine]
        median = _median_reach(reach)
        out[name] = {
            "runs": len(mine), "failed": sum(1 for r in runs if r.strategy == name and r.error),
            "auc_mean": _mean(aucs), "auc_min": min(aucs, default=None),
            "auc_max": max(aucs, default=None),
            "auc_ratio_to_adas": (_mean(aucs) / base_auc
                                  if aucs and base_auc else None),  # None: no adas, or 0
            "calls_to_adas_final_best": reach,
            "calls_to_adas_final_best_median": median,
            "share_of_adas_calls": (median / base_calls
                                    if median is not None and base_calls else None),
            "final_best_mean": _mean([value_at(r.curve, budget) for r in mine]),
            "best_at": {str(b): _mean([value_at(r.curve, b) for r in mine])
                        for b in checkpoints(budget)},
            "pooled_test_vs_best_seed": pooled(mine),
        }
    winners = {}
    for b in checkpoints(budget):  # which strategy leads at a quarter, half and all the budget
        means = {n: s["best_at"][str(b)] for n, s in out.items() if s["best_at"][str(b)] is not None}
        top = max(means.values(), default=None)
        winners[str(b)] = sorted(n for n, m in means.items() if top is not None and m == top)
    return {"target_adas_final_best": target, "adas_calls_mean": base_calls,
            "leaders_at": winners, "strategies": out}


def checkpoints(budget: int) -> list[int]:
    return sorted({max(1, budget // 4), max(1, budget // 2), budget})


def pooled(runs: Sequence[RunResult]) -> dict[str, Any] | None:
    """The picks' per-task test scores averaged over seeds, minus the best seed's, paired.

    The interval is over test tasks only; the spread between seeds is in the runs' rows.
    """
    pairs = [(r.pick["test"]["scores"], r.best_seed["test"]["scores"]) for r in runs
             if r.pick and r.best_seed and r.pick.get("test") and r.best_seed.get("test")]
    if not pairs:
        return None
    tasks = sorted(set.intersection(*(set(p) & set(s) for p, s in pairs)))
    if not tasks:
        return None
    a = [sum(p[t] for p, _ in pairs) / len(pairs) for t in tasks]
    b = [sum(s[t] for _, s in pairs) / len(pairs) for t in tasks]
    return paired_bootstrap(a, b).to_dict() | {"seeds": len(pairs)}


def _mean(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return sum(vals) / len(vals) if vals else None


def _median_reach(reach: Sequence[int | None]) -> float | None:
    """Median calls to the target, a run that never reached it counting as infinitely many."""
    if not reach:
        return None
    vals = sorted(math.inf if r is None else float(r) for r in reach)
    mid = len(vals) // 2
    m = vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2
    return None if math.isinf(m) else m


def plot(runs: Sequence[RunResult], budget: int, path: Path, title: str) -> None:
    """Best validation score against search calls: each strategy's mean, and a min-max band."""
    from matplotlib.figure import Figure  # no pyplot: an Agg canvas, no global state

    fig = Figure(figsize=(8, 5), dpi=100)
    ax = fig.subplots()
    xs = [budget * i / (GRID - 1) for i in range(GRID)]
    for i, name in enumerate(dict.fromkeys(r.strategy for r in runs)):
        curves = [r.curve for r in runs if r.strategy == name and not r.error and r.curve]
        if not curves:
            continue
        ys = [[100 * value_at(c, x) for x in xs] for c in curves]
        mean = [sum(col) / len(col) for col in zip(*ys, strict=True)]
        line = ax.step(xs, mean, where="post", label=f"{name} ({len(curves)} seeds)",
                       linestyle=("-", "--", "-.", ":")[i % 4], linewidth=2)[0]  # ties stay visible
        if len(curves) > 1:
            ax.fill_between(xs, [min(c) for c in zip(*ys, strict=True)],
                            [max(c) for c in zip(*ys, strict=True)], step="post",
                            alpha=0.2, color=line.get_color())
    ax.set_xlabel("LLM calls billed by the search (both roles)")
    ax.set_ylabel("best validation score so far (%)")
    ax.set_xlim(0, budget)
    ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


# ------------------------------------------------------------------ printing

def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _diff(p: dict[str, Any] | None) -> str:
    if not p:
        return "-"
    return (f"{100 * p['mean_diff']:+.1f} pts [{100 * p['ci_low']:+.1f}, "
            f"{100 * p['ci_high']:+.1f}] (n={p['n']})")


def report(result: dict[str, Any], runs: Sequence[RunResult]) -> None:
    budget = result["budget"]
    print(f"\nsearch efficiency ({result['model']} model{', SMOKE RUN: not a finding' if result['smoke'] else ''}); "
          f"budget {budget} search calls; adas's final best (target) {_pct(result['summary']['target_adas_final_best'])}")
    print(f"{'strategy':<9} {'seed':>4} {'calls':>6} {'cands':>5} {'AUC':>7} {'final':>7} "
          f"{'to target':>9} {'pick (test)':<34} pick - best seed on test (95% CI)")
    for r in runs:
        if r.error:
            print(f"{r.strategy:<9} {r.seed:>4}  FAILED: {r.error}")
            continue
        pick = r.pick or {}
        test = pick.get("test") or {}
        name = f"{pick.get('id', '-')} {_pct(test.get('mean'))}"
        reach = "never" if r.calls_to_target is None else str(r.calls_to_target)
        print(f"{r.strategy:<9} {r.seed:>4} {r.search_calls:>6} {r.candidates:>5} {_pct(r.auc):>7} "
              f"{_pct(value_at(r.curve, budget)):>7} {reach:>9} {name:<34} {_diff(r.paired)}")
    print(f"\n{'strategy':<9} {'runs':>4} {'AUC mean [min, max]':<24} {'AUC / adas':>10} "
          f"{'median calls to target':>23} {'share of adas calls':>20}  pooled pick - best seed")
    for name, s in result["summary"]["strategies"].items():
        auc = f"{_pct(s['auc_mean'])} [{_pct(s['auc_min'])}, {_pct(s['auc_max'])}]"
        ratio = "-" if s["auc_ratio_to_adas"] is None else f"{s['auc_ratio_to_adas']:.3f}"
        med = s["calls_to_adas_final_best_median"]
        share = s["share_of_adas_calls"]
        print(f"{name:<9} {s['runs']:>4} {auc:<24} {ratio:>10} "
              f"{'never (median)' if med is None else f'{med:g}':>23} "
              f"{'-' if share is None else f'{share:.2f}':>20}  {_diff(s['pooled_test_vs_best_seed'])}")
    leaders = result["summary"]["leaders_at"]
    print("leading (highest mean best-so-far over seeds) at "
          + "; ".join(f"{b} calls: {', '.join(n) or '-'}" for b, n in leaders.items()))
    for name, why in result["skipped"].items():
        print(f"note: {name} skipped: {why}")
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"\nwrote {result['json']} and {result['figure']}")


# ------------------------------------------------------------------ main

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=("scripted", "local"), required=True)
    p.add_argument("--config", type=Path, default=ROOT / "experiments" / "strategies.toml",
                   help="the campaign file of --model local")
    p.add_argument("--out", type=Path, default=None,
                   help="where the campaigns go (default: runs/strategies, or a new temporary "
                        "directory for --model scripted)")
    p.add_argument("--strategies", default=",".join(STRATEGIES),
                   help="comma-separated registered strategy names (adas is the baseline)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated search seeds")
    p.add_argument("--budget", type=int, default=None,
                   help="budget.max_search_calls (default: the config's; 40 for scripted)")
    p.add_argument("--sandbox", default=None, choices=("auto", "bwrap", "unshare", "none"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for every campaign, e.g. search.mcts.max_children=2")
    return p.parse_args(argv)


def plan(args: argparse.Namespace) -> tuple[list[str], dict[str, str], list[int], dict[str, Any]]:
    """Strategies to run, those skipped (and why), seeds, overrides; raises ValueError."""
    wanted = [s.strip() for s in args.strategies.split(",") if s.strip()]
    known = strategy_names()
    skipped = {s: "not registered (see `metasearch strategies`)" for s in wanted if s not in known}
    names = [s for s in wanted if s in known]
    if BASELINE not in names:
        raise ValueError(f"--strategies must include {BASELINE!r}: every ratio is against it "
                         f"(got {args.strategies!r}).")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers >= 0, such as 0,1,2; "
                         f"got {args.seeds!r}.") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds must name distinct integers >= 0, such as 0,1,2; got "
                         f"{args.seeds!r}.")
    overrides: dict[str, Any] = {}
    for item in args.set:  # values read as TOML, as `metasearch run --set` reads them
        try:
            key, value = parse_override(item)
        except MetasearchError as exc:
            raise ValueError(f"--set: {exc}") from None
        overrides[key] = value
    if args.budget is not None:
        if args.budget < 1:
            raise ValueError(f"--budget must be an integer >= 1, not {args.budget}.")
        overrides["budget.max_search_calls"] = args.budget
    if args.sandbox is not None:
        overrides["run.sandbox"] = args.sandbox
    return names, skipped, seeds, overrides


def budget_of(config: Path, overrides: dict[str, Any]) -> int:
    if "budget.max_search_calls" in overrides:
        return int(overrides["budget.max_search_calls"])
    raw = tomllib.loads(config.read_text(encoding="utf-8"))
    value = raw.get("budget", {}).get("max_search_calls")
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{config} sets no budget.max_search_calls (the equal call budget of "
                         "every strategy): add it under [budget], or pass --budget N.")
    return value


def run_all(config: Path, out: Path, names: Sequence[str], seeds: Sequence[int],
            overrides: dict[str, Any], models: ScriptedModels | None) -> list[RunResult]:
    """The seeds campaign, then every (seed, strategy) campaign, seed by seed."""
    seeds_dir = out / "seeds"
    print(f"seeds: evaluating the seed agents once in {seeds_dir}", flush=True)
    run_campaign_dir(config, seeds_dir, overrides | {"search.generations": 0})
    runs = []
    for seed in seeds:  # seed by seed: a cut-short run still compares every strategy
        for name in names:
            directory = out / f"{name}-s{seed}"
            res = RunResult(name, seed, str(directory))
            if models is not None:
                models.seed = seed
            print(f"{name} seed {seed}: {directory}", flush=True)
            try:
                start_from_seeds(directory, seeds_dir)
                res.wall_s = run_campaign_dir(
                    config, directory,
                    overrides | {"search.strategy": name} | seed_override(name, seed))
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one broken strategy must not lose the others' results
                res.error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            runs.append(res)
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        names, skipped, seeds, overrides = plan(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    smoke = args.model == "scripted"
    out = args.out or (Path(tempfile.mkdtemp(prefix="search-efficiency-"))
                       if smoke else ROOT / "runs" / "strategies")
    if smoke and (out / "seeds").exists():
        print(f"error: {out} holds an earlier scripted run; the scripted models are served on a "
              "new port each time, so it cannot be resumed. Give a new --out.", file=sys.stderr)
        return 2
    if not smoke and not args.config.is_file():
        print(f"error: --config {args.config} does not exist; give a campaign TOML such as "
              "experiments/strategies.toml.", file=sys.stderr)
        return 2
    start = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            models = None
            if smoke:
                budget = int(overrides.pop("budget.max_search_calls", 40))
                config, models = stack.enter_context(scripted_config(
                    out, budget, overrides.pop("run.sandbox", "auto")))
            else:
                config = args.config
                budget = budget_of(config, overrides)
            runs = run_all(config, out, names, seeds, overrides, models)
    except (MetasearchError, ValueError) as exc:  # the seeds campaign, or the config itself
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    for r in runs:
        if not r.error:
            try:
                read_run(r, budget)
            except (MetasearchError, OSError, ValueError) as exc:
                r.error = f"cannot read its archive: {exc}"
    notes = [f"{n} has no seed setting: its runs differ only by the models' sampling"
             for n in names if not seed_override(n, 0)]
    notes += [f"{r.strategy} seed {r.seed} started a candidate after the budget was spent"
              for r in runs if r.budget_ok is False]
    result: dict[str, Any] = {
        "benchmark": "search_efficiency", "model": args.model, "smoke": smoke,
        "config": str(config), "out": str(out), "budget": budget, "seeds": list(seeds),
        "strategies": list(names), "skipped": skipped, "notes": notes,
        "wall_s": time.monotonic() - start,
        "json": str(out / "search_efficiency.json"), "figure": str(out / "search_efficiency.png"),
    }
    result["summary"] = summarise(runs, budget)
    result["runs"] = [asdict(r) for r in runs]
    plot(runs, budget, Path(result["figure"]),
         f"search efficiency, {args.model} model" + (" (smoke run, not a finding)" if smoke else ""))
    Path(result["json"]).write_text(json.dumps(result, indent=1), encoding="utf-8")
    report(result, runs)
    return 1 if any(r.error for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
