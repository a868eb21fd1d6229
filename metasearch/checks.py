"""Checks of CLI values before any work starts: numbers against the config's own fields, paths.

A CLI option that is also a config field (``eval --concurrency`` is
``run.concurrency``) is validated by that field's pydantic constraints, so
the command line and a config file accept exactly the same values. Output
paths are probed without creating anything: a file where a directory is
wanted, a parent that cannot be created, a directory that cannot be written.
Every failure is a :class:`~metasearch.errors.ConfigError` of one paragraph
naming the option and the fix.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from metasearch.errors import ConfigError

__all__ = ["check_option", "check_output_dir", "check_output_file"]


def check_option(option: str, value: Any, model: type[BaseModel] | None = None,
                 field: str | None = None, *, rule: FieldInfo | None = None) -> None:
    """Validate ``value`` of ``option`` as config field ``model.field`` (or by ``rule``).

    ``rule`` is a ``Field(...)`` for options that are no config field (a port).
    """
    if value is None:
        return
    if rule is None:
        assert model is not None and field is not None
        info = model.model_fields[field]
        ann = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        adapter: TypeAdapter[Any] = TypeAdapter(ann)
        what = info.description or "a valid value"
        where = f" (the same rule as the config field {_dotted(model, field)})"
    else:
        adapter = TypeAdapter(Annotated[type(value), rule])
        what, where = rule.description or "a valid value", ""
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        why = exc.errors()[0]["msg"].lower()
        raise ConfigError(f"{option} {value} is invalid: {why}{where}. Give {option} {what}.") from None


_SECTIONS = {"SuiteConfig": "suite", "RunConfig": "run", "TaskModelConfig": "models.task",
             "BudgetConfig": "budget", "LocalConfig": "local", "SandboxConfig": "sandbox"}


def _dotted(model: type[BaseModel], field: str) -> str:
    return f"{_SECTIONS.get(model.__name__, model.__name__)}.{field}"


def check_output_dir(path: Path, option: str) -> None:
    """``path`` is (or can become) a directory this process can write; nothing is created."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file, not a directory. Give {option} a directory "
                          "(a new one is created), or move the file away.")
    if path.is_dir():
        _probe(path, option, path, "is not writable")
        return
    parent = _existing_ancestor(path)
    if not parent.is_dir():
        raise ConfigError(f"{option} {path} cannot be created: {parent} is a file, not a "
                          f"directory. Give {option} a path under a directory.")
    _probe(parent, option, path, f"cannot be created in {parent}")


def check_output_file(path: Path, option: str) -> None:
    """``path`` is (or can become) a file: not a directory, its directory writable."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a directory; give {option} the path of a file "
                          f"to write, e.g. {path / 'out'}.")
    parent = _existing_ancestor(path.absolute().parent)
    if not parent.is_dir():
        raise ConfigError(f"{option} {path} cannot be written: {parent} is a file, not a "
                          f"directory. Give {option} a path under a directory.")
    _probe(parent, option, path, f"cannot be written in {parent}")


def _existing_ancestor(path: Path) -> Path:
    for p in [path, *path.absolute().parents]:
        if p.exists():
            return p
    return Path("/")


def _probe(directory: Path, option: str, path: Path, problem: str) -> None:
    """Create and remove a temporary directory in ``directory``: what the command will do."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".metasearch-probe-", dir=directory))
    except OSError as exc:
        raise ConfigError(
            f"{option} {path} {problem} ({exc.strerror or exc}). Give {option} a directory you "
            "can write, or fix its permissions (e.g. chmod u+w on it)."
        ) from None
