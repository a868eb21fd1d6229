"""Pydantic validation errors as one paragraph that names the file and each dotted field.

Shared by every TOML file metasearch validates (campaign configs, search
spaces), so that a user reads the same kind of message whatever file they got
wrong: ``<what> <path> has 2 invalid fields: search.adas.attempts = 0 is invalid
(...). Expected an integer from 1 to 10.`` An unknown field suggests the
closest valid name and lists the valid ones.

The dotted path follows the *file*, not pydantic's internals: union-member
and tag labels are dropped, table keys (``roles.solver``) and list indices
(``experts[2]``) are kept.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

__all__ = ["UnknownFieldHint", "explain_validation", "short_value"]

#: ``hint(model, name) -> (hint sentence, extra text after the list of valid fields)``
#: for an unknown field ``name`` in a table validated by ``model``.
UnknownFieldHint = Callable[[type[BaseModel], str], tuple[str, str]]


def explain_validation(
    err: ValidationError,
    *,
    what: str,
    path: str | Path,
    root: type[BaseModel],
    prefix: str = "",
    override_keys: Collection[str] = (),
    unknown_hint: UnknownFieldHint | None = None,
) -> str:
    """``"<what> <path> has N invalid field(s): ..."``, one sentence per dotted field."""
    seen: dict[str, str] = {}
    for e in err.errors():
        dotted, model, field = resolve_loc(e["loc"], root)
        dotted = prefix + dotted
        if dotted in seen:  # a union reports one error per member; keep the first
            continue
        seen[dotted] = _describe(e, dotted, model, field, override_keys, unknown_hint)
    n = len(seen)
    head = f"{what} {path} has {n} invalid field{'s' if n > 1 else ''}: "
    return head + " ".join(seen.values())


def _models_in(ann: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold directly (through unions and Annotated)."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    origin = typing.get_origin(ann)
    if origin is typing.Annotated or origin is list:  # a list's index is kept by resolve_loc
        return _models_in(typing.get_args(ann)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [m for a in typing.get_args(ann) for m in _models_in(a)]
    return []


def _mapping_value(ann: Any) -> Any | None:
    """``X`` for ``dict[str, X]`` (possibly inside Annotated or an optional union), else None."""
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        return _mapping_value(typing.get_args(ann)[0])
    if origin is dict:
        return typing.get_args(ann)[1]
    if origin is typing.Union or origin is types.UnionType:
        for a in typing.get_args(ann):
            inner = _mapping_value(a)
            if inner is not None:
                return inner
    return None


def resolve_loc(
    loc: tuple[Any, ...], root: type[BaseModel]
) -> tuple[str, type[BaseModel] | None, str | None]:
    """A pydantic ``loc`` as (dotted path, model holding the last field, that field's name)."""
    models: list[type[BaseModel]] = [root]
    parts: list[str] = []
    parent: type[BaseModel] | None = None
    field: str | None = None
    mapping: Any | None = None  # the value type when the last part was a dict field
    union = False  # the last field was a union: its member's label comes next
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
            continue
        owner = next((m for m in models if item in m.model_fields), None)
        if owner is not None:
            parent, field = owner, item
            parts.append(item)
            ann = owner.model_fields[item].annotation
            models, mapping, union = _models_in(ann), _mapping_value(ann), _is_union(ann)
        elif union:  # a union member's label ("int", "FloatParam", a tag): not in the file
            named = [m for m in models if _labelled(m, item)]
            if named:  # else a label of a nested union ("tagged-union[...]"): one more follows
                models, union = named, False
        elif mapping is not None:  # a key of a table of tables: part of the path
            parts.append(str(item))
            models, mapping = _models_in(mapping), None
            union = len(models) > 1
        elif models:  # an unknown key under a known table
            parent, field = models[0], None
            parts.append(str(item))
            models = []
    return ".".join(parts), parent, field


def _is_union(ann: Any) -> bool:
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        return _is_union(typing.get_args(ann)[0])
    return origin is typing.Union or origin is types.UnionType


def _labelled(model: type[BaseModel], label: str) -> bool:
    """Whether ``label`` names ``model`` in a union: its class name or its ``kind`` tag."""
    kind = model.model_fields.get("kind")
    tags = typing.get_args(kind.annotation) if kind is not None else ()
    return label == model.__name__ or label in tags


def _describe(
    e: Any, dotted: str, model: type[BaseModel] | None, field: str | None,
    override_keys: Collection[str], unknown_hint: UnknownFieldHint | None,
) -> str:
    src = " (set by a command-line override)" if dotted in override_keys else ""
    value = e.get("input")
    if e["type"] == "extra_forbidden":
        known = sorted(model.model_fields) if model is not None else []
        name = dotted.rsplit(".", 1)[-1]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        table = dotted.rsplit(".", 1)[0] if "." in dotted else "the top level"
        hint = f"Did you mean {close[0]!r}? " if close else ""
        tables = ""
        if unknown_hint is not None and model is not None:
            own_hint, tables = unknown_hint(model, name)
            hint = own_hint or hint
        return (
            f"{dotted}{src} is not a known field. {hint}Valid fields in {table} are: "
            f"{', '.join(known)}{tables}."
        )
    desc = ""
    if model is not None and field is not None:
        desc = model.model_fields[field].description or ""
    expected = f" Expected {desc}." if desc else ""
    if e["type"] == "missing":
        return f"{dotted}{src} is missing.{expected}"
    msg = e["msg"].removeprefix("Value error, ")
    return f"{dotted}{src} = {short_value(value)} is invalid ({msg}).{expected}"


def short_value(value: Any) -> str:
    """A value as it may appear in an error: tables are "a table", long text is cut."""
    if isinstance(value, dict):
        return "a table"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
