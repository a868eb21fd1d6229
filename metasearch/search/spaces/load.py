"""Read a space file: find it, parse the TOML, validate it, compile it; errors name the field."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from metasearch.errors import ConfigError
from metasearch.explain import explain_validation
from metasearch.search.spaces.format import SpaceFile
from metasearch.search.spaces.space import Space, compile_space

__all__ = ["DEFAULT_SPACE", "load_space", "resolve_space_path", "spaces_dir"]

DEFAULT_SPACE = "search_spaces/reasoning.toml"


def spaces_dir() -> Path:
    """``./search_spaces`` when it holds spaces, else the one shipped beside the package."""
    here = Path.cwd() / "search_spaces"
    if here.is_dir() and any(here.glob("*.toml")):
        return here
    return Path(__file__).resolve().parents[3] / "search_spaces"


def resolve_space_path(name: str | Path) -> Path:
    """A path as given when it exists; else ``search_spaces/NAME`` looked up in :func:`spaces_dir`.

    So ``search_spaces/reasoning.toml`` and ``reasoning`` both find the shipped
    space from any working directory, while a user's own path always wins.
    """
    path = Path(name).expanduser()
    if path.is_file():
        return path
    stem = path.name if path.suffix == ".toml" else f"{path.name}.toml"
    if len(path.parts) <= 1 or path.parent.name == "search_spaces":
        shipped = spaces_dir() / stem
        if shipped.is_file():
            return shipped
    return path


def load_space(name: str | Path) -> Space:
    """The compiled space in ``name`` (a path, or a shipped space's name)."""
    path = resolve_space_path(name)
    if not path.is_file():
        known = sorted(p.stem for p in spaces_dir().glob("*.toml"))
        raise ConfigError(
            f"Search space {path} does not exist. Pass the path of a space TOML file, or the "
            f"name of a shipped one ({', '.join(known) or 'none found'}, in {spaces_dir()}).")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(
            f"Search space {path} is not valid TOML: {e}. Fix the syntax at that spot (strings "
            "need quotes, a parameter is an inline table such as "
            '{ kind = "int", low = 1, high = 3 }).') from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"Search space {path} cannot be read: {e}.") from None
    try:
        spec = SpaceFile.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(explain_validation(e, what="Search space", path=path,
                                             root=SpaceFile)) from None
    return compile_space(spec, str(path))
