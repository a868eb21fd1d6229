"""Knobs: the ``tunable(name, default, low=..., high=..., choices=...)`` calls in agent code.

An agent may declare a value it is unsure of as a knob (the runtime's
``tunable`` returns its default). The ``hybrid`` strategy reads the knobs
from the code with libcst, lets Optuna choose their values, and writes each
trial's values back into the code as the defaults, so a trial is ordinary
code that says exactly what ran. Export bakes the knobs away: each call is
replaced by its literal value.

:func:`extract_knobs` returns the knobs and :class:`~metasearch.candidate.
validate.Finding`\\ s for malformed ones (non-literal arguments, duplicate
names, a default outside its range, empty choices, ``low >= high``, too many
knobs), phrased for the meta agent's repair round like any validator finding.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from metasearch.candidate.validate import Finding

__all__ = ["MAX_KNOBS", "Knob", "bake_knobs", "extract_knobs", "knob_findings",
           "set_knob_values", "space_size"]

#: The function name agents call.
TUNABLE = "tunable"
#: Knobs one agent may declare (a small study cannot tune more).
MAX_KNOBS = 6
_KEYWORDS = ("low", "high", "choices", "log")
_EXAMPLE = ("e.g. n = tunable('samples', 3, low=1, high=7) or "
            "style = tunable('style', 'brief', choices=['brief', 'detailed'])")

Scalar = int | float | str | bool


@dataclass(frozen=True)
class Knob:
    """One declared knob: its name, default and domain (``kind`` says which fields apply)."""

    name: str
    default: Scalar
    kind: Literal["int", "float", "categorical"]
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[Scalar, ...] = ()
    line: int = 0

    def distribution(self) -> Any:
        """The Optuna distribution of this knob."""
        import optuna

        if self.kind == "categorical":
            return optuna.distributions.CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log)  # type: ignore[arg-type]
        return optuna.distributions.FloatDistribution(float(self.low), float(self.high),  # type: ignore[arg-type]
                                                      log=self.log)

    def describe(self) -> str:
        if self.kind == "categorical":
            return f"{self.name} in {list(self.choices)!r} (default {self.default!r})"
        scale = ", log scale" if self.log else ""
        return f"{self.name} {self.kind} in [{self.low}, {self.high}]{scale} (default {self.default!r})"


def _is_tunable(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Name) and node.value == TUNABLE


class _Collect(cst.CSTVisitor):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, module: cst.Module) -> None:
        self.module = module
        self.calls: list[tuple[cst.Call, int, int]] = []
        self.bare: list[tuple[int, int]] = []
        self._funcs: set[int] = set()

    def _pos(self, node: cst.CSTNode) -> tuple[int, int]:
        p = self.get_metadata(PositionProvider, node).start
        return p.line, p.column + 1

    def visit_Call(self, node: cst.Call) -> None:
        if _is_tunable(node.func):
            self._funcs.add(id(node.func))
            self.calls.append((node, *self._pos(node)))

    def visit_Name(self, node: cst.Name) -> None:
        if node.value == TUNABLE and id(node) not in self._funcs:
            self.bare.append(self._pos(node))


def _literal(module: cst.Module, node: cst.BaseExpression) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(module.code_for_node(node).strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _scalar(v: Any) -> bool:
    return isinstance(v, str | bool) or _number(v)


def extract_knobs(code: str, *, max_knobs: int = MAX_KNOBS) -> tuple[list[Knob], list[Finding]]:
    """The well-formed knobs of ``code`` in source order, and a finding per malformed one.

    Code that does not parse has no knobs and no findings (the validator
    reports the syntax error).
    """
    try:
        module = cst.parse_module(code)
    except cst.ParserSyntaxError:
        return [], []
    visitor = _Collect(module)
    MetadataWrapper(module, unsafe_skip_copy=True).visit(visitor)
    knobs: list[Knob] = []
    findings: list[Finding] = []
    for line, col in visitor.bare:
        findings.append(Finding(
            "knob-not-called", line, col,
            "`tunable` is used without calling it, so its knob cannot be read from the code.",
            f"Call it where the value is needed, {_EXAMPLE}."))
    seen: dict[str, int] = {}
    for call, line, col in visitor.calls:
        knob, problem = _parse_call(module, call, line)
        if problem is not None:
            code_, message, hint = problem
            findings.append(Finding(code_, line, col, message, hint))
            continue
        assert knob is not None
        if knob.name in seen:
            findings.append(Finding(
                "knob-duplicate", line, col,
                f"The knob name {knob.name!r} is declared twice (first on line {seen[knob.name]}).",
                "Give each tunable call its own name, or compute the value once and reuse it."))
            continue
        seen[knob.name] = line
        knobs.append(knob)
    if len(knobs) > max_knobs:
        extra = knobs[max_knobs]
        findings.append(Finding(
            "knob-too-many", extra.line, 1,
            f"The agent declares {len(knobs)} knobs; at most {max_knobs} can be tuned.",
            "Keep the knobs that matter most and write the other values as plain literals."))
        knobs = knobs[:max_knobs]
    return knobs, sorted(findings, key=lambda f: (f.line, f.column))


def knob_findings(code: str, *, max_knobs: int = MAX_KNOBS) -> list[Finding]:
    """Only the findings of :func:`extract_knobs` (a validator to compose with ``validate_code``)."""
    return extract_knobs(code, max_knobs=max_knobs)[1]


def _parse_call(module: cst.Module, call: cst.Call,
                line: int) -> tuple[Knob | None, tuple[str, str, str] | None]:
    src = module.code_for_node(call).strip()
    positional = [a for a in call.args if a.keyword is None and not a.star]
    keywords = {a.keyword.value: a for a in call.args if a.keyword is not None}
    if any(a.star for a in call.args):
        return None, ("knob-not-literal", f"`{src}` passes *args or **kwargs.",
                      f"Write the name, default and range as literals, {_EXAMPLE}.")
    unknown = [k for k in keywords if k not in ("name", "default", *_KEYWORDS)]
    if unknown or len(positional) > 2:
        what = f"the keyword {unknown[0]!r}" if unknown else "more than two positional arguments"
        return None, ("knob-bad-argument", f"`{src}` has {what}.",
                      "tunable takes (name, default, *, low=, high=, log=) or (name, default, "
                      f"*, choices=[...]), {_EXAMPLE}.")
    args: dict[str, cst.Arg] = dict(zip(("name", "default"), positional, strict=False))
    args.update(keywords)
    if "name" not in args or "default" not in args:
        return None, ("knob-bad-argument", f"`{src}` needs a name and a default value.",
                      f"Give both, {_EXAMPLE}.")
    values: dict[str, Any] = {}
    for key, arg in args.items():
        ok, value = _literal(module, arg.value)
        if not ok:
            return None, ("knob-not-literal",
                          f"The {key} of `{src}` is not a literal: knobs are read from the code "
                          "before it runs.",
                          f"Write it as a literal number, string or list, {_EXAMPLE}.")
        values[key] = value
    name, default = values["name"], values["default"]
    if not isinstance(name, str) or not name.strip():
        return None, ("knob-bad-argument", f"The name of `{src}` must be a non-empty string.",
                      f"Name the knob, {_EXAMPLE}.")
    if "choices" in values:
        return _categorical(src, name, default, values, line)
    return _numeric(src, name, default, values, line)


def _categorical(src: str, name: str, default: Any, values: dict[str, Any],
                 line: int) -> tuple[Knob | None, tuple[str, str, str] | None]:
    choices = values["choices"]
    if "low" in values or "high" in values or "log" in values:
        return None, ("knob-bad-argument", f"`{src}` gives both choices and a range.",
                      "Use choices=[...] for a set of values, or low= and high= for a range.")
    if not isinstance(choices, list | tuple) or not choices:
        return None, ("knob-empty-choices", f"The choices of `{src}` must be a non-empty list.",
                      "List the values to try, e.g. choices=['brief', 'detailed'].")
    if not all(_scalar(c) for c in choices) or len(set(map(repr, choices))) != len(choices):
        return None, ("knob-bad-choices",
                      f"The choices of `{src}` must be distinct numbers, strings or booleans.",
                      "Remove repeated values and anything that is not a plain literal.")
    if not any(type(c) is type(default) and c == default for c in choices):
        return None, ("knob-default-out-of-range",
                      f"The default {default!r} of knob {name!r} is not one of its choices "
                      f"{list(choices)!r}.", "Make the default one of the choices.")
    return Knob(name, default, "categorical", choices=tuple(choices), line=line), None


def _numeric(src: str, name: str, default: Any, values: dict[str, Any],
             line: int) -> tuple[Knob | None, tuple[str, str, str] | None]:
    if "low" not in values or "high" not in values:
        return None, ("knob-no-range", f"`{src}` has neither choices nor both low= and high=.",
                      f"Give the range to search, {_EXAMPLE}.")
    low, high, log = values["low"], values["high"], values.get("log", False)
    if not (_number(low) and _number(high) and _number(default)):
        return None, ("knob-bad-argument",
                      f"low, high and the default of `{src}` must be numbers.",
                      "Use numbers for a range, or choices=[...] for other values.")
    if not isinstance(log, bool):
        return None, ("knob-bad-argument", f"log= of `{src}` must be True or False.",
                      "Write log=True for a log scale, or leave it out.")
    if low >= high:
        return None, ("knob-empty-range", f"Knob {name!r} has low={low!r} >= high={high!r}.",
                      "Make low smaller than high.")
    if log and low <= 0:
        return None, ("knob-empty-range", f"Knob {name!r} has log=True with low={low!r} <= 0.",
                      "A log scale needs low > 0.")
    if not low <= default <= high:
        return None, ("knob-default-out-of-range",
                      f"The default {default!r} of knob {name!r} is outside [{low!r}, {high!r}].",
                      "Choose a default inside the range, or widen the range.")
    kind: Literal["int", "float"] = "int" if all(
        isinstance(v, int) for v in (low, high, default)) else "float"
    if kind == "float":
        low, high, default = float(low), float(high), float(default)
    return Knob(name, default, kind, low=low, high=high, log=log, line=line), None


def space_size(knobs: Sequence[Knob]) -> int | None:
    """How many distinct configurations the knobs have (None: a float knob, unbounded)."""
    size = 1
    for k in knobs:
        if k.kind == "float":
            return None
        size *= len(k.choices) if k.kind == "categorical" else int(k.high) - int(k.low) + 1  # type: ignore[arg-type]
    return size


def _value_node(value: Scalar) -> cst.BaseExpression:
    if isinstance(value, bool) or value is None:
        return cst.Name(repr(value))
    if isinstance(value, str):
        return cst.SimpleString(repr(value))
    if isinstance(value, int):
        node: cst.BaseExpression = cst.Integer(str(abs(value)))
    else:
        node = cst.Float(repr(abs(float(value))))
    return cst.UnaryOperation(cst.Minus(), node) if value < 0 else node


class _Rewrite(cst.CSTTransformer):
    def __init__(self, values: Mapping[str, Scalar] | None, module: cst.Module) -> None:
        self.values, self.module = values, module

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if not _is_tunable(updated.func):
            return updated
        args = list(updated.args)
        slots = [i for i, a in enumerate(args) if a.keyword is None][:2]
        named = {a.keyword.value: i for i, a in enumerate(args) if a.keyword is not None}
        name_at = named.get("name", slots[0] if slots else None)
        default_at = named.get("default", slots[1] if len(slots) > 1 else None)
        if name_at is None or default_at is None:
            return updated
        ok, name = _literal(self.module, args[name_at].value)
        if not ok:
            return updated
        if self.values is None:  # bake: the call becomes its default
            return args[default_at].value
        if name not in self.values:
            return updated
        args[default_at] = args[default_at].with_changes(value=_value_node(self.values[name]))
        return updated.with_changes(args=args)


def set_knob_values(code: str, values: Mapping[str, Scalar]) -> str:
    """``code`` with each named knob's default replaced by ``values[name]`` (a trial's code)."""
    module = cst.parse_module(code)
    return module.visit(_Rewrite(dict(values), module)).code


def bake_knobs(code: str) -> str:
    """``code`` with every ``tunable(...)`` call replaced by its default: plain code, no knobs.

    Code that does not parse, or has no knob, is returned unchanged.
    """
    if TUNABLE not in code:
        return code
    try:
        module = cst.parse_module(code)
    except cst.ParserSyntaxError:
        return code
    return module.visit(_Rewrite(None, module)).code
