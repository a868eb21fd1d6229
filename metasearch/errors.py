"""User-facing errors.

Every error a user can cause (bad config, unknown model, missing key,
unreachable endpoint, bad agent file) is a :class:`MetasearchError` whose
message is one self-contained paragraph naming the file, field or value and
how to fix it. The CLI prints the message and exits non-zero, with no
traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class MetasearchError(Exception):
    """An error caused by input the user can fix; ``str(e)`` is the whole story."""

    exit_code: int = 2


class ConfigError(MetasearchError):
    """A config file, CLI option or field value is invalid."""


class DataError(MetasearchError):
    """A data file is missing, unreadable, or has the wrong fields."""


class AgentCodeError(MetasearchError):
    """An agent file cannot be used (no ``forward``, syntax error, refused)."""
