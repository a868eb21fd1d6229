"""A campaign's write-ahead log of billed calls: its budget count survives a ``kill -9``.

The archive's checkpoints carry the campaign's spend, but one is written only
at a candidate's commit or a clean stop. A ``kill -9``, an OOM kill or a lost
machine between two of them drops what the candidates in flight had been
billed: the resumed run replays those calls from the cache for free, so
``budget.max_search_calls`` would buy them a second time. The gateway appends
one line per billed call here, as the call is counted, and
``campaign.summary.prior_spend`` takes the larger of this log's total and the
last checkpoint.

One JSON line per call (``{"usd": ..., "tokens": ...}``), flushed to the
kernel at once, so a killed process loses nothing it had counted (a power cut
can lose the last lines). A torn last line is skipped when read.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import IO, Any

__all__ = ["BILLED_FILE", "BilledLog", "logged_spend"]

#: In a campaign directory, beside the archive (not in ``cache/``, which experiments copy).
BILLED_FILE = "billed.jsonl"


class BilledLog:
    """Appends a line per billed call; thread-safe, opened lazily."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file: IO[str] | None = None

    def append(self, *, usd: float, tokens: int) -> None:
        with self._lock:
            if self._file is None:
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(json.dumps({"usd": usd, "tokens": tokens}) + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def logged_spend(directory: str | Path) -> dict[str, Any] | None:
    """The calls, usd and tokens the log in ``directory`` records; None without a log."""
    path = Path(directory) / BILLED_FILE
    if not path.is_file():
        return None
    calls, usd, tokens = 0, 0.0, 0
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                entry = json.loads(line)
                u, t = float(entry["usd"]), int(entry["tokens"])
            except (ValueError, TypeError, KeyError):
                continue  # a line torn by a kill mid-write
            calls, usd, tokens = calls + 1, usd + u, tokens + t
    return {"calls": calls, "usd": usd, "tokens": tokens}
