"""The MLflow pyfunc model of an exported agent ("models from code").

``metasearch export --format mlflow`` logs *this file* as the model's code,
with the standalone agent module (``metasearch export --format py``) as the
artifact ``agent``. At load time MLflow runs this file, which imports nothing
from metasearch, so a served model needs only ``mlflow`` and ``litellm``.

``predict`` takes a list of questions or a DataFrame with a ``question``
column (MLflow checks the ``list[str]`` type hint and converts a DataFrame),
and returns a list of answers. The model config (set at export) holds ``model``
(a litellm model string), ``litellm_kwargs`` (e.g. ``api_base``) and
``api_key_env`` (the NAME of the environment variable holding the key; the
key itself is never stored).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import mlflow.models
import mlflow.pyfunc


def questions_of(model_input: Any) -> list[str]:
    """Normalise the accepted input shapes to a list of question strings."""
    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, dict):
        value = model_input.get("question", next(iter(model_input.values()), []))
        return [value] if isinstance(value, str) else [str(q) for q in value]
    columns = getattr(model_input, "columns", None)
    if columns is not None:  # a pandas DataFrame
        col = "question" if "question" in columns else columns[0]
        return [str(q) for q in model_input[col].tolist()]
    if hasattr(model_input, "tolist"):  # a numpy array or pandas Series
        model_input = model_input.tolist()
    out = []
    for item in model_input:
        if isinstance(item, dict):
            item = item.get("question", "")
        elif isinstance(item, list | tuple) and len(item) == 1:
            item = item[0]
        out.append(str(item))
    return out


class AgentModel(mlflow.pyfunc.PythonModel):
    """Answers questions with the exported agent module."""

    def load_context(self, context: Any) -> None:
        path = context.artifacts["agent"]
        spec = importlib.util.spec_from_file_location("metasearch_exported_agent", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load the exported agent module {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.agent = module
        self.config = dict(getattr(context, "model_config", None) or {})

    def predict(self, context, model_input: list[str], params=None) -> list[str]:
        config = dict(self.config)
        kwargs = dict(config.get("litellm_kwargs") or {})
        model = config.get("model") or self.agent.DEFAULT_MODEL
        key_env = config.get("api_key_env")
        if key_env and os.environ.get(key_env) and "api_key" not in kwargs:
            kwargs["api_key"] = os.environ[key_env]
        return [self.agent.solve(q, model=model, **kwargs) for q in questions_of(model_input)]


mlflow.models.set_model(AgentModel())
