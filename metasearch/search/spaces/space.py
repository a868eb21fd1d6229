"""A validated space file compiled into parameters a sampler can drive.

:func:`compile_space` turns a :class:`~.format.SpaceFile` into a
:class:`Space`: a flat tuple of :class:`Param` in drawing order, each with
its domain (fixed, int, float, categorical) and the conditions under which it
exists. Conditions come from the file's ``when`` tables and from the blocks
(a judge's knobs exist only in a debate, a critic's only with refine rounds).

:meth:`Space.sample` asks a :class:`~.draw.Draw` for the active parameters
only, in order, so the same code serves a seeded ``random.Random`` and an
Optuna trial (whose ``suggest_*`` calls must never see an inactive name).
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from metasearch.errors import ConfigError
from metasearch.search.spaces.blocks import ROLES, ROUTABLE_ENSEMBLES, role_condition
from metasearch.search.spaces.format import (
    CategoricalParam,
    FloatParam,
    IntParam,
    RoleTable,
    Scalar,
    SpaceFile,
    WarmStart,
)

if TYPE_CHECKING:
    from metasearch.config import CampaignConfig
    from metasearch.search.spaces.draw import Draw

__all__ = ["Condition", "Fixed", "Param", "Space", "check_space_models", "compile_space"]


@dataclass(frozen=True)
class Fixed:
    """A knob the file sets to one value: part of every trial, never drawn."""

    value: Scalar


Domain = Fixed | IntParam | FloatParam | CategoricalParam


def _same(a: Any, b: Any) -> bool:
    """Equality that does not take True for 1 (TOML keeps them apart, so must we)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


@dataclass(frozen=True)
class Condition:
    """``name`` is active and has one of ``values``."""

    name: str
    values: tuple[Scalar, ...]

    def holds(self, values: Mapping[str, Scalar]) -> bool:
        return self.name in values and any(_same(values[self.name], v) for v in self.values)


@dataclass(frozen=True)
class Param:
    """One knob: its dotted name in the file, its domain, and when it exists."""

    name: str
    domain: Domain
    when: tuple[Condition, ...] = ()

    @property
    def searched(self) -> bool:
        return not isinstance(self.domain, Fixed)

    def can_take(self, value: Any) -> bool:
        d = self.domain
        if isinstance(d, Fixed):
            return _same(d.value, value)
        if isinstance(d, CategoricalParam):
            return any(_same(c, value) for c in d.choices)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if isinstance(d, IntParam):
            return isinstance(value, int) and d.low <= value <= d.high and (
                (value - d.low) % d.step == 0)
        return d.low <= value <= d.high

    def draw(self, draw: Draw) -> Scalar:
        d = self.domain
        if isinstance(d, Fixed):
            return d.value
        if isinstance(d, IntParam):
            return draw.int(self.name, d.low, d.high, step=d.step, log=d.log)
        if isinstance(d, FloatParam):
            value = draw.float(self.name, d.low, d.high, step=d.step, log=d.log)
            return _quantise(value, d.step) if d.step is not None else value
        return draw.categorical(self.name, tuple(d.choices))


def _quantise(value: float, step: float) -> float:
    """``0.30000000000000004`` -> ``0.3`` for ``step = 0.1``: the value a person would write."""
    exponent = decimal.Decimal(repr(step)).as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return round(value, places)


@dataclass(frozen=True)
class Space:
    """A compiled space. ``spec`` keeps the file's data (personas, experts, texts)."""

    name: str
    description: str
    source: str
    params: tuple[Param, ...]
    spec: SpaceFile

    @property
    def warm_start(self) -> tuple[WarmStart, ...]:
        """The file's ``[[warm_start]]`` configurations (checked against the parameters)."""
        return tuple(self.spec.warm_start)

    def searched(self) -> tuple[Param, ...]:
        """The parameters a sampler draws (fixed knobs are not asked for)."""
        return tuple(p for p in self.params if p.searched)

    def models(self) -> dict[str, tuple[str, ...]]:
        """``roles.NAME.model`` -> the model strings it can take (``campaign`` left out)."""
        return {p.name: tuple(str(v) for v in _possible(p) if v != "campaign")
                for p in self.params if p.name.endswith(".model")}

    def sample(self, draw: Draw) -> dict[str, Scalar]:
        """Every active knob's value, drawing the searched ones from ``draw`` in order."""
        values: dict[str, Scalar] = {}
        for p in self.params:
            if all(c.holds(values) for c in p.when):
                values[p.name] = p.draw(draw)
        return values


# --------------------------------------------------------------------------- compiling


def _invalid(source: str, dotted: str, message: str) -> ConfigError:
    return ConfigError(f"Search space {source} has 1 invalid field: {dotted} {message}")


def _domain(knob: Any) -> Domain:
    return knob if isinstance(knob, IntParam | FloatParam | CategoricalParam) else Fixed(knob)


def _knobs(spec: SpaceFile) -> Iterable[tuple[str, Any, tuple[Condition, ...], bool]]:
    """(dotted name, knob, implied conditions, written in the file) for every knob."""
    b = spec.blocks
    for f in ("answerer", "ensemble", "refine_rounds"):
        yield f"blocks.{f}", getattr(b, f), (), f in b.model_fields_set
    yield ("blocks.role_assignment", b.role_assignment,
           (Condition("blocks.ensemble", ROUTABLE_ENSEMBLES),),
           "role_assignment" in b.model_fields_set)
    for table, ensemble in (("self_consistency", "self_consistency"), ("debate", "debate")):
        t = getattr(spec, table)
        for f in ("samples",) if table == "self_consistency" else ("agents", "rounds"):
            yield (f"{table}.{f}", getattr(t, f), (Condition("blocks.ensemble", (ensemble,)),),
                   f in t.model_fields_set)
    for name, role in ROLES.items():
        table: RoleTable = getattr(spec.roles, name)
        implied = role_condition(name)
        when = (Condition(*implied),) if implied else ()
        defaults = {"temperature": role.temperature, "max_tokens": None,
                    "protocol": "campaign", "instruction": "default"}
        for f, default in defaults.items():
            knob = getattr(table, f)
            if knob is None and default is None:
                continue
            yield (f"roles.{name}.{f}", default if knob is None else knob, when,
                   f in table.model_fields_set)
    # models last: adding model choices to a space leaves its other knobs' draws as they were
    for name in ROLES:
        table = getattr(spec.roles, name)
        if table.model is not None:
            implied = role_condition(name)
            yield (f"roles.{name}.model", table.model, (Condition(*implied),) if implied else (),
                   True)


def compile_space(spec: SpaceFile, source: str) -> Space:
    """Check what the file's fields cannot check alone, and order the parameters."""
    raw = [(n, _domain(k), implied, written,
            getattr(k, "when", {})) for n, k, implied, written in _knobs(spec)]
    by_name = {n: Param(n, d) for n, d, *_ in raw}
    params: list[Param] = []
    for name, domain, implied, written, when in raw:
        conditions = list(_explicit(source, name, when, by_name))
        dead = False
        for c in implied:
            ref = by_name.get(c.name)
            possible = tuple(v for v in c.values if ref is not None and ref.can_take(v))
            if not possible:
                if written:
                    raise _invalid(source, name, (
                        f"is never used: it exists only when {c.name} is "
                        f"{' or '.join(map(repr, c.values))}, which this space never chooses."))
                dead = True
            conditions.append(Condition(c.name, possible))
        if not dead:
            params.append(Param(name, domain, tuple(conditions)))
    ordered = _in_drawing_order(params, source)
    _check_references(spec, ordered, source)
    _check_warm_start(spec, ordered, source)
    return Space(name=spec.space.name, description=spec.space.description, source=source,
                 params=ordered, spec=spec)


def _check_warm_start(spec: SpaceFile, params: tuple[Param, ...], source: str) -> None:
    """Each warm start names searched parameters, with values they can take, that can coexist."""
    by_name = {p.name: p for p in params}
    seen: set[str] = set()
    for i, ws in enumerate(spec.warm_start):
        field = f"warm_start[{i}] ({ws.name})"
        if ws.name in seen:
            raise _invalid(source, field, "repeats a name; give each warm start its own")
        seen.add(ws.name)
        for key, value in ws.params.items():
            p = by_name.get(key)
            if p is None or not p.searched:
                known = ", ".join(q.name for q in params if q.searched)
                raise _invalid(source, f"{field}.params", (
                    f"names {key!r}, which is not a searched parameter of this space "
                    f"(searched: {known})."))
            if not p.can_take(value):
                raise _invalid(source, f"{field}.params", (
                    f"gives {key} = {value!r}, a value outside its domain {p.domain}."))
        for key in ws.params:
            for c in by_name[key].when:
                if c.name in ws.params and not c.holds(dict(ws.params)):
                    raise _invalid(source, f"{field}.params", (
                        f"gives {key}, which exists only when {c.name} is "
                        f"{' or '.join(map(repr, c.values))}, but sets {c.name} = "
                        f"{ws.params[c.name]!r}."))


def _explicit(source: str, name: str, when: Mapping[str, Any],
              by_name: Mapping[str, Param]) -> Iterable[Condition]:
    for ref, wanted in when.items():
        if ref not in by_name or ref == name:
            raise _invalid(source, f"{name}.when", (
                f"names {ref!r}, which is not {'another' if ref == name else 'a'} knob of "
                f"this space. Knobs are named by their dotted path, e.g. 'blocks.ensemble' "
                f"or 'roles.solver.temperature'."))
        values = tuple(wanted) if isinstance(wanted, list) else (wanted,)
        bad = [v for v in values if not by_name[ref].can_take(v)]
        if bad or not values:
            raise _invalid(source, f"{name}.when", (
                f"asks for {ref} = {bad[0] if bad else values!r}, a value {ref} cannot take: "
                f"the condition could never hold."))
        yield Condition(ref, values)


def _in_drawing_order(params: list[Param], source: str) -> tuple[Param, ...]:
    """File order, except that a parameter comes after every parameter its conditions name."""
    names = {p.name for p in params}
    placed: list[Param] = []
    done: set[str] = set()
    pending = list(params)
    while pending:
        ready = next((p for p in pending
                      if all(c.name in done or c.name not in names for c in p.when)), None)
        if ready is None:
            raise _invalid(source, f"{pending[0].name}.when", (
                "is part of a cycle of conditions (" + ", ".join(p.name for p in pending)
                + "): a parameter cannot exist only when it already exists."))
        placed.append(ready)
        done.add(ready.name)
        pending.remove(ready)
    # a condition on a parameter that never exists can never hold: drop what depends on it
    alive: list[Param] = []
    kept: set[str] = set()
    for p in placed:
        if all(c.name in kept for c in p.when):
            alive.append(p)
            kept.add(p.name)
    return tuple(alive)


def _possible(param: Param | None) -> list[Any]:
    if param is None:
        return []
    d = param.domain
    if isinstance(d, Fixed):
        return [d.value]
    if isinstance(d, CategoricalParam):
        return list(d.choices)
    return [d.low, d.high]


def _check_references(spec: SpaceFile, params: tuple[Param, ...], source: str) -> None:
    """Instruction variants that exist, and no more debaters than personas."""
    by_name = {p.name: p for p in params}
    for role in ROLES:
        name = f"roles.{role}.instruction"
        known = {"default", *getattr(spec.roles, role).instructions}
        missing = [v for v in _possible(by_name.get(name)) if v not in known]
        if missing:
            raise _invalid(source, name, (
                f"names the instruction variant {missing[0]!r}, which is not defined: add it "
                f"to [roles.{role}.instructions] (variants: {', '.join(sorted(known))})."))
    agents = _possible(by_name.get("debate.agents"))
    personas = spec.debate.personas
    if agents and max(agents) > len(personas):
        raise _invalid(source, "debate.agents", (
            f"can be {max(agents)}, but debate.personas lists only {len(personas)} roles: "
            "give each debater a persona."))


def check_space_models(space: Space, config: CampaignConfig) -> None:
    """Raise ``ConfigError`` unless the campaign allows every model ``space`` can choose.

    Call it wherever a strategy builds from a space (``StrategyContext.config``):
    an agent that names a model the campaign does not allow would run on the
    task model instead, so the trial would not be what its parameters say.
    """
    task = config.models.task
    for name, models in space.models().items():
        missing = [m for m in models if m not in task.allowed]
        if not missing:
            continue
        them = "it" if len(missing) == 1 else "them"
        listed = ", ".join(f'"{m}"' for m in missing)
        others = ", ".join(task.allowed[1:]) or "none"
        raise ConfigError(
            f"Search space {space.source}: {name} can choose {listed}, which the campaign "
            f"does not allow agents to call (models.task.model is {task.model}; "
            f"models.task.alternatives: {others}). Add {them} to models.task.alternatives in "
            f"the campaign config ([models.task] alternatives = [{listed}]), or remove {them} "
            f"from {name}.")
