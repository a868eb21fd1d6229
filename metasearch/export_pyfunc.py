"""The MLflow pyfunc model of an exported agent ("models from code").

``metasearch export --format mlflow`` logs *this file* as the model's code,
with the standalone agent module (``metasearch export --format py``) as the
artifact ``agent``. At load time MLflow runs this file, which imports nothing
from metasearch, so a served model needs only ``mlflow`` and ``litellm``.

``predict`` takes a list of questions, a DataFrame with a ``question`` column
(or a single column), a dict ``{"question": [...]}``, or one string, and
returns a list of answers. The model config (set at export) holds ``model``
(a litellm model string), ``litellm_kwargs`` (e.g. ``api_base``) and
``api_key_env`` (the NAME of the environment variable holding the key; the
key itself is never stored). ``params`` passed to ``predict`` may override
``model`` and ``api_base`` for one call.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import mlflow.models
import mlflow.pyfunc

_PARAM_KEYS = ("model", "api_base")


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

    # No type hints on predict: MLflow would turn them into a schema and reshape inputs.
    def predict(self, context, model_input, params=None):
        config = dict(self.config)
        kwargs = dict(config.get("litellm_kwargs") or {})
        model = config.get("model") or self.agent.DEFAULT_MODEL
        for key, value in (params or {}).items():
            if key == "model" and value:
                model = value
            elif key in _PARAM_KEYS and value:
                kwargs[key] = value
        key_env = config.get("api_key_env")
        if key_env and os.environ.get(key_env) and "api_key" not in kwargs:
            kwargs["api_key"] = os.environ[key_env]
        return [self.agent.solve(q, model=model, **kwargs) for q in questions_of(model_input)]


mlflow.models.set_model(AgentModel())
