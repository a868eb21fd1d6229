"""Gateway settings: per-model endpoints, prices, limits, cache and budget.

Each setting lives here and nowhere else; the campaign config embeds
:class:`GatewaySettings` as its ``llm`` section.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ProtocolChoice = Literal["auto", "json", "sections"]
TransportChoice = Literal["auto", "litellm"]


def default_cache_dir() -> Path:
    """``$METASEARCH_CACHE_DIR``, else ``~/.cache/metasearch``."""
    env = os.environ.get("METASEARCH_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "metasearch"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSettings(_Strict):
    """Settings for one model string (e.g. ``openai/gpt-4o-mini``, ``local/qwen2.5-coder-0.5b``).

    ``price_*_per_mtok`` (USD per million tokens) override litellm's price map.
    ``n_parallel``, ``n_threads`` and ``n_ctx_per_slot`` only apply to
    ``local/`` models (``n_threads`` None means ``os.cpu_count()``).
    ``transport = "litellm"`` keeps an OpenAI-compatible endpoint off the direct
    fast path (see :mod:`metasearch.llm.transport`); ``auto`` picks it where it applies.
    """

    api_base: str | None = None
    api_key_env: str | None = None
    protocol: ProtocolChoice = "auto"
    transport: TransportChoice = "auto"
    price_input_per_mtok: float | None = Field(default=None, ge=0)
    price_output_per_mtok: float | None = Field(default=None, ge=0)
    max_concurrency: int | None = Field(default=None, ge=1)
    timeout_s: float = Field(default=300.0, gt=0)
    max_retries: int = Field(default=3, ge=0)
    n_parallel: int = Field(default=4, ge=1)
    n_threads: int | None = Field(default=None, ge=1)
    n_ctx_per_slot: int = Field(default=4096, ge=256)

    @property
    def threads(self) -> int:
        return self.n_threads or os.cpu_count() or 1


# Frozen, so sharing one is safe; building one per call cost 6 us of validation.
_DEFAULT_MODEL = ModelSettings()


class BudgetSettings(_Strict):
    """Caps on what a campaign may spend; ``None`` means no cap."""

    max_usd: float | None = Field(default=None, ge=0)
    max_calls: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)


class GatewaySettings(_Strict):
    """Everything the gateway needs; models not listed get ``ModelSettings()``."""

    models: dict[str, ModelSettings] = Field(default_factory=dict)
    default_concurrency: int = Field(default=16, ge=1)
    cache_dir: Path = Field(default_factory=default_cache_dir)
    # Assembled local weights (1.6 GB): shared across campaigns, unlike the response
    # cache. None keeps them under ``cache_dir/models``.
    models_dir: Path | None = None
    cache_enabled: bool = True
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    retry_base_delay_s: float = Field(default=0.5, ge=0)
    retry_max_delay_s: float = Field(default=20.0, ge=0)

    def for_model(self, model: str) -> ModelSettings:
        return self.models.get(model) or _DEFAULT_MODEL
