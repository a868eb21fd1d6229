"""The one place that builds and connects parts: gateway, sandbox, bench, strategy, campaign.

Library code takes these parts as arguments (inject, don't construct); the
CLI commands ``run``, ``eval`` and ``archive import`` call these builders, so
the wiring exists once.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metasearch.llm.billed_log import BILLED_FILE, BilledLog
from metasearch.llm.gateway import Gateway
from metasearch.llm.replies import open_owed
from metasearch.llm.settings import (
    BudgetSettings,
    GatewaySettings,
    ModelSettings,
    default_cache_dir,
)
from metasearch.runtime.call_cap import DEFAULT_MAX_CALLS_PER_TASK


def build_gateway(
    *,
    task_model: str | None = None,
    api_base: str | None = None,
    protocol: str = "auto",
    models: Mapping[str, ModelSettings] | None = None,
    cache_dir: Path | None = None,
    cache_enabled: bool = True,
    concurrency: int = 16,
    budget: BudgetSettings | None = None,
    shared: Any = None,
) -> Gateway:
    """A gateway whose response cache lives in ``cache_dir`` (default: the user cache).

    Local weights always live in the user cache, so campaigns share one copy.
    ``shared`` (a ``campaign.workers.SharedState``) gives the database's cache and budget.
    """
    table = dict(models or {})
    if task_model is not None and task_model not in table:
        table[task_model] = ModelSettings(api_base=api_base, protocol=protocol)  # type: ignore[arg-type]
    cache_dir = cache_dir or default_cache_dir()
    settings = GatewaySettings(
        models=table,
        default_concurrency=concurrency,
        cache_dir=cache_dir,
        models_dir=default_cache_dir() / "models",
        cache_enabled=cache_enabled,
        budget=budget or BudgetSettings(),
    )
    if shared is not None:
        return Gateway(settings=settings, cache=shared.cache, budget=shared.budget)
    return Gateway(settings=settings)


def build_sandbox(
    mode: str,
    gateway: Any,
    *,
    allowed_models: Collection[str] | None = None,
    candidate_timeout_s: float = 3600.0,
    scratch_root: Path | None = None,
    prewarm: int = 0,
    call_threads: int = 16,
    memory_mb: int = 2048,
    max_pids: int = 256,
) -> Any:
    """A sandbox runner whose LLM calls go to ``gateway``; ``mode`` as in config.

    ``prewarm`` keeps that many jailed workers ready, started now (a campaign
    with N candidates in flight wants N; a one-off ``eval`` none).
    ``call_threads`` bounds the agents' LLM calls in flight through the runner.
    ``memory_mb`` and ``max_pids`` hold each candidate's whole process tree
    (``[sandbox]``: a cgroup where there is one; the rlimits in any case).
    """
    from metasearch.execution.sandbox import SandboxLimits, SandboxRunner

    limits = SandboxLimits(candidate_timeout_s=candidate_timeout_s, memory_mb=memory_mb,
                           nproc=max_pids, max_pids=max_pids)
    runner = SandboxRunner(mode=mode, limits=limits, gateway=gateway,
                           allowed_models=allowed_models, scratch_root=scratch_root,
                           prewarm=prewarm, call_threads=call_threads)
    if prewarm:
        runner.warm_up()  # the first N candidates start on ready workers too
    return runner


def model_settings(mc: Any, local: Any) -> ModelSettings:
    """Gateway settings of one ``[models.*]`` section (plus ``[local]`` for local models)."""
    return ModelSettings(
        api_base=mc.api_base,
        api_key_env=mc.api_key_env,
        protocol=mc.protocol,
        transport=mc.transport,
        price_input_per_mtok=mc.input_usd_per_mtok,
        price_output_per_mtok=mc.output_usd_per_mtok,
        n_parallel=local.n_parallel,
        n_threads=local.n_threads,
    )


def seeds_dir() -> Path:
    """Where the hand-written seed agents live: ``./archive`` or the one beside the package."""
    here = Path.cwd() / "archive"
    if here.is_dir() and any(here.glob("*.py")):
        return here
    return Path(__file__).resolve().parents[2] / "archive"


def seed_paths(archive_dir: Path, seeds: Sequence[str] | str) -> list[Path]:
    """The seed files a config names (``"all"`` = every ``.py`` in ``archive/``, ADAS order)."""
    from metasearch.runtime.seeds import list_seeds

    if seeds == "all":
        return [Path(s.path) for s in list_seeds(archive_dir)]
    return [archive_dir / f"{name}.py" for name in seeds]


@dataclass
class Bench:
    """The parts every evaluation needs, built and connected once.

    ``run``, ``eval`` and ``archive import`` all evaluate code through one of
    these: a gateway (cache, budget, limits), a sandbox runner whose LLM
    calls go to that gateway, the suite, and the agents' settings.
    """

    gateway: Gateway
    runner: Any
    suite: Any
    settings: Any  # runtime.settings.AgentSettings (candidate unset)

    def evaluate(self, code: str, tasks: Sequence[Any], *, candidate: str,
                 on_outcome: Any = None) -> Any:
        """Run ``code`` on ``tasks`` in the sandbox and score it (an ``Evaluation``)."""
        from metasearch.evaluation.run import evaluate_agent
        from metasearch.runtime.settings import AgentSettings

        settings = AgentSettings(**(self.settings.to_json() | {"candidate": candidate}))
        return evaluate_agent(code, tasks, scorer=self.suite.scorer, runner=self.runner,
                              settings=settings, gateway=self.gateway, on_outcome=on_outcome)

    def close(self) -> None:
        for part in (self.runner, self.gateway):
            try:
                part.close()
            except Exception:  # closing is best effort
                pass

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_bench(
    suite: Any,
    *,
    task_model: str,
    models: Mapping[str, ModelSettings] | None = None,
    api_base: str | None = None,
    protocol: str = "auto",
    cache_dir: Path | None = None,
    cache_enabled: bool = True,
    concurrency: int = 4,
    budget: BudgetSettings | None = None,
    sandbox: str = "auto",
    max_tokens: int = 512,
    task_timeout_s: float = 300.0,
    candidate_timeout_s: float = 3600.0,
    max_calls_per_task: int = DEFAULT_MAX_CALLS_PER_TASK,
    prewarm: int = 0,
    preflight: Sequence[str] = (),
    alternatives: Sequence[str] = (),
    memory_mb: int = 2048,
    max_pids: int = 256,
    executor: str = "local",
    ray: Any = None,
    shared: Any = None,
) -> Bench:
    """Build and connect a :class:`Bench`; on any failure nothing is left running.

    ``preflight`` names models to check (key set, endpoint reachable, local
    weights assembled) before the sandbox starts; the task model and the
    ``alternatives`` (other task models agents may name with ``model=``;
    give their settings in ``models``) always are. ``executor="ray"`` runs
    the agents on the cluster ``ray`` (a ``RayConfig``) names instead.
    """
    from metasearch.runtime.settings import AgentSettings

    gateway = build_gateway(task_model=task_model, api_base=api_base, protocol=protocol,
                            models=models, cache_dir=cache_dir, cache_enabled=cache_enabled,
                            concurrency=concurrency, budget=budget, shared=shared)
    try:
        for model in dict.fromkeys([task_model, *alternatives, *preflight]):
            gateway.preflight(model)
        settings = AgentSettings(
            model=task_model, answer_hint=suite.answer_hint,
            protocol=gateway.resolve_protocol(task_model), max_tokens=max_tokens,
            task_timeout_s=task_timeout_s, threads=concurrency,
            max_calls_per_task=max_calls_per_task,
            alternatives={m: gateway.resolve_protocol(m) for m in alternatives
                          if m != task_model},
        )
        # every candidate in flight may have `concurrency` calls waiting on the gateway
        call_threads = max(16, concurrency * max(1, prewarm))
        if executor == "ray":
            from metasearch.execution.ray_executor import build_ray_runner

            runner = build_ray_runner(gateway, ray, sandbox=sandbox, allowed=settings.allowed,
                                      candidate_timeout_s=candidate_timeout_s,
                                      prewarm=prewarm, call_threads=call_threads,
                                      memory_mb=memory_mb, max_pids=max_pids,
                                      shared=shared)
        else:
            runner = build_sandbox(sandbox, gateway, allowed_models=settings.allowed,
                                   candidate_timeout_s=candidate_timeout_s, prewarm=prewarm,
                                   call_threads=call_threads, memory_mb=memory_mb,
                                   max_pids=max_pids)
    except BaseException:
        gateway.close()
        raise
    return Bench(gateway=gateway, runner=runner, suite=suite, settings=settings)


def build_campaign(
    config: Any,
    *,
    resume: bool = False,
    tracking_uri: str | None = None,
    reporter: Any = None,
    config_text: str | None = None,
    storage: str | None = None,
    worker: bool = False,
) -> Any:
    """Wire a :class:`~metasearch.campaign.loop.Campaign` from a validated ``CampaignConfig``.

    ``storage`` (a database URL) keeps the records, cache and budget there, shared by
    every ``worker`` of the campaign (see :mod:`metasearch.campaign.workers`).

    The caller closes ``campaign.gateway``, ``campaign.runner`` and
    ``campaign.archive`` (``close_campaign`` does all three).
    """
    from metasearch.campaign.loop import Campaign, NullReporter
    from metasearch.campaign.summary import prior_spend
    from metasearch.errors import ConfigError
    from metasearch.runtime.seeds import load_seed
    from metasearch.search.registry import StrategyContext, get_strategy
    from metasearch.store.archive import Archive
    from metasearch.store.tracking import Tracker
    from metasearch.suites import get_suite, split_tasks

    out = config.run.out_dir
    existing = (out / "archive.jsonl").exists() and (out / "archive.jsonl").stat().st_size > 0
    if storage is not None:
        existing = False  # the database's records are checked when the worker joins
    if existing and not resume:
        raise ConfigError(
            f"The campaign directory {out} already holds a campaign (archive.jsonl). Pass "
            "--resume to continue it, or set run.out (or --out) to a new directory."
        )
    # --resume on a directory without records (absent, or killed before its first record)
    # starts the campaign: a requeued job always passes --resume. A different campaign's
    # config.json there still refuses (check_resume_config below).
    asked_resume, resume = resume, resume and existing
    # Read everything that can fail before anything is written or started.
    opts = {"difficulty": config.suite.difficulty} if config.suite.difficulty is not None else {}
    suite = get_suite(config.suite.name, **opts)
    splits = split_tasks(suite.load(config.suite.data_path), seed=config.suite.seed,
                         n_val=config.suite.n_val, n_test=config.suite.n_test)
    paths = seed_paths(seeds_dir(), config.search.seeds)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise ConfigError(
            f"search.seeds names seed agents that do not exist: {', '.join(p.stem for p in missing)}"
            f". Available in {seeds_dir()}: "
            f"{', '.join(sorted(p.stem for p in seeds_dir().glob('*.py')))}."
        )
    seeds = [load_seed(p) for p in paths]
    test_seeds = config.search.test_seeds
    unknown = [n for n in test_seeds if n not in {p.stem for p in paths}] \
        if test_seeds != "all" else []
    if unknown:
        raise ConfigError(
            f"search.test_seeds names {', '.join(unknown)}, which search.seeds does not "
            f"include (it has {', '.join(p.stem for p in paths)}). Test only seeds that run.")
    if asked_resume:
        check_resume_config(out, config)
    if asked_resume and not resume and reporter is not None:
        reporter.phase(f"--resume: {out} holds no records yet, so the campaign starts from the "
                       "beginning.")

    out.mkdir(parents=True, exist_ok=True)
    if config_text is not None and (not resume or not (out / "config.toml").exists()):
        _write_atomic(out / "config.toml", config_text)
    if not resume:  # the effective config, overrides included (no records: this one starts)
        _write_atomic(out / "config.json",
                      json.dumps(config.to_flat_params(), indent=1, sort_keys=True))
    meta_m, task_m = config.models.meta, config.models.task
    models = {task_m.model: model_settings(task_m, config.local)}
    for alt in task_m.alternatives:  # other task models agents may name (started on demand)
        models.setdefault(alt.model, model_settings(alt, config.local))
    models.setdefault(meta_m.model, model_settings(meta_m, config.local))
    budget = BudgetSettings(max_usd=config.budget.max_usd, max_calls=config.budget.max_calls,
                            max_tokens=config.budget.max_tokens)
    shared = None
    if storage is not None:
        from metasearch.campaign.workers import join_shared

        shared = join_shared(config, out, storage, resume=resume, worker=worker)
        resume = resume or worker or len(shared.archive) > 0
    archive = shared.archive if shared is not None else Archive.open(out)  # JSONL: its lock
    bench = None
    try:
        bench = build_bench(
            suite, task_model=task_m.model, models=models, cache_dir=out / "cache",
            concurrency=config.run.concurrency, budget=budget, sandbox=config.run.sandbox,
            max_tokens=task_m.max_tokens, task_timeout_s=config.run.task_timeout_s,
            candidate_timeout_s=config.run.candidate_timeout_s,
            max_calls_per_task=config.run.max_calls_per_task,
            prewarm=config.run.parallel_candidates, preflight=[meta_m.model],
            alternatives=[a.model for a in task_m.alternatives],
            memory_mb=config.sandbox.memory_mb, max_pids=config.sandbox.max_pids,
            executor=config.run.executor, ray=config.ray, shared=shared,
        )
        bench.gateway.budget.add_prior(**prior_spend(archive))
        if shared is None:  # (a shared campaign's budget row is its database's)
            bench.gateway.owed = open_owed(out)  # set by `cache import --continue-spend`
            bench.gateway.billed_log = BilledLog(out / BILLED_FILE)
        if config.run.executor == "ray" and reporter is not None:
            reporter.phase(f"executor ray: {bench.runner.describe()}")
        spec = get_strategy(config.search.strategy)
        strategy = spec.build(StrategyContext(
            settings=config.search.settings, config=config, gateway=bench.gateway, suite=suite,
            parallel=config.run.parallel_candidates, directory=out, resume=resume,
            val_tasks=tuple(splits.validation), shared=shared))
        uri = tracking_uri or config.run.tracking_uri
        tracker = Tracker.for_campaign(out, tracking_uri=uri,
                                       experiment_name=shared.name if shared else None)
        params = config.to_flat_params() | {
            "runtime.protocol": bench.settings.protocol,
            "runtime.meta_protocol": bench.gateway.resolve_protocol(meta_m.model)}
        models = {"meta_model": meta_m.model, "task_model": task_m.model}
        if shared is not None and uri:
            from metasearch.campaign.workers import start_shared_tracker

            start_shared_tracker(tracker, shared, params, models)
        else:
            tracker.start(params, models=models)
    except BaseException:
        if bench is not None:
            bench.close()  # a failed build leaves nothing running or locked
        archive.close()
        if shared is not None:
            shared.close()
        raise
    campaign = Campaign(
        directory=out, archive=archive, strategy=strategy, runner=bench.runner,
        gateway=bench.gateway, suite=suite, val_tasks=list(splits.validation),
        test_tasks=list(splits.test), seeds=seeds, settings=bench.settings,
        parallel_candidates=config.run.parallel_candidates,
        pruning=config.pruning.enabled, minibatch=config.pruning.minibatch,
        confidence=config.pruning.confidence, tracker=tracker,
        reporter=reporter or NullReporter(), title=f"Campaign {out.name}",
        max_search_s=(None if config.budget.max_search_minutes is None
                      else 60.0 * config.budget.max_search_minutes),
        max_search_calls=config.budget.max_search_calls,
        coordinator=shared.coordinator if shared is not None else None,
        test_seeds=None if test_seeds == "all" else tuple(test_seeds),
    )
    if tracker.owned is not None:  # one server, several workers: each logs its own records
        tracker.owned = campaign.committed.__contains__
    return campaign


#: Config fields a resumed campaign must keep: changing them makes the archived
#: validation scores incomparable with new ones (other tasks, another task model).
PINNED_ON_RESUME = ("suite.", "models.task.")


def check_resume_config(out: Path, config: Any) -> None:
    """Refuse to resume with a different suite or task model than the campaign started with.

    Generations, budget, concurrency, the meta model and the search knobs may
    change on resume; they do not change what a validation score means.
    """
    from metasearch.config import load_config
    from metasearch.errors import ConfigError

    try:
        if (out / "config.json").is_file():
            stored = json.loads((out / "config.json").read_text(encoding="utf-8"))
        elif (out / "config.toml").is_file():  # campaigns from before config.json
            stored = load_config(out / "config.toml", {"run.out": str(out)}).to_flat_params()
        else:
            return
    except (OSError, ValueError, ConfigError):
        return  # an unreadable record of the old config: nothing to compare against
    now = config.to_flat_params()
    changed = [k for k in sorted(set(stored) & set(now))
               if k.startswith(PINNED_ON_RESUME) and str(stored[k]) != now[k]]
    if changed:
        what = "; ".join(f"{k} was {stored[k]!r}, now {now[k]!r}" for k in changed)
        raise ConfigError(
            f"Cannot resume the campaign in {out}: {what}. The archived validation scores were "
            "measured on the original tasks with the original task model, so new scores would "
            "not be comparable. Restore those values (see its config.json), or start a new "
            "campaign with --out NEW_DIR."
        )


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` so that a kill leaves the old file or the new one, never half of it."""
    from metasearch import atomic

    try:
        atomic.write_text(path, text)
    except OSError as exc:  # a full disk: name the file
        from metasearch.diskfull import disk_full, is_disk_full

        if is_disk_full(exc):
            raise disk_full(path, exc) from exc
        raise


def close_campaign(campaign: Any) -> None:
    """Release what :func:`build_campaign` started, in reverse order."""
    for part in (campaign.runner, campaign.gateway, campaign.archive,
                 *([campaign.coordinator] if campaign.coordinator is not None else [])):
        try:
            part.close()
        except Exception:  # closing is best effort; the archive is already durable
            pass


