"""``metasearch export``: take one agent (or the archive) out of a campaign."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from metasearch.cli._output import print_json
from metasearch.errors import ConfigError

FORMATS = ("py", "mlflow", "adas")


def export_cmd(
    campaign: Annotated[str, typer.Argument(help="Campaign directory (run.out of a campaign), or a database URL (postgresql://host/db#NAME; py and adas).")],
    fmt: Annotated[str, typer.Option("--format", help="py, mlflow or adas.")],
    out: Annotated[
        Path | None, typer.Option(help="Output file (py: a .py file; adas: a .json file).")
    ] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Candidate id to export.")] = None,
    best: Annotated[
        bool, typer.Option("--best", help="Export the best agent on validation (never test).")
    ] = False,
    model_name: Annotated[
        str | None, typer.Option(help="mlflow: the registered model name.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="py/mlflow: default litellm model (default: the campaign's task model)."),
    ] = None,
    api_base: Annotated[
        str | None, typer.Option(help="mlflow: endpoint URL the served model calls.")
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(help="mlflow: NAME of the env variable with the API key at serving time."),
    ] = None,
    protocol: Annotated[
        str | None,
        typer.Option(help="py/mlflow: reply protocol json or sections (default: the campaign's)."),
    ] = None,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI (default: the campaign's mlflow.db).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Export an agent as a standalone module, an MLflow model, or ADAS archive JSON.

    Without --agent, py and mlflow export the best agent on validation; adas
    exports every ok agent.
    """
    from metasearch.interop import export as ex

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}.")
    if protocol is not None and protocol not in ("json", "sections"):
        raise ConfigError(f"--protocol must be 'json' or 'sections', not {protocol!r}.")
    if agent and best:
        raise ConfigError("Pass either --agent ID or --best, not both.")
    if fmt in ("py", "adas") and out is None:
        raise ConfigError(f"--format {fmt} needs --out PATH, the file to write.")
    if out is not None:
        from metasearch.checks import check_output_file

        check_output_file(out, "--out")
    result: dict[str, object]
    notes: list[str] = []
    if fmt == "py":
        assert out is not None
        path, rec, info = ex.export_py(
            campaign,
            out,
            agent_id=agent,
            best=best,
            model=model,
            protocol=protocol,
            tracking_uri=tracking_uri,
        )
        used_model = model or info.task_model
        result = {
            "format": "py",
            "path": str(path),
            "agent": rec.id,
            "name": rec.name,
            "model": used_model,
            "protocol": protocol or info.protocol,
        }
        if not model and (not used_model or used_model.startswith("local/")):
            notes.append(
                f"The campaign's task model {used_model or '(unknown)'} runs only inside "
                "metasearch; call solve(question, model=...) with a litellm model, or export "
                "again with --model."
            )
        notes.append(f'Use it: python {path} "your question" --model MODEL [--api-base URL]')
    elif fmt == "mlflow":
        if not model_name:
            raise ConfigError("--format mlflow needs --model-name NAME, the registered model name.")
        res = ex.export_mlflow(
            campaign,
            model_name,
            agent_id=agent,
            best=best,
            model=model,
            api_base=api_base,
            api_key_env=api_key_env,
            protocol=protocol,
            tracking_uri=tracking_uri,
        )
        result = {
            "format": "mlflow",
            "model_uri": res.model_uri,
            "version": res.version,
            "run_id": res.run_id,
            "tracking_uri": res.tracking_uri,
            "agent": res.record.id,
            "name": res.record.name,
        }
        notes.append(
            f"Serve it: MLFLOW_TRACKING_URI={res.tracking_uri} LITELLM_LOCAL_MODEL_COST_MAP=True "
            f"mlflow models serve -m {res.model_uri} --env-manager local --port 5001"
        )
    else:
        assert out is not None
        path, n = ex.export_adas_file(campaign, out, agent_id=agent, best=best)
        result = {"format": "adas", "path": str(path), "entries": n}
    if as_json:
        print_json(result | {"notes": notes})
        return
    from rich.console import Console

    console = Console()
    if fmt == "adas":
        console.print(f"Wrote {result['entries']} agent(s) in ADAS format to {result['path']}")
    elif fmt == "py":
        console.print(f"Wrote {result['path']}: agent {result['agent']} {result['name']!r}")
    else:
        console.print(
            f"Registered {result['model_uri']} (agent {result['agent']} {result['name']!r})"
        )
    for note in notes:
        console.print(note, highlight=False, soft_wrap=True)
