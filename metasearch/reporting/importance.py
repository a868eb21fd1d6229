"""Which knobs mattered: fANOVA parameter importances over a campaign's space trials.

Every record a space strategy (``random``, ``optuna``) wrote carries its drawn
knobs in ``meta["params"]`` and its space in ``meta["space_file"]``. The
``ok`` ones become completed trials of an in-memory Optuna study (value: the
validation mean; distributions: the space's, through
:func:`metasearch.search.spaces.distributions.to_distribution`), and
``optuna.importance.get_param_importances`` with a seeded fANOVA evaluator
says how much of the score's variance each knob explains. Pruned trials are
left out: their scores cover fewer tasks.

Optuna uses the intersection search space: a conditional knob (a debate's
``rounds``) that is absent from some trials is left out, and named as such.
With fewer than :data:`MIN_TRIALS` trials, a missing space file, or no
variance in the scores, there is no result, only the reason.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from metasearch.errors import MetasearchError
from metasearch.store.records import CandidateRecord

__all__ = ["MIN_TRIALS", "SEED", "Importance", "param_importance"]

MIN_TRIALS = 4
SEED = 0  # fANOVA's forest seed: the same records give the same report


@dataclass(frozen=True)
class Importance:
    """Importances (shares of explained variance, summing to 1), or why there are none."""

    importances: tuple[tuple[str, float], ...] = ()  # highest first
    trials: int = 0
    space_file: str = ""
    left_out: tuple[str, ...] = ()  # conditional knobs absent from some trials
    excluded: int = 0  # records with params that are not trials here (pruned, failed, ...)
    skipped: str = ""  # the reason there is no result ("" = computed)

    @property
    def ok(self) -> bool:
        return not self.skipped


def param_importance(
    records: Sequence[CandidateRecord], *, min_trials: int = MIN_TRIALS, seed: int = SEED
) -> Importance | None:
    """fANOVA importances of the records' ``params``; ``None`` when no record carries any."""
    with_params = [r for r in records if r.meta.get("params")]
    if not with_params:
        return None
    files = Counter(str(r.meta.get("space_file") or "") for r in with_params)
    space_file, _ = files.most_common(1)[0]
    if not space_file:
        return Importance(skipped="the records with params do not name their space file.")
    try:
        dists = _distributions(space_file)
    except MetasearchError:
        return Importance(space_file=space_file, skipped=(
            f"the space file {space_file} is gone or no longer loads, so the parameters' "
            "distributions are unknown."))
    trials = []
    for r in with_params:
        params = dict(r.meta["params"])
        if (r.status != "ok" or r.val is None or str(r.meta.get("space_file") or "") != space_file
                or not _fits(params, dists)):
            continue
        trials.append((params, r.val.mean))
    excluded = len(with_params) - len(trials)
    names = [set(p) for p, _ in trials]
    shared = set.intersection(*names) if names else set()
    left_out = tuple(sorted(set.union(*names) - shared)) if names else ()

    def result(skipped: str = "", importances: tuple[tuple[str, float], ...] = ()) -> Importance:
        return Importance(importances=importances, trials=len(trials), space_file=space_file,
                          left_out=left_out, excluded=excluded, skipped=skipped)

    if len(trials) < min_trials:
        return result(f"only {len(trials)} scored trial(s) with parameters; at least "
                      f"{min_trials} are needed.")
    if not shared:
        return result("no parameter is present in every trial.")
    if len({v for _, v in trials}) == 1:
        return result(f"every trial scored the same ({100 * trials[0][1]:.1f}%), so no knob "
                      "explains anything.")
    try:
        got = _fanova(trials, dists, seed)
    except (RuntimeError, ValueError) as exc:
        return result(f"optuna could not compute them: {exc}")
    return result(importances=tuple(sorted(got.items(), key=lambda kv: (-kv[1], kv[0]))))


def _distributions(space_file: str) -> dict[str, Any]:
    from metasearch.search.spaces import load_space
    from metasearch.search.spaces.distributions import space_distributions

    return space_distributions(load_space(space_file))


def _fits(params: dict[str, Any], dists: dict[str, Any]) -> bool:
    """Every knob is one the space searches, with a value its distribution holds."""
    for name, value in params.items():
        dist = dists.get(name)
        if dist is None:
            return False
        try:
            if not dist._contains(dist.to_internal_repr(value)):
                return False
        except (ValueError, TypeError):
            return False
    return True


def _fanova(trials: list[tuple[dict[str, Any], float]], dists: dict[str, Any],
            seed: int) -> dict[str, float]:
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in memory"
    try:
        study = optuna.create_study(direction="maximize")
        for params, value in trials:
            study.add_trial(optuna.trial.create_trial(
                params=params, distributions={k: dists[k] for k in params}, value=value))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed))
    finally:
        optuna.logging.set_verbosity(level)
    return {str(k): float(v) for k, v in got.items()}
