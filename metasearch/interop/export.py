"""Take an agent out of a campaign: a standalone module, an MLflow model, or ADAS JSON.

- :func:`render_module` / :func:`export_py`: one Python file that needs only
  ``litellm``: the agent's code, a minimal runtime (``Info``, ``LLMAgentBase``
  with the campaign's reply protocol), ``solve(question, model=...)``, a
  ``__main__``, and a provenance header (plus ``run_python``, copied from the
  runtime, when the agent uses it). The runtime is
  ``metasearch/interop/standalone_template.py``, a real module; export replaces the block
  between its ``<export>`` markers.
- :func:`export_mlflow`: that module logged as an MLflow pyfunc model
  (``metasearch/interop/mlflow_pyfunc.py``, models-from-code) and registered under a
  name in the campaign's tracking store.
- :func:`export_adas_file`: ADAS archive JSON (see :mod:`metasearch.interop.adas_json`).

Selection (``--best``) is on validation, never on test.

Example::

    export_py("runs/quickstart", "agent.py", best=True, model="openai/gpt-4o-mini")
"""

from __future__ import annotations

import ast
import json
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from metasearch.candidate.knobs import bake_knobs, extract_knobs
from metasearch.errors import ConfigError, DataError, MetasearchError
from metasearch.interop.python_block import TOOLS_BLOCK, tools_block
from metasearch.store.archive import Archive
from metasearch.store.records import CandidateRecord, SplitScore

__all__ = [
    "CampaignInfo",
    "MlflowExport",
    "campaign_info",
    "export_adas_file",
    "export_mlflow",
    "export_py",
    "python_literal",
    "render_module",
    "select_record",
]

TEMPLATE = Path(__file__).with_name("standalone_template.py")
PYFUNC_MODEL = Path(__file__).with_name("mlflow_pyfunc.py")
_BLOCK = re.compile(r"^# <export>\n.*?^# </export>\n", re.MULTILINE | re.DOTALL)
_TEMPLATE_NOTE = re.compile(
    r"\n\(In the metasearch package this file is the template.*?\)\n", re.DOTALL
)
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


# --------------------------------------------------------------------------- campaign facts


@dataclass(frozen=True)
class CampaignInfo:
    """What an export needs to know about the campaign that found the agent.

    Read from the campaign's parent run params in the tracking store (the
    flattened config: ``suite.name``, ``models.task.model`` ...), else from
    the ``config.toml`` copy in the campaign directory; missing fields are
    empty. ``protocol`` is the resolved reply protocol.
    """

    name: str
    suite: str = ""
    task_model: str = ""
    meta_model: str = ""
    protocol: str = "json"
    answer_hint: str = ""
    max_tokens: int = 1024
    alternatives: tuple[str, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)


def resolve_protocol(params: Mapping[str, str]) -> str:
    """The task model's reply protocol as the campaign ran it.

    ``runtime.protocol`` (the resolved value, when the campaign logged it)
    wins; else ``models.task.protocol`` unless ``auto``; else the gateway's
    rule for ``auto``: ``sections`` for ``local/`` models and for ``openai/``
    models on a localhost ``api_base``, ``json`` otherwise.
    """
    for key in ("runtime.protocol", "models.task.protocol"):
        value = params.get(key, "")
        if value in ("json", "sections"):
            return value
    model = params.get("models.task.model", "")
    if model.startswith("local/"):
        return "sections"
    base = params.get("models.task.api_base", "")
    if model.startswith("openai/") and base and (urlparse(base).hostname or "") in _LOCAL_HOSTS:
        return "sections"
    return "json"


def parse_alternatives(flat: str) -> tuple[str, ...]:
    """The model names in a flattened ``models.task.alternatives`` (names and JSON tables)."""
    out: list[str] = []
    decoder, i = json.JSONDecoder(), 0
    while i < len(flat):
        if flat[i] == "{":
            try:
                table, i = decoder.raw_decode(flat, i)
            except ValueError:
                break
            if isinstance(table, dict) and isinstance(table.get("model"), str):
                out.append(table["model"])
            i += 1  # the comma after it
        else:
            end = flat.find(",", i)
            end = len(flat) if end < 0 else end
            if flat[i:end].strip():
                out.append(flat[i:end].strip())
            i = end + 1
    return tuple(out)


def _tracking_params(campaign_dir: Path, tracking_uri: str | None) -> dict[str, str]:
    from metasearch.store.tracking import default_tracking_uri, read_campaign

    if tracking_uri is None:
        if not (campaign_dir / "mlflow.db").is_file():
            return {}  # never create a store as a side effect of reading one
        tracking_uri = default_tracking_uri(campaign_dir)
    try:
        return dict(read_campaign(tracking_uri, campaign_dir.resolve().name).params)
    except DataError:
        return {}


def campaign_info(
    campaign_dir: str | Path,
    *,
    tracking_uri: str | None = None,
    params: Mapping[str, str] | None = None,
) -> CampaignInfo:
    """The campaign's suite, models and reply protocol (``params`` skips the store)."""
    root = Path(campaign_dir)
    p = dict(params) if params is not None else _tracking_params(root, tracking_uri)
    if params is None and not p and (root / "config.toml").is_file():
        from metasearch.config import load_config

        p = load_config(root / "config.toml").to_flat_params()  # the copy `run` keeps
    suite = p.get("suite.name", "")
    hint = ""
    if suite:
        from metasearch.suites import get_suite

        try:
            hint = get_suite(suite).answer_hint
        except ConfigError:
            hint = ""
    try:
        max_tokens = int(p.get("models.task.max_tokens") or 1024)
    except ValueError:
        max_tokens = 1024
    return CampaignInfo(
        name=root.resolve().name,
        suite=suite,
        task_model=p.get("models.task.model", ""),
        meta_model=p.get("models.meta.model", ""),
        protocol=resolve_protocol(p),
        answer_hint=hint,
        max_tokens=max_tokens,
        alternatives=parse_alternatives(p.get("models.task.alternatives", "")),
        params=p,
    )


def select_record(archive: Archive, *, agent_id: str | None, best: bool) -> CandidateRecord:
    """The record named by ``agent_id``, or the best on validation (never test)."""
    if agent_id and best:
        raise ConfigError("Pass either --agent ID or --best, not both.")
    if agent_id:
        rec = archive.get(agent_id)
    else:
        rec = archive.best()
        if rec is None:
            raise DataError(
                f"{archive.root} has no candidate with status ok and a validation score, so "
                "there is no best agent. Pass --agent ID to export a specific one "
                f"(`metasearch archive list {archive.root}` lists them)."
            )
    if not rec.code_path or not _has_code(archive, rec.id):
        raise DataError(
            f"Candidate {rec.id} in {archive.root} has no code file (status {rec.status}: "
            f"{rec.reason or 'no reason recorded'}). Choose a candidate that ran."
        )
    return rec


def _has_code(archive: Archive, cid: str) -> bool:
    try:
        return bool(archive.read_agent(cid))
    except (OSError, MetasearchError):
        return False


def _open(campaign: str | Path) -> tuple[Archive, Mapping[str, str] | None]:
    """The archive at a campaign directory or database URL, and (for a URL) its params."""
    from metasearch.store.locate import is_location_url, open_archive

    archive = open_archive(campaign)
    if is_location_url(str(campaign)):
        return archive, archive.config_params()
    return archive, None


# --------------------------------------------------------------------------- the standalone module


def python_literal(text: str) -> str:
    """A readable Python literal for ``text``: triple-quoted where that is exact, else repr."""
    options = [f'"""\\\n{text}"""'] if "\\" not in text else []  # the \-newline is dropped
    options += [f'r"""{text}"""', f"r'''{text}'''"]
    for literal in options:
        try:
            if ast.literal_eval(literal) == text:
                return literal
        except (SyntaxError, ValueError):
            continue
    return repr(text)


def _fitness_line(label: str, score: SplitScore | None) -> str:
    if score is None:
        return f"# {label}: not evaluated"
    from metasearch.evaluation.stats import adas_fitness_string
    from metasearch.interop.adas_json import fitness_of

    return (
        f"# {label}: {100 * score.mean:.1f}% [{100 * score.ci_low:.1f}, {100 * score.ci_high:.1f}]"
        f" (n={score.n}); ADAS: {adas_fitness_string(fitness_of(score))}"
    )


def _header(rec: CandidateRecord, info: CampaignInfo, protocol: str, model: str) -> str:
    from metasearch import __version__

    lines = [
        f"# Agent {rec.name!r} exported by metasearch {__version__}",
        f"# Campaign: {info.name}" + (f" (suite {info.suite})" if info.suite else ""),
        f"# Agent id: {rec.id}; generation: {rec.generation}; fingerprint: {rec.fingerprint or '-'}",
        _fitness_line("Validation", rec.val),
        _fitness_line("Test", rec.test),
        f"# Models: task {info.task_model or 'unknown'}; meta {info.meta_model or 'unknown'}"
        + (f"; agents may also name {', '.join(info.alternatives)}" if info.alternatives else ""),
        f"# Default model of solve(): {model}; reply protocol: {protocol}",
        f"# Exported: {datetime.now(UTC).isoformat(timespec='seconds')}",
        "# Needs only litellm: pip install litellm",
    ]
    return "\n".join(lines) + "\n"


def render_module(
    rec: CandidateRecord,
    code: str,
    info: CampaignInfo,
    *,
    model: str | None = None,
    protocol: str | None = None,
) -> str:
    """The text of the standalone module for ``rec`` (whose code is ``code``).

    Knobs (``tunable(...)`` calls) are baked in: each becomes its literal value,
    so the module runs without metasearch's runtime.
    """
    knobs = extract_knobs(code, max_knobs=10_000)[0]
    code = bake_knobs(code)
    protocol = protocol or info.protocol
    if protocol not in ("json", "sections"):
        raise ConfigError(f"Reply protocol {protocol!r} must be 'json' or 'sections'.")
    model = model or info.task_model or "openai/gpt-4o-mini"
    block = "\n".join(
        [
            "# <export>",
            f"AGENT_ID = {rec.id!r}",
            f"AGENT_NAME = {rec.name!r}",
            f'PROTOCOL = "{protocol}"  # how replies are formatted: "json" (ADAS) or "sections"',
            f"ANSWER_HINT = {info.answer_hint!r}  # the suite's answer format",
            f"DEFAULT_MODEL = {model!r}",
            f"MAX_TOKENS = {int(info.max_tokens)}",
            f"ALTERNATIVES: tuple[str, ...] = {tuple(info.alternatives)!r}"
            "  # the other models the campaign let agents name with model=",
            f"AGENT_SOURCE = {python_literal(code)}",
            "# </export>",
            "",
        ]
    )
    template = TEMPLATE.read_text(encoding="utf-8")
    body, n = _BLOCK.subn(lambda _m: block, template, count=1)
    if n != 1:
        raise RuntimeError(f"{TEMPLATE} lost its <export> block")
    body = TOOLS_BLOCK.sub(lambda _m: tools_block(code), body, count=1)
    body = _TEMPLATE_NOTE.sub("", body, count=1)
    baked = ("# Tuned knobs, baked in as literals: "
             + ", ".join(f"{k.name}={k.default!r}" for k in knobs) + "\n") if knobs else ""
    return _header(rec, info, protocol, model) + baked + body


def export_py(
    campaign_dir: str | Path,
    out: str | Path,
    *,
    agent_id: str | None = None,
    best: bool = False,
    model: str | None = None,
    protocol: str | None = None,
    tracking_uri: str | None = None,
) -> tuple[Path, CandidateRecord, CampaignInfo]:
    """Write the standalone module of one agent to ``out`` (a directory or database URL)."""
    archive, params = _open(campaign_dir)
    rec = select_record(archive, agent_id=agent_id, best=best or not agent_id)
    info = campaign_info(campaign_dir, tracking_uri=tracking_uri, params=params)
    text = render_module(rec, archive.read_agent(rec.id), info, model=model, protocol=protocol)
    path = Path(out)
    if path.is_dir():
        path = path / f"{_slug(rec.name)}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path, rec, info


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text.strip().lower()).strip("_") or "agent"


# --------------------------------------------------------------------------- ADAS


def export_adas_file(
    campaign_dir: str | Path, out: str | Path, *, agent_id: str | None = None, best: bool = False
) -> tuple[Path, int]:
    """Write ADAS archive JSON: one agent (``agent_id`` / ``best``), else every ``ok`` one."""
    from metasearch.interop.adas_json import export_adas, write_adas

    archive, _params = _open(campaign_dir)
    ids = None
    if agent_id or best:
        ids = [select_record(archive, agent_id=agent_id, best=best).id]
    entries = export_adas(archive, ids)
    return write_adas(out, entries), len(entries)


# --------------------------------------------------------------------------- MLflow


@dataclass(frozen=True)
class MlflowExport:
    model_name: str
    version: str
    model_uri: str  # models:/<name>/<version>
    run_id: str
    tracking_uri: str
    record: CandidateRecord


def export_mlflow(
    campaign_dir: str | Path,
    model_name: str,
    *,
    agent_id: str | None = None,
    best: bool = False,
    model: str | None = None,
    api_base: str | None = None,
    api_key_env: str | None = None,
    protocol: str | None = None,
    tracking_uri: str | None = None,
) -> MlflowExport:
    """Log the agent as a pyfunc model and register it as ``model_name``.

    It goes into the campaign's tracking store (sqlite in the campaign
    directory unless ``tracking_uri``), in a run tagged ``metasearch.role =
    export`` under the campaign's experiment. The model's code is
    ``mlflow_pyfunc.py`` and its artifact the standalone module, so serving it
    needs mlflow and litellm, not metasearch.
    """
    import mlflow

    from metasearch.store.tracking import (
        TAG_CANDIDATE,
        TAG_ROLE,
        default_tracking_uri,
        read_campaign,
    )

    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,255}$", model_name):
        raise ConfigError(
            f"Model name {model_name!r} must start with a letter or digit and hold only "
            "letters, digits, '_', '.' and '-'."
        )
    root = Path(campaign_dir)
    archive, _params = _open(root)
    rec = select_record(archive, agent_id=agent_id, best=best or not agent_id)
    uri = tracking_uri or default_tracking_uri(root)
    info = campaign_info(root, tracking_uri=tracking_uri)
    config: dict[str, Any] = {
        "model": model or info.task_model or "openai/gpt-4o-mini",
        "litellm_kwargs": {"api_base": api_base} if api_base else {},
        "api_key_env": api_key_env or "",
    }
    text = render_module(
        rec, archive.read_agent(rec.id), info, model=config["model"], protocol=protocol
    )

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name(info.name)
    if exp is None:
        artifacts = None if tracking_uri else (root.resolve() / "mlartifacts").as_uri()
        exp_id = client.create_experiment(info.name, artifact_location=artifacts)
    else:
        exp_id = exp.experiment_id
    parent: str | None = None
    try:
        parent = read_campaign(uri, info.name).parent_run_id
    except DataError:
        parent = None
    tags = {TAG_ROLE: "export", TAG_CANDIDATE: rec.id, "metasearch.model_name": model_name}
    if parent:
        tags["mlflow.parentRunId"] = parent

    with _mlflow_uris(uri):
        run_id, logged = _log_model(exp_id, rec, model_name, text, config, tags, info.name, uri)
    version = str(logged.registered_model_version or "")
    return MlflowExport(
        model_name=model_name,
        version=version,
        model_uri=f"models:/{model_name}/{version}",
        run_id=run_id,
        tracking_uri=uri,
        record=rec,
    )


@contextmanager
def _mlflow_uris(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at ``uri`` and put back exactly what was set before.

    (``get_tracking_uri()`` returns a computed default when none is set;
    restoring that would pin it, so the module globals are saved instead.)
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    old_tracking = getattr(tracking_utils, "_tracking_uri", None)
    old_registry = getattr(registry_utils, "_registry_uri", None)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        tracking_utils._tracking_uri = old_tracking
        registry_utils._registry_uri = old_registry


def _log_model(
    exp_id: str,
    rec: CandidateRecord,
    model_name: str,
    text: str,
    config: Mapping[str, Any],
    tags: Mapping[str, str],
    campaign: str,
    uri: str,
) -> tuple[str, Any]:
    import mlflow

    try:
        with tempfile.TemporaryDirectory(prefix="metasearch-export-") as tmp:
            agent_py = Path(tmp) / "agent.py"
            agent_py.write_text(text, encoding="utf-8")
            with mlflow.start_run(
                experiment_id=exp_id, run_name=f"export {rec.id} as {model_name}", tags=tags
            ) as run:
                logged = mlflow.pyfunc.log_model(
                    name="agent",
                    python_model=str(PYFUNC_MODEL),
                    artifacts={"agent": str(agent_py)},
                    model_config=config,
                    pip_requirements=_requirements(),
                    registered_model_name=model_name,
                    metadata={"metasearch_candidate": rec.id, "campaign": campaign},
                )
                return run.info.run_id, logged
    except MetasearchError:
        raise
    except Exception as e:
        if type(e).__name__ == "MlflowException":
            raise DataError(f"MLflow refused the export to {uri}: {e}") from None
        raise


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("mlflow", "litellm", "pandas"):
        try:
            out.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            out.append(pkg)
    return out
