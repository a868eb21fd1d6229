"""A space's parameters as Optuna distributions (for importance, and for rebuilding a study).

:func:`to_distribution` maps one :class:`~.space.Param` to the distribution
an Optuna trial would have suggested it from (the same one
:class:`~.draw.OptunaDraw` asks for), so a trial recorded by any strategy can
be added to an in-memory study with ``optuna.trial.create_trial``. A fixed
knob has no distribution: it is never drawn, and is not in a record's
``params``. optuna is imported inside the functions.
"""

from __future__ import annotations

from typing import Any

from metasearch.search.spaces.format import CategoricalParam, FloatParam, IntParam
from metasearch.search.spaces.space import Param, Space

__all__ = ["space_distributions", "to_distribution"]


def to_distribution(param: Param) -> Any | None:
    """The ``optuna.distributions`` object of a searched parameter; ``None`` for a fixed one."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    d = param.domain
    if isinstance(d, IntParam):
        return IntDistribution(d.low, d.high, log=d.log, step=d.step)
    if isinstance(d, FloatParam):
        return FloatDistribution(d.low, d.high, log=d.log, step=d.step)
    if isinstance(d, CategoricalParam):
        return CategoricalDistribution(list(d.choices))
    return None


def space_distributions(space: Space) -> dict[str, Any]:
    """Dotted name → distribution, for every searched parameter of ``space``."""
    out = {}
    for p in space.searched():
        dist = to_distribution(p)
        if dist is not None:
            out[p.name] = dist
    return out
