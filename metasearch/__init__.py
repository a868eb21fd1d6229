"""metasearch: automated design of LLM agents, sandboxed and honest.

Heavy dependencies (litellm, mlflow, optuna) are imported lazily by the
modules that need them, so ``import metasearch`` and ``metasearch --help``
stay fast.
"""

import os

# litellm fetches its price map from the network at import unless told not to;
# offline that costs seconds and can deadlock mlflow's UI (PITFALLS.md). Its
# bundled map is what we want. A user can still set the variable to False.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from metasearch.errors import MetasearchError  # noqa: E402

__version__ = "0.1.0"
__all__ = ["MetasearchError", "__version__"]
