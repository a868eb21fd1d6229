"""Declarative search spaces (``search_spaces/*.toml``): parameters, sampling, rendering.

A space file names which blocks an agent may be built from and which knobs a
search may turn (:mod:`.format`); :func:`load_space` validates and compiles
it into a :class:`Space` of parameters with conditions (:mod:`.space`);
:meth:`Space.sample` draws one trial from any :class:`Draw` (a seeded
``random.Random``, an Optuna trial: :mod:`.draw`); :func:`render` turns the
trial into the code of an ordinary ADAS-style agent (:mod:`.render`)::

    space = load_space("search_spaces/reasoning.toml")
    values = space.sample(RandomDraw(seeded_random(0, "g001-00")))
    agent = render(space, values)   # agent.code, agent.name, agent.thought
"""

from metasearch.search.spaces.draw import Draw, OptunaDraw, RandomDraw, seeded_random
from metasearch.search.spaces.load import DEFAULT_SPACE, load_space, resolve_space_path
from metasearch.search.spaces.render import RenderedAgent, render
from metasearch.search.spaces.space import Condition, Param, Space, check_space_models

__all__ = [
    "DEFAULT_SPACE",
    "Condition",
    "Draw",
    "OptunaDraw",
    "Param",
    "RandomDraw",
    "RenderedAgent",
    "Space",
    "check_space_models",
    "load_space",
    "render",
    "resolve_space_path",
    "seeded_random",
]
