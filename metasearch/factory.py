"""The one place that builds gateways and sandboxes from settings.

Library code takes these parts as arguments (inject, don't construct); the
CLI and the campaign runner call these functions once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from metasearch.llm.gateway import Gateway
from metasearch.llm.local import divert_native_stdout
from metasearch.llm.settings import (
    BudgetSettings,
    GatewaySettings,
    ModelSettings,
    default_cache_dir,
)


def build_gateway(
    *,
    task_model: str | None = None,
    api_base: str | None = None,
    protocol: str = "auto",
    models: Mapping[str, ModelSettings] | None = None,
    cache_dir: Path | None = None,
    cache_enabled: bool = True,
    concurrency: int = 16,
    budget: BudgetSettings | None = None,
) -> Gateway:
    """A gateway whose response cache lives in ``cache_dir`` (default: the user cache).

    For the CLI: it also diverts llama.cpp's native log lines from stdout to
    ``<cache_dir>/logs/llama-server.log`` so they can't corrupt ``--json``.
    """
    table = dict(models or {})
    if task_model is not None and task_model not in table:
        table[task_model] = ModelSettings(api_base=api_base, protocol=protocol)  # type: ignore[arg-type]
    cache_dir = cache_dir or default_cache_dir()
    divert_native_stdout(cache_dir / "logs" / "llama-server.log")
    settings = GatewaySettings(
        models=table,
        default_concurrency=concurrency,
        cache_dir=cache_dir,
        cache_enabled=cache_enabled,
        budget=budget or BudgetSettings(),
    )
    return Gateway(settings=settings)


def build_sandbox(
    mode: str,
    gateway: Any,
    *,
    allowed_models: Collection[str] | None = None,
    candidate_timeout_s: float = 3600.0,
    scratch_root: Path | None = None,
) -> Any:
    """A sandbox runner whose LLM calls go to ``gateway``; ``mode`` as in config."""
    from metasearch.sandbox import SandboxLimits, SandboxRunner

    limits = SandboxLimits(candidate_timeout_s=candidate_timeout_s)
    return SandboxRunner(mode=mode, limits=limits, gateway=gateway,
                         allowed_models=allowed_models, scratch_root=scratch_root)
