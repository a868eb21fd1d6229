"""metasearch: automated design of LLM agents, sandboxed and honest.

Heavy dependencies (litellm, mlflow, optuna) are imported lazily by the
modules that need them, so ``import metasearch`` and ``metasearch --help``
stay fast.
"""

from metasearch.errors import MetasearchError

__version__ = "0.1.0"
__all__ = ["MetasearchError", "__version__"]
