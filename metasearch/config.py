"""Campaign TOML → one typed, validated, frozen config tree.

Each component reads only its own section (``config.search``, ``config.run``
...). The file is parsed with :mod:`tomllib`; command-line overrides (dotted
keys such as ``"search.generations"``) are merged into the raw tables
*before* validation, and the result never changes afterwards.

Every error is a :class:`~metasearch.errors.ConfigError` whose message is
one paragraph naming the file, the dotted field, the bad value and what is
allowed.

Example::

    cfg = load_config("experiments/quickstart.toml", {"search.generations": 3})
    cfg.search.generations  # 3
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from metasearch.errors import ConfigError
from metasearch.explain import explain_validation, short_value
from metasearch.llm.local import KNOWN_MODELS
from metasearch.overrides import merge_override, parse_override
from metasearch.runtime.call_cap import DEFAULT_MAX_CALLS_PER_TASK

__all__ = [
    "BudgetConfig",
    "CampaignConfig",
    "LocalConfig",
    "MetaModelConfig",
    "ModelConfig",
    "ModelsConfig",
    "PruningConfig",
    "RunConfig",
    "SandboxConfig",
    "SearchConfig",
    "SuiteConfig",
    "TaskAlternative",
    "TaskModelConfig",
    "load_config",
    "parse_override",
]

DEFAULT_META_MODEL = "local/qwen2.5-coder-1.5b"
DEFAULT_TASK_MODEL = "local/qwen2.5-coder-0.5b"
_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class _Section(BaseModel):
    # strict: TOML already gives native types, so "3" for an int is a mistake
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SuiteConfig(_Section):
    name: str = Field(
        "arith", pattern=_NAME_RE, description="a suite name such as arith, mgsm, gsm8k or drop"
    )
    data: str | None = Field(
        None, description="a path to the suite's data file (needed by file-backed suites)"
    )
    n_val: int = Field(
        30, ge=1, le=100_000, description="the number of validation tasks, an integer >= 1"
    )
    n_test: int = Field(
        60, ge=1, le=100_000, description="the number of test tasks, an integer >= 1"
    )
    seed: int = Field(0, ge=0, description="the seed of the task split, an integer >= 0")
    difficulty: int | None = Field(
        None,
        ge=1,
        le=5,
        description="the arith difficulty, an integer 1-5 (omit for the suite default)",
    )

    @property
    def data_path(self) -> Path | None:
        return Path(self.data).expanduser() if self.data else None


class ModelConfig(_Section):
    model: str = Field(
        ...,
        min_length=1,
        description="a litellm model string such as local/qwen2.5-coder-0.5b or openai/gpt-4o-mini",
    )
    temperature: float = Field(0.5, ge=0.0, le=2.0, description="a number from 0 to 2")
    max_tokens: int = Field(1024, ge=1, le=1_000_000, description="an integer >= 1")
    protocol: Literal["auto", "json", "sections"] = Field(
        "auto", description='"auto", "json" or "sections"'
    )
    transport: Literal["auto", "litellm"] = Field(
        "auto",
        description='"auto" (the direct fast path for OpenAI-compatible servers) or "litellm"',
    )
    api_base: str | None = Field(
        None, description="the endpoint URL, e.g. http://127.0.0.1:8000/v1"
    )
    api_key_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="the NAME of an environment variable holding the key (never the key itself)",
    )
    input_usd_per_mtok: float | None = Field(
        None, ge=0.0, description="the price in USD per million prompt tokens, a number >= 0"
    )
    output_usd_per_mtok: float | None = Field(
        None, ge=0.0, description="the price in USD per million completion tokens, a number >= 0"
    )


class MetaModelConfig(ModelConfig):
    """[models.meta]: the model that writes agents."""

    model: str = Field(
        DEFAULT_META_MODEL,
        min_length=1,
        description="a litellm model string such as local/qwen2.5-coder-1.5b or openai/gpt-4o",
    )
    temperature: float = Field(0.8, ge=0.0, le=2.0, description="a number from 0 to 2")
    max_tokens: int = Field(1536, ge=1, le=1_000_000, description="an integer >= 1")


def check_routable(model: str) -> str:
    """Raise ValueError unless the gateway can route ``model`` (``<provider>/<name>``)."""
    provider, _, name = model.partition("/")
    if not provider or not name:
        raise ValueError(f"{model!r} names no provider; write <provider>/<model>, e.g. "
                         "local/qwen2.5-coder-1.5b or openai/gpt-4o-mini")
    if provider == "local" and name not in KNOWN_MODELS and not name.endswith(".gguf"):
        known = ", ".join(f"local/{n}" for n in KNOWN_MODELS)
        raise ValueError(f"{model!r} is not an embedded model; known: {known}, or "
                         "local/<path to a .gguf file>")
    return model


class TaskAlternative(_Section):
    """One entry of ``models.task.alternatives``: a model agents may name with ``model=``.

    Written as a plain string (``"local/qwen2.5-coder-1.5b"``) or as an inline table when it
    needs its own endpoint or prices; temperature and max_tokens stay the task model's.
    """

    model: str = Field(
        ..., min_length=1,
        description="a litellm model string such as local/qwen2.5-coder-1.5b or openai/gpt-4o")
    protocol: Literal["auto", "json", "sections"] = Field(
        "auto", description='"auto", "json" or "sections"')
    transport: Literal["auto", "litellm"] = Field(
        "auto", description='"auto" (the direct fast path for OpenAI-compatible servers) or '
        '"litellm"')
    api_base: str | None = Field(
        None, description="the endpoint URL, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="the NAME of an environment variable holding the key (never the key itself)")
    input_usd_per_mtok: float | None = Field(
        None, ge=0.0, description="the price in USD per million prompt tokens, a number >= 0")
    output_usd_per_mtok: float | None = Field(
        None, ge=0.0, description="the price in USD per million completion tokens, a number >= 0")

    @field_validator("model")
    @classmethod
    def _routable(cls, v: str) -> str:
        return check_routable(v)


class TaskModelConfig(ModelConfig):
    """[models.task]: the default model of the agents' LLMAgentBase calls.

    ``alternatives`` are the other models an agent may name with
    ``LLMAgentBase(model=...)`` (a search space's per-role ``model`` knob); any
    other name gets ``model``. The sandbox host refuses every model not listed.
    """

    model: str = Field(
        DEFAULT_TASK_MODEL,
        min_length=1,
        description="a litellm model string such as local/qwen2.5-coder-0.5b or openai/gpt-4o-mini",
    )
    max_tokens: int = Field(512, ge=1, le=1_000_000, description="an integer >= 1")
    alternatives: list[TaskAlternative] = Field(
        default_factory=list,
        description='a list of other task models agents may choose with LLMAgentBase(model=...),'
        ' each a litellm string such as "local/qwen2.5-coder-1.5b" or a table '
        '{ model = "...", api_base = "...", input_usd_per_mtok = ... }')

    @field_validator("alternatives", mode="before")
    @classmethod
    def _strings_are_models(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"model": x} if isinstance(x, str) else x for x in v]
        return v

    @field_validator("alternatives")
    @classmethod
    def _distinct(cls, v: list[TaskAlternative], info: ValidationInfo) -> list[TaskAlternative]:
        names = [a.model for a in v]
        if info.data.get("model") in names:
            raise ValueError(f"it lists the task model {info.data['model']!r} itself, which "
                             "agents always may use; list only the other models")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"it lists {twice[0]!r} twice")
        return v

    @property
    def allowed(self) -> tuple[str, ...]:
        """Every model an agent may call: the task model first, then the alternatives."""
        return (self.model, *(a.model for a in self.alternatives))


class ModelsConfig(_Section):
    meta: MetaModelConfig = Field(
        default_factory=MetaModelConfig, description="the [models.meta] table"
    )
    task: TaskModelConfig = Field(
        default_factory=TaskModelConfig, description="the [models.task] table"
    )


class SearchConfig(_Section):
    """[search]: what every strategy shares. Its own settings sit in [search.<strategy>]."""

    strategy: str = Field(
        "adas", pattern=_NAME_RE,
        description="a registered strategy name such as adas (see `metasearch strategies`)",
    )
    generations: int = Field(3, ge=0, le=10_000, description="an integer >= 0")
    seeds: list[str] | Literal["all"] = Field(
        "all",
        description='"all" or a list of seed names from archive/, e.g. ["chain_of_thought", "self_consistency"]',
    )
    test_seeds: list[str] | Literal["all"] = Field(
        "all",
        description='"all", or the seeds to test besides the validation-best one (always '
        'tested), e.g. ["program_of_thought"]; [] tests that one alone',
    )
    _sections: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("seeds", "test_seeds")
    @classmethod
    def _seed_names(cls, v: list[str] | str, info: ValidationInfo) -> list[str] | str:
        if isinstance(v, str):
            return v
        names = [s.removesuffix(".py") for s in v]
        for s in names:
            if not re.match(r"^[A-Za-z0-9_\-]+$", s):
                raise ValueError(f"seed name {s!r} is not a file name from archive/")
        if not names and info.field_name == "seeds":
            raise ValueError("the seed list is empty")
        if len(set(names)) != len(names):
            raise ValueError("the seed list names a seed twice")
        return names

    @property
    def settings(self) -> Any:
        """The validated ``[search.<strategy>]`` table (its defaults when the file has none)."""
        if self.strategy not in self._sections:
            from metasearch.search.registry import get_strategy

            self._sections[self.strategy] = get_strategy(self.strategy).settings()
        return self._sections[self.strategy]


class PruningConfig(_Section):
    enabled: bool = Field(True, description="true or false")
    minibatch: int = Field(
        8, ge=1, le=100_000, description="the first minibatch size, an integer >= 1"
    )
    confidence: float = Field(
        0.95,
        gt=0.5,
        lt=1.0,
        description="the CI level used to prune, a number between 0.5 and 1 (exclusive)",
    )


class BudgetConfig(_Section):
    max_usd: float | None = Field(
        None, ge=0.0, description="a spending cap in USD, a number >= 0 (omit for none)"
    )
    max_calls: int | None = Field(
        None, ge=1, description="a cap on LLM calls, an integer >= 1 (omit for none)"
    )
    max_tokens: int | None = Field(
        None, ge=1, description="a cap on total tokens, an integer >= 1 (omit for none)"
    )
    max_search_minutes: float | None = Field(
        None, ge=0.0,
        description="wall-clock minutes of search per run, a number >= 0 (omit for none): "
        "once passed no new attempt or generation starts, and the final test still runs",
    )
    max_search_calls: int | None = Field(
        None, ge=1,
        description="LLM calls billed before no new candidate starts, an integer >= 1 (omit "
        "for none); seeds count, cache hits do not; the final test still runs (unlike "
        "max_calls, which stops everything)",
    )


class RunConfig(_Section):
    concurrency: int = Field(
        4, ge=1, le=1024, description="parallel LLM calls, an integer from 1 to 1024"
    )
    parallel_candidates: int = Field(
        1, ge=1, le=64,
        description="candidates evaluated at once, an integer from 1 to 64 (they share the "
        "gateway's limits and the sandbox pool)",
    )
    sandbox: Literal["auto", "bwrap", "unshare", "none"] = Field(
        "auto", description='"auto", "bwrap", "unshare" or "none"'
    )
    executor: Literal["local", "ray"] = Field(
        "local", description='"local" (this machine\'s sandbox) or "ray" (the [ray] cluster)'
    )
    tracking_uri: str | None = Field(
        None,
        description="an MLflow tracking URI such as http://127.0.0.1:5000 (omit for sqlite in the campaign dir)",
    )
    out: str = Field(
        "runs/campaign",
        min_length=1,
        description="the campaign directory (default runs/<config file name>)",
    )
    task_timeout_s: float = Field(300.0, gt=0, description="seconds per task, a number > 0")
    max_calls_per_task: int = Field(
        DEFAULT_MAX_CALLS_PER_TASK, ge=0, le=100_000,
        description="LLM calls an agent may make per task before its calls are refused (an "
        "unbounded loop must not spend the budget), an integer from 0 (no limit) to 100000",
    )
    candidate_timeout_s: float = Field(
        3600.0, gt=0, description="seconds per candidate evaluation, a number > 0"
    )

    @property
    def out_dir(self) -> Path:
        return Path(self.out).expanduser()


class LocalConfig(_Section):
    n_parallel: int = Field(
        4,
        ge=1,
        le=64,
        description="parallel slots of each local model server, an integer from 1 to 64",
    )
    n_threads: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="CPU threads per local model server, an integer >= 1 (omit for auto)",
    )


class SandboxConfig(_Section):
    """[sandbox]: a candidate's whole process tree, held by a cgroup per worker (else rlimits)."""

    memory_mb: int = Field(
        2048, ge=512, le=1_048_576,
        description="the memory of a candidate's processes together, in MB (and each "
        "process's address space), an integer from 512 to 1048576",
    )
    max_pids: int = Field(
        256, ge=16, le=65_536,
        description="the processes and threads of a candidate together, an integer from 16 "
        "to 65536 (a worker needs about 4 plus one per task thread)",
    )


class RayConfig(_Section):
    """Where ``run.executor = "ray"`` evaluates (see docs/deploy.md)."""

    address: str | None = Field(
        None, description="a Ray cluster address such as ray://head:10001 or head:6379 (omit: "
        "RAY_ADDRESS, else a local Ray instance)",
    )
    shard_tasks: int = Field(
        4, ge=1, le=1024, description="tasks per Ray shard, an integer from 1 to 1024"
    )


class CampaignConfig(_Section):
    """The whole campaign. Sections: suite, models, search, pruning, budget, run, local, sandbox."""

    suite: SuiteConfig = Field(default_factory=SuiteConfig, description="the [suite] table")
    models: ModelsConfig = Field(default_factory=ModelsConfig, description="the [models] tables")
    search: SearchConfig = Field(default_factory=SearchConfig, description="the [search] table")
    pruning: PruningConfig = Field(default_factory=PruningConfig, description="the [pruning] table")
    budget: BudgetConfig = Field(default_factory=BudgetConfig, description="the [budget] table")
    run: RunConfig = Field(default_factory=RunConfig, description="the [run] table")
    local: LocalConfig = Field(default_factory=LocalConfig, description="the [local] table")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig,
                                   description="the [sandbox] table")
    ray: RayConfig = Field(default_factory=RayConfig, description="the [ray] table")
    _notes: list[str] = PrivateAttr(default_factory=list)

    @property
    def notes(self) -> tuple[str, ...]:
        """What the loader changed on the way (old field places), for the CLI to show."""
        return tuple(self._notes)

    def to_flat_params(self) -> dict[str, str]:
        """Dotted key → string value for every field (MLflow params); None becomes ""."""
        out: dict[str, str] = {}
        dump = self.model_dump(mode="json")
        dump["search"][self.search.strategy] = self.search.settings.model_dump(mode="json")
        dump["models"]["task"]["alternatives"] = [  # a name, or its table's fields as JSON
            a.model if a.model_fields_set == {"model"}
            else json.dumps(a.model_dump(mode="json", exclude_unset=True), sort_keys=True)
            for a in self.models.task.alternatives]
        _flatten(dump, "", out)
        return out


def _flatten(obj: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}{k}." if isinstance(v, dict) else f"{prefix}{k}", out)
        return
    if obj is None:
        out[prefix] = ""
    elif isinstance(obj, bool):
        out[prefix] = "true" if obj else "false"
    elif isinstance(obj, list):
        out[prefix] = ",".join(str(x) for x in obj)
    else:
        out[prefix] = str(obj)


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> CampaignConfig:
    """Read ``path`` (TOML), merge dotted-key ``overrides``, validate, freeze.

    A missing ``run.out`` defaults to ``runs/<file stem>``. Raises
    :class:`ConfigError` for a missing file, bad TOML, unknown fields, wrong
    types or out-of-range values.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ConfigError(
            f"Campaign config {path} {what}. Pass the path of a TOML file, for example "
            f"experiments/quickstart.toml; metasearch never falls back to defaults silently."
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(
            f"Campaign config {path} is not valid TOML: {e}. Fix the syntax at that spot "
            f"(strings need quotes, tables are written [section], lists [a, b])."
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"Campaign config {path} cannot be read: {e}.") from None

    run = raw.setdefault("run", {})
    if isinstance(run, dict):
        run.setdefault("out", f"runs/{path.stem}")
    override_keys = set()
    for key, value in (overrides or {}).items():
        merge_override(raw, key, value, path)
        override_keys.add(key)
    notes: list[str] = []
    sections = _strategy_tables(raw, path, notes)
    try:
        config = CampaignConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_explain(e, path, override_keys)) from None
    config.search._sections.update(_validate_sections(sections, path, override_keys))
    config._notes.extend(notes)
    return config


def _strategy_tables(raw: dict[str, Any], path: Path, notes: list[str]) -> dict[str, Any]:
    """Take the ``[search.<strategy>]`` tables out of ``raw`` (validated on their own).

    Fields of the chosen strategy written directly under ``[search]`` (configs
    from before strategies had tables) are moved into its table, with a note.
    """
    from metasearch.search.registry import get_strategy, strategy_names

    search = raw.get("search")
    if not isinstance(search, dict):
        return {}
    name = search.get("strategy", "adas")
    if not isinstance(name, str):
        return {}  # the type error is reported by the ordinary validation
    known = strategy_names()
    if name not in known:
        try:
            get_strategy(name)
        except ConfigError as e:
            raise ConfigError(f"Campaign config {path}: {e}") from None
    tables = {k: search.pop(k) for k in list(search) if k in known}
    spec = get_strategy(name)
    moved = [k for k in spec.legacy if k in search]
    if moved:
        table = tables.setdefault(name, {})
        if not isinstance(table, dict):
            return tables
        both = [k for k in moved if k in table]
        if both:
            raise ConfigError(
                f"Campaign config {path} sets {', '.join(both)} both under [search] and under "
                f"[search.{name}]. These are {name} settings: keep them only in [search.{name}]."
            )
        for k in moved:
            table[k] = search.pop(k)
        notes.append(
            f"{path}: {', '.join(f'search.{k}' for k in moved)} now live{'s' if len(moved) == 1 else ''} "
            f"in [search.{name}] (read from [search] this time; move "
            f"{'it' if len(moved) == 1 else 'them'} under a [search.{name}] table to silence this note)."
        )
    return tables


def _validate_sections(
    tables: Mapping[str, Any], path: Path, override_keys: set[str]
) -> dict[str, Any]:
    from metasearch.search.registry import get_strategy

    out = {}
    for name, table in tables.items():
        model = get_strategy(name).settings
        if not isinstance(table, dict):
            raise ConfigError(
                f"Campaign config {path}: search.{name} must be a table ([search.{name}]), "
                f"not {short_value(table)}."
            )
        try:
            out[name] = model.model_validate(table)
        except ValidationError as e:
            raise ConfigError(
                _explain(e, path, override_keys, root=model, prefix=f"search.{name}.")
            ) from None
    return out


def _explain(err: ValidationError, path: Path, override_keys: set[str], *,
             root: type[BaseModel] | None = None, prefix: str = "") -> str:
    return explain_validation(err, what="Campaign config", path=path, root=root or CampaignConfig,
                              prefix=prefix, override_keys=override_keys,
                              unknown_hint=_strategy_hint)


def _strategy_hint(model: type[BaseModel], name: str) -> tuple[str, str]:
    """An unknown field under [search]: which strategy's table it belongs in, if any."""
    if model is not SearchConfig:
        return "", ""
    from metasearch.search.registry import get_strategy, strategy_names

    names = strategy_names()
    owners = [n for n in names if name in get_strategy(n).settings.model_fields]
    hint = (f"It is a setting of the {' / '.join(owners)} strategy: put it under "
            f"[search.{owners[0]}]. ") if owners else ""
    return hint, "; each strategy has its own table: " + ", ".join(f"[search.{n}]" for n in names)
