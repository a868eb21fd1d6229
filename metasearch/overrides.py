"""``--set section.field=value``: dotted-key overrides merged into a config's raw TOML."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from metasearch.errors import ConfigError

__all__ = ["merge_override", "parse_override"]


def parse_override(text: str) -> tuple[str, Any]:
    """``"search.generations=5"`` → ``("search.generations", 5)``.

    The value is read as a TOML value when it parses (numbers, booleans,
    quoted strings, lists), else kept as a bare string.
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"Override {text!r} is not of the form section.field=value, e.g. search.generations=5."
        )
    try:
        return key, tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return key, value.strip()


def merge_override(raw: dict[str, Any], key: str, value: Any, path: Path) -> None:
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(
            f"Override key {key!r} for {path} is not a dotted field path such as search.generations."
        )
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            dotted = ".".join(parts[: i + 1])
            raise ConfigError(
                f"Override {key}={value!r} for {path} cannot be applied: {dotted} is a value, not a table."
            )
        node = child
    node[parts[-1]] = value
