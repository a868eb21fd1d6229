"""Database URLs without their passwords: for messages, files, MLflow and Ray nodes.

A password never goes into a file or a log. Where a URL must be used again
elsewhere (a worker's ``store.json``, a Ray node), it goes without one, and
libpq reads it there from ``PGPASSWORD`` or ``~/.pgpass``.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["password", "redact", "without_password"]


def redact(url: str) -> str:
    """The URL with its password shown as ``***``, for messages and logs."""
    return _drop_password(url, ":***@")


def without_password(url: str) -> str:
    """The URL with no password at all, to be used again where libpq supplies it."""
    return _drop_password(url, "@")


def password(url: str) -> str | None:
    """The URL's password, if it has one."""
    return urlsplit(url).password if "://" in url else None


def _drop_password(url: str, replacement: str) -> str:
    if "://" not in url:  # a path (a journal file, say)
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(
        f":{parts.password}@", replacement, 1)))
