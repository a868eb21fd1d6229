"""Persistent response cache on diskcache (SQLite; safe across threads and processes).

The key is the sha256 of the canonical JSON of everything that determines a
reply: model, messages, temperature, max_tokens, response_format and
sample_index. ``role`` and ``candidate`` only label the ledger entry, so two
candidates asking the same thing share one cached reply.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metasearch.llm.types import LLMRequest


def cache_key(request: LLMRequest) -> str:
    """sha256 hex digest of the request's reply-determining fields."""
    payload = {
        "model": request.model,
        "messages": [dict(m) for m in request.messages],
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "response_format": request.response_format,
        "sample_index": request.sample_index,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """Stores reply records (plain dicts) by :func:`cache_key`.

    >>> cache = ResponseCache(directory=tmp_path)  # doctest: +SKIP
    >>> cache.set(cache_key(req), {"text": "4", ...})  # doctest: +SKIP
    """

    def __init__(self, *, directory: str | Path, enabled: bool = True) -> None:
        self.directory = Path(directory)
        self.enabled = enabled
        self._store: Any = None
        if enabled:
            import diskcache

            self.directory.mkdir(parents=True, exist_ok=True)
            self._store = diskcache.Cache(str(self.directory), size_limit=2**34)

    def get(self, key: str) -> dict[str, Any] | None:
        if self._store is None:
            return None
        value = self._store.get(key)
        return value if isinstance(value, dict) else None

    def set(self, key: str, value: dict[str, Any]) -> None:
        if self._store is not None:
            self._store.set(key, value)

    def __len__(self) -> int:
        return 0 if self._store is None else len(self._store)

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every (key, reply), for ``metasearch cache export``."""
        if self._store is None:
            return
        for key in self._store.iterkeys():
            value = self._store.get(key)
            if isinstance(key, str) and isinstance(value, dict):
                yield key, value

    def clear(self) -> None:
        if self._store is not None:
            self._store.clear()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
