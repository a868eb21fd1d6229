"""The ``optuna`` strategy: an Optuna study over a declarative search space.

``SPEC`` is what the strategy registry loads. :func:`build` opens (or
creates) the campaign's one study, in a journal file in the campaign
directory unless ``search.optuna.storage`` names an RDB URL, and records where
it is in ``optuna.json`` (:mod:`.storage`).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import optuna

from metasearch.errors import ConfigError
from metasearch.search.optuna.settings import OptunaSettings
from metasearch.search.optuna.storage import (
    STUDY_FILE,
    StudyLocation,
    default_location,
    open_storage,
    own_schema,
    read_location,
    write_location,
)
from metasearch.search.optuna.strategy import OptunaStrategy, objective_values
from metasearch.search.registry import StrategyContext, StrategySpec
from metasearch.search.spaces import Space, check_space_models, load_space

__all__ = ["SPEC", "OptunaSettings", "OptunaStrategy", "build", "objective_values",
           "open_shared_study", "open_study"]


def build(ctx: StrategyContext) -> OptunaStrategy:
    """An :class:`OptunaStrategy` on the campaign's study (created on the first run)."""
    s: OptunaSettings = ctx.settings
    space = load_space(s.space)
    check_space_models(space, ctx.config)
    if ctx.directory is None:
        raise ConfigError("The optuna strategy keeps its study beside the campaign; build it "
                          "with a campaign directory (StrategyContext.directory).")
    if ctx.shared is not None:
        study = open_shared_study(ctx.shared, Path(ctx.directory), s, space)
        return OptunaStrategy(space=space, study=study, settings=s,
                              generations=ctx.config.search.generations,
                              claims=ctx.shared.coordinator)
    study = open_study(Path(ctx.directory), s, space)
    return OptunaStrategy(space=space, study=study, settings=s,
                          generations=ctx.config.search.generations)


def open_study(directory: Path, settings: OptunaSettings, space: Space) -> optuna.Study:
    """The campaign's study: loaded when ``optuna.json`` names one, else created (warm-started)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = ["maximize"] + ["minimize"] * (len(settings.objectives) - 1)
    if (directory / STUDY_FILE).exists():
        loc = read_location(directory, settings.storage)
        try:
            study = optuna.load_study(study_name=loc.study, storage=open_storage(loc.storage))
        except KeyError:
            raise ConfigError(
                f"{directory / STUDY_FILE} names the study {loc.study!r}, which is not in the "
                f"storage {loc.storage}. Give search.optuna.storage (or --storage) the storage "
                "this campaign used, or start a new campaign directory.") from None
        if [d.name.lower() for d in study.directions] != directions:
            raise ConfigError(
                f"The study {loc.study!r} of this campaign optimises "
                f"{len(study.directions)} objective(s), but search.optuna.objectives = "
                f"{settings.objectives}. Keep the objectives of a resumed campaign.")
        return study
    name = f"{directory.resolve().name}-{uuid.uuid4().hex[:8]}"
    loc = (StudyLocation(settings.storage, name) if settings.storage
           else default_location(directory, name))
    study = optuna.create_study(study_name=name, storage=open_storage(loc.storage),
                                directions=directions)
    _describe(study, settings, space)
    if settings.warm_start:
        for config in warm_start_configs(space):
            study.enqueue_trial(dict(config.params), user_attrs={"warm_start": config.name})
    write_location(directory, loc)
    return study


def open_shared_study(shared: Any, directory: Path, settings: OptunaSettings,
                      space: Space) -> optuna.Study:
    """The one study of a campaign that several ``--worker`` processes share.

    It lives in ``search.optuna.storage`` if that is a database URL, else in the
    campaign's database (in the schema ``optuna``: :func:`.storage.own_schema`),
    under a name fixed by the campaign's, so every worker
    (and every resume) opens the same one. One worker creates it and enqueues
    the warm start; the others wait for that (``Coordinator.once``).
    """
    from metasearch.store.db import is_db_url

    storage = settings.storage or shared.url
    if not is_db_url(storage):
        raise ConfigError(
            f"search.optuna.storage = {settings.storage!r} is a journal file, which workers on "
            "other machines cannot share. Leave it unset with --worker (the study then lives "
            "in the campaign's database) or give a database URL.")
    name = f"metasearch-{shared.name}"
    directions = ["maximize"] + ["minimize"] * (len(settings.objectives) - 1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    if settings.storage is None:  # the campaign's database, beside (maybe) an MLflow store
        storage = own_schema(storage)

    def create() -> None:  # safe to run again after a partial run
        study = optuna.create_study(study_name=name, storage=open_storage(storage),
                                    directions=directions, load_if_exists=True)
        _describe(study, settings, space)
        if settings.warm_start:
            queued = {t.user_attrs.get("warm_start") for t in study.get_trials(deepcopy=False)}
            for config in warm_start_configs(space):
                if config.name not in queued:
                    study.enqueue_trial(dict(config.params),
                                        user_attrs={"warm_start": config.name})

    shared.coordinator.once("~optuna-study", create)
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    if [d.name.lower() for d in study.directions] != directions:
        raise ConfigError(
            f"The shared study {name!r} optimises {len(study.directions)} objective(s), but "
            f"search.optuna.objectives = {settings.objectives}. Every worker of a campaign "
            "keeps its objectives.")
    write_location(directory, StudyLocation(storage, name))  # for `metasearch ui --optuna`
    return study


def _describe(study: optuna.Study, settings: OptunaSettings, space: Space) -> None:
    study.set_user_attr("space", space.source)
    study.set_user_attr("objectives", list(settings.objectives))
    study.set_user_attr("cost", settings.cost)


def warm_start_configs(space: Space) -> tuple[object, ...]:
    """The space's ``[[warm_start]]`` entries (name, params), validated when the space loads."""
    return tuple(getattr(space, "warm_start", ()) or ())


SPEC = StrategySpec(
    name="optuna",
    settings=OptunaSettings,
    build=build,
    summary="an Optuna study (TPE / NSGA-II, Wilcoxon pruning) over a declarative search space",
)
