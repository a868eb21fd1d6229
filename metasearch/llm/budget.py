"""Budget guard: caps on USD, calls and tokens for everything through one gateway.

The gateway calls :meth:`Budget.check` before each non-cached call (refused
with :class:`BudgetExceeded` once a cap is reached) and :meth:`Budget.charge`
after it. The call that crosses a cap still returns its reply, since it has
been paid for (and is cached); every later non-cached call is refused. Cache
hits are free and never refused.

Calls already in flight when a cap is reached are not cancelled, so the
spend can overshoot a cap by at most what the in-flight calls (at most the
sum of the concurrency limits) cost.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from metasearch.llm.settings import BudgetSettings
from metasearch.llm.types import BudgetExceeded


@dataclass(frozen=True)
class BudgetUsage:
    usd: float
    calls: int
    tokens: int


class Budget:
    """Thread-safe caps; ``Budget()`` has no caps."""

    def __init__(self, settings: BudgetSettings | None = None) -> None:
        self.settings = settings or BudgetSettings()
        self._lock = threading.Lock()
        self._usd = 0.0
        self._calls = 0
        self._tokens = 0

    def usage(self) -> BudgetUsage:
        with self._lock:
            return BudgetUsage(self._usd, self._calls, self._tokens)

    def check(self) -> None:
        """Raise :class:`BudgetExceeded` if any cap is already reached."""
        with self._lock:
            self._check_locked()

    def reserve(self) -> None:
        """Check the caps and count one call before it is made.

        Reserving first makes the call cap exact under concurrency; USD and
        token caps can still be overshot by the calls already in flight, since
        their price is only known afterwards.
        """
        with self._lock:
            self._check_locked()
            self._calls += 1

    def release(self) -> None:
        """Give back a reservation whose call failed (nothing was spent)."""
        with self._lock:
            self._calls -= 1

    def _check_locked(self) -> None:
        s = self.settings
        caps = (
            ("max_usd", s.max_usd, self._usd, "USD"),
            ("max_calls", s.max_calls, self._calls, "calls"),
            ("max_tokens", s.max_tokens, self._tokens, "tokens"),
        )
        for name, limit, used, unit in caps:
            if limit is not None and used >= limit:
                raise BudgetExceeded(
                    f"The budget cap budget.{name} = {limit:g} {unit} is reached "
                    f"({used:g} {unit} used), so no further model calls are made. "
                    "Results computed so far are kept; raise the cap in the config "
                    "to continue (cached replies stay free).",
                    cap=name,
                    limit=float(limit),
                    used=float(used),
                )

    def add_prior(self, *, usd: float = 0.0, calls: int = 0, tokens: int = 0) -> None:
        """Count spending from before this process (a resumed campaign's records)."""
        with self._lock:
            self._usd += usd
            self._calls += calls
            self._tokens += tokens

    def charge(self, *, usd: float, tokens: int, reserved: bool = True) -> None:
        """Add what a finished call cost; ``reserved`` calls were counted by :meth:`reserve`."""
        with self._lock:
            self._usd += usd
            self._tokens += tokens
            if not reserved:
                self._calls += 1
