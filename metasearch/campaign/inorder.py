"""Run up to N jobs at once and commit their results in the order they were submitted.

Committing in submission order keeps the archive's line order (and so every
tie-break and every later view of it) the same whatever ran faster, and
whatever N is. Jobs run on daemon threads, so an interrupted campaign exits
at once; a job that raised stops the commits at its place: what came before
it is kept, it and what came after are dropped (their LLM calls are cached,
so ``--resume`` replays them for free).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K")


class InOrder(Generic[K, T]):
    """A bounded set of running jobs and an ordered queue of their results."""

    def __init__(self, limit: int, *, name: str = "job") -> None:
        self.limit = max(1, limit)
        self._name = name
        self._queue: deque[tuple[K, Future[T]]] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def keys(self) -> list[K]:
        """The keys submitted and not yet committed, in order."""
        return [k for k, _ in self._queue]

    @property
    def running(self) -> int:
        return sum(1 for _, f in self._queue if not f.done())

    @property
    def free(self) -> int:
        return max(0, self.limit - self.running)

    @property
    def failed(self) -> bool:
        return any(f.done() and f.exception() is not None for _, f in self._queue)

    def submit(self, key: K, fn: Callable[[], T]) -> None:
        """Start ``fn`` now (the caller keeps within ``limit``: see :attr:`free`)."""
        future: Future[T] = Future()

        def target() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn())
            except BaseException as exc:  # delivered to the committing thread
                future.set_exception(exc)

        threading.Thread(target=target, name=f"{self._name}-{key}", daemon=True).start()
        self._queue.append((key, future))

    def commit_ready(self, commit: Callable[[K, T], Any]) -> None:
        """Commit the finished jobs at the head of the queue; re-raise the first failure."""
        while self._queue and self._queue[0][1].done():
            key, future = self._queue[0]
            exc = future.exception()
            if exc is not None:
                raise exc
            self._queue.popleft()
            commit(key, future.result())

    def wait(self) -> None:
        """Block until a running job finishes (returns at once when none runs)."""
        running = [f for _, f in self._queue if not f.done()]
        if running:
            wait(running, return_when=FIRST_COMPLETED)

    def settle(self, commit: Callable[[K, T], Any]) -> None:
        """Wait for every job; commit in order up to the first failure, which is re-raised.

        After a failure the jobs still running are waited for (they stop soon:
        a budget stop fails every later call) and their results dropped.
        """
        try:
            while self._queue:
                self.commit_ready(commit)
                self.wait()
        except Exception:  # not KeyboardInterrupt: Ctrl-C leaves at once (daemon threads)
            self.abandon()
            raise

    def map(self, items: list[tuple[K, Callable[[], T]]], commit: Callable[[K, T], Any]) -> None:
        """Run every ``(key, job)``, at most ``limit`` at once, committing in order."""
        try:
            for key, fn in items:
                self.commit_ready(commit)  # what finished is durable before the next starts
                while not self.free:
                    self.wait()
                    self.commit_ready(commit)
                self.submit(key, fn)
        except Exception:
            self.abandon()
            raise
        self.settle(commit)

    def abandon(self) -> None:
        """Wait for running jobs to end and drop every uncommitted result."""
        futures = [f for _, f in self._queue]
        self._queue.clear()
        if futures:
            wait(futures)
