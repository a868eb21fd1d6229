"""The one place that builds gateways and sandboxes from settings.

Library code takes these parts as arguments (inject, don't construct); the
CLI and the campaign runner call these functions once.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from metasearch.llm.gateway import Gateway
from metasearch.llm.settings import (
    BudgetSettings,
    GatewaySettings,
    ModelSettings,
    default_cache_dir,
)


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
) -> Gateway:
    """A gateway whose response cache lives in ``cache_dir`` (default: the user cache).

    Local weights always live in the user cache, so campaigns share one copy.
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
    return Gateway(settings=settings)


def build_sandbox(
    mode: str,
    gateway: Any,
    *,
    allowed_models: Collection[str] | None = None,
    candidate_timeout_s: float = 3600.0,
    scratch_root: Path | None = None,
    prewarm: bool = False,
) -> Any:
    """A sandbox runner whose LLM calls go to ``gateway``; ``mode`` as in config.

    ``prewarm`` keeps one jailed worker ready between runs (campaigns run
    many candidates; a one-off ``eval`` does not need it).
    """
    from metasearch.execution.sandbox import SandboxLimits, SandboxRunner

    limits = SandboxLimits(candidate_timeout_s=candidate_timeout_s)
    return SandboxRunner(mode=mode, limits=limits, gateway=gateway,
                         allowed_models=allowed_models, scratch_root=scratch_root,
                         prewarm=prewarm)


def model_settings(mc: Any, local: Any) -> ModelSettings:
    """Gateway settings of one ``[models.*]`` section (plus ``[local]`` for local models)."""
    return ModelSettings(
        api_base=mc.api_base,
        api_key_env=mc.api_key_env,
        protocol=mc.protocol,
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


def build_campaign(
    config: Any,
    *,
    resume: bool = False,
    tracking_uri: str | None = None,
    reporter: Any = None,
    config_text: str | None = None,
) -> Any:
    """Wire a :class:`~metasearch.campaign.loop.Campaign` from a validated ``CampaignConfig``.

    The caller closes ``campaign.gateway``, ``campaign.runner`` and
    ``campaign.archive`` (``close_campaign`` does all three).
    """
    from metasearch.store.archive import Archive
    from metasearch.campaign.loop import NullReporter
    from metasearch.errors import ConfigError
    from metasearch.runtime.seeds import load_seed
    from metasearch.search.adas.strategy import seed_paths
    from metasearch.suites import get_suite, split_tasks

    out = config.run.out_dir
    existing = (out / "archive.jsonl").exists() and (out / "archive.jsonl").stat().st_size > 0
    if existing and not resume:
        raise ConfigError(
            f"The campaign directory {out} already holds a campaign (archive.jsonl). Pass "
            "--resume to continue it, or set run.out (or --out) to a new directory."
        )
    if resume and not existing:
        raise ConfigError(
            f"--resume was given but {out} holds no campaign yet (no archive.jsonl). Drop "
            "--resume to start a new one."
        )
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
    if resume:
        check_resume_config(out, config)

    out.mkdir(parents=True, exist_ok=True)
    if config_text is not None and not (out / "config.toml").exists():
        (out / "config.toml").write_text(config_text, encoding="utf-8")
    if not resume and not (out / "config.json").exists():  # the effective config, overrides included
        (out / "config.json").write_text(
            json.dumps(config.to_flat_params(), indent=1, sort_keys=True), encoding="utf-8")
    meta_m, task_m = config.models.meta, config.models.task
    models = {task_m.model: model_settings(task_m, config.local)}
    models.setdefault(meta_m.model, model_settings(meta_m, config.local))
    budget = BudgetSettings(max_usd=config.budget.max_usd, max_calls=config.budget.max_calls,
                            max_tokens=config.budget.max_tokens)
    archive = Archive.open(out)  # takes the campaign's lock first
    started: list[Any] = [archive]
    try:
        gateway = build_gateway(models=models, cache_dir=out / "cache",
                                concurrency=config.run.concurrency, budget=budget)
        started.append(gateway)
        return _wire(config, out, archive, gateway, suite, splits, seeds, started,
                     tracking_uri=tracking_uri, reporter=reporter or NullReporter())
    except BaseException:
        for part in reversed(started):  # a failed build leaves nothing running or locked
            try:
                part.close()
            except Exception:
                pass
        raise


def _wire(config: Any, out: Path, archive: Any, gateway: Gateway, suite: Any, splits: Any,
          seeds: list[Any], started: list[Any], *, tracking_uri: str | None,
          reporter: Any) -> Any:
    """The part of :func:`build_campaign` that starts things (after all checks passed)."""
    from metasearch.campaign.loop import Campaign, prior_spend
    from metasearch.runtime.settings import AgentSettings
    from metasearch.search.adas.strategy import AdasStrategy
    from metasearch.search.novelty import ArchiveDuplicates
    from metasearch.search.adas.prompts import TaskBrief
    from metasearch.search.adas.proposer import Proposer
    from metasearch.store.tracking import Tracker
    from metasearch.candidate.validate import validate_code

    meta_m, task_m = config.models.meta, config.models.task
    gateway.budget.add_prior(**prior_spend(archive))
    for model in dict.fromkeys([task_m.model, meta_m.model]):
        gateway.preflight(model)
    meta_protocol = gateway.resolve_protocol(meta_m.model)
    proposer = Proposer(
        complete=gateway.complete, model=meta_m.model, temperature=meta_m.temperature,
        max_tokens=meta_m.max_tokens, output_format=meta_protocol,
        reflexion_rounds=config.search.reflexion_rounds,
        repair_rounds=config.search.repair_rounds,
        validate=validate_code,
        is_duplicate=ArchiveDuplicates(archive, near=config.search.near_duplicates),
    )
    strategy = AdasStrategy(
        proposer=proposer,
        # no examples from the splits: the meta agent must not see validation or test
        # gold answers; the suite's description carries its own example
        task=TaskBrief.from_suite(suite),
        archive_context=config.search.archive_context,
        idea_hints=config.search.idea_hints,
    )
    settings = AgentSettings(
        model=task_m.model, answer_hint=suite.answer_hint,
        protocol=gateway.resolve_protocol(task_m.model), max_tokens=task_m.max_tokens,
        task_timeout_s=config.run.task_timeout_s, threads=config.run.concurrency,
    )
    runner = build_sandbox(config.run.sandbox, gateway, allowed_models=[task_m.model],
                           candidate_timeout_s=config.run.candidate_timeout_s, prewarm=True)
    started.append(runner)
    tracker = Tracker.for_campaign(out, tracking_uri=tracking_uri or config.run.tracking_uri)
    tracker.start(config.to_flat_params() | {"runtime.protocol": settings.protocol,
                                             "runtime.meta_protocol": meta_protocol},
                  models={"meta_model": meta_m.model, "task_model": task_m.model})
    return Campaign(
        directory=out, archive=archive, strategy=strategy, runner=runner, gateway=gateway,
        suite=suite, val_tasks=list(splits.validation), test_tasks=list(splits.test),
        seeds=seeds, settings=settings, generations=config.search.generations,
        debug_rounds=config.search.debug_rounds, attempts=config.search.attempts,
        pruning=config.pruning.enabled,
        minibatch=config.pruning.minibatch, confidence=config.pruning.confidence,
        tracker=tracker, reporter=reporter, title=f"Campaign {out.name}",
        max_search_s=(None if config.budget.max_search_minutes is None
                      else 60.0 * config.budget.max_search_minutes),
    )


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


def close_campaign(campaign: Any) -> None:
    """Release what :func:`build_campaign` started, in reverse order."""
    for part in (campaign.runner, campaign.gateway, campaign.archive):
        try:
            part.close()
        except Exception:  # closing is best effort; the archive is already durable
            pass


