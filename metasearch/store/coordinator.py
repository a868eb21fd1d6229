"""Several search workers on one campaign: slot claims with leases, and who runs the final test.

Every worker runs the same strategy on the same shared archive, so each asks
for the same slots in the same order. Before a worker spends anything on a
slot it *claims* it: one row per (campaign, candidate id), inserted under a
primary key, so exactly one worker wins. The others wait for the winner's
record to appear in the archive and tell it to their strategy, as if they
had run it.

A claim is a lease: the holder's heartbeat thread renews it every
``lease_s / 3`` seconds. A worker that dies (``kill -9``, a lost machine)
stops renewing, and once its lease has expired the next worker that waits
on the slot takes it over and runs it again; the calls the dead worker had
paid for are hits in the shared response cache, so nothing is billed twice.

The final test runs once, by the worker that finishes its search last:
each worker marks itself finished, waits until no live worker is still
searching, and the one with the latest finish time claims the test (a
claim like any other, so a tester that dies is replaced by a worker still
waiting for the test, or by the next worker that joins). Worker clocks are compared, so the machines keep NTP time.

Work that is not a candidate but must happen once per campaign (creating an
Optuna study, asking a generation of its trials) goes through :meth:`once`:
the same claim under a ``~`` key, kept forever once done.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from metasearch.store import db

__all__ = ["FINAL_TEST", "Coordinator"]

FINAL_TEST = "~final-test"  # the claim of the final test (not a candidate id)
_TASK = "~"  # claims under keys starting with it are work items, never candidate ids
_DONE = 1e18  # the lease of a finished final test: never expires


class Coordinator:
    """This worker's view of a shared campaign: claim, wait, heartbeat, elect the tester.

    ``has(cid)`` says whether a record for ``cid`` is committed (the shared
    archive's :meth:`has`).
    """

    def __init__(self, engine: sa.Engine, campaign: str, *, has: Callable[[str], bool],
                 lease_s: float = 60.0, poll_s: float = 0.5, worker: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine, self.campaign, self.has = engine, campaign, has
        self.lease_s, self.poll_s, self.clock = lease_s, poll_s, clock
        self.worker = worker or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Coordinator:
        """Register this worker and start its heartbeat."""
        w = db.workers
        with self.engine.begin() as conn:
            conn.execute(w.insert().values(campaign=self.campaign, worker=self.worker,
                                           heartbeat=self.clock(), finished_at=None))
        self._beat = threading.Thread(target=self._heartbeat, name="worker-heartbeat",
                                      daemon=True)
        self._beat.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                self.beat()
            except Exception:  # a database hiccup: the next beat retries
                pass

    def beat(self) -> None:
        """Renew this worker's leases and its liveness (the heartbeat thread calls it)."""
        now = self.clock()
        c, w = db.claims, db.workers
        with self.engine.begin() as conn:
            conn.execute(c.update().where(c.c.campaign == self.campaign,
                                          c.c.worker == self.worker,
                                          c.c.lease_until < _DONE)
                         .values(lease_until=now + self.lease_s))
            conn.execute(w.update().where(w.c.campaign == self.campaign,
                                          w.c.worker == self.worker).values(heartbeat=now))

    # ---------------------------------------------------------------- claims

    def claim(self, cid: str) -> bool:
        """Take ``cid`` for this worker: True if it is ours now and not yet committed.

        Atomic across workers: an insert under the primary key, or an update
        of a claim whose lease has expired. A committed record is never
        claimed again (checked after winning, so a holder that committed and
        released a moment ago is seen).
        """
        now = self.clock()
        c = db.claims
        won = False
        held = self.holder(cid)
        if held is not None and held.worker != self.worker and held.lease_until >= now:
            return False  # a live claim: no doomed insert (PostgreSQL would log each one)
        try:
            with self.engine.begin() as conn:
                conn.execute(c.insert().values(campaign=self.campaign, cid=cid,
                                               worker=self.worker, lease_until=now + self.lease_s))
            won = True
        except sa.exc.IntegrityError:
            with self.engine.begin() as conn:
                done = conn.execute(c.update().where(
                    c.c.campaign == self.campaign, c.c.cid == cid,
                    sa.or_(c.c.lease_until < now, c.c.worker == self.worker),
                    c.c.lease_until < _DONE,
                ).values(worker=self.worker, lease_until=now + self.lease_s))
                won = done.rowcount == 1
        if won and not cid.startswith(_TASK) and self.has(cid):
            self.release(cid)
            return False
        return won

    def release(self, cid: str) -> None:
        """Drop this worker's claim (its record is committed, or it gave the slot up)."""
        c = db.claims
        with self.engine.begin() as conn:
            conn.execute(c.delete().where(c.c.campaign == self.campaign, c.c.cid == cid,
                                          c.c.worker == self.worker))

    def done(self, key: str) -> None:
        """Keep this worker's claim of ``key`` forever: the work it stands for is finished."""
        c = db.claims
        with self.engine.begin() as conn:
            conn.execute(c.update().where(c.c.campaign == self.campaign, c.c.cid == key,
                                          c.c.worker == self.worker).values(lease_until=_DONE))

    def once(self, key: str, work: Callable[[], object]) -> bool:
        """Run ``work`` in exactly one worker of the campaign; True in the one that ran it.

        Every other worker waits here until it is done. If the worker running it
        dies, the next one to wait takes it over once the lease expires, so
        ``work`` must finish what a partial run began. ``key`` starts with ``~``.
        """
        if not key.startswith(_TASK):
            raise ValueError(f"once() keys start with {_TASK!r}, not {key!r}")
        while True:
            held = self.holder(key)
            if held is not None and held.lease_until >= _DONE:
                return False
            if self.claim(key):
                try:
                    work()
                except BaseException:
                    self.release(key)  # let another worker (or a resume) do it
                    raise
                self.done(key)
                return True
            time.sleep(self.poll_s)

    def holder(self, cid: str) -> Any | None:
        c = db.claims
        with self.engine.connect() as conn:
            return conn.execute(sa.select(c.c.worker, c.c.lease_until).where(
                c.c.campaign == self.campaign, c.c.cid == cid)).first()

    def wait_for(self, cid: str) -> bool:
        """Wait until ``cid`` is committed by its holder (False) or ours to run (True).

        Ours when the holder's lease expired (it died) or it gave the slot up.
        """
        while True:
            if self.has(cid):
                return False
            if self.claim(cid):
                return True
            time.sleep(self.poll_s)

    # ------------------------------------------------------------ final test

    def take_final_test(self) -> bool:
        """Mark this worker's search finished; True for the one worker that runs the test.

        Waits while another live worker is still searching. Of the live
        workers, the one that finished last claims the test; every other one
        waits until it is done (False), or takes it over (True) when the
        tester's lease expires.
        """
        w = db.workers
        with self.engine.begin() as conn:
            conn.execute(w.update().where(w.c.campaign == self.campaign,
                                          w.c.worker == self.worker)
                         .values(finished_at=self.clock(), heartbeat=self.clock()))
        while True:
            held = self.holder(FINAL_TEST)
            now = self.clock()
            if held is not None and held.worker != self.worker:
                if held.lease_until >= _DONE:
                    return False  # done by another worker
                if held.lease_until < now and self.claim(FINAL_TEST):
                    return True  # its tester died: take the rest of the test over
                time.sleep(self.poll_s)  # a live tester: wait for it to finish
                continue
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(w).where(w.c.campaign == self.campaign)).all()
            live = [r for r in rows if r.worker == self.worker
                    or r.heartbeat >= now - self.lease_s]
            if all(r.finished_at is not None for r in live):
                last = max(live, key=lambda r: (r.finished_at, r.worker))
                if last.worker == self.worker:
                    return self.claim(FINAL_TEST)
            time.sleep(self.poll_s)

    def final_test_done(self) -> None:
        """The test results are committed: the final-test claim never expires now."""
        self.done(FINAL_TEST)

    def tester(self) -> str | None:
        """The worker that claimed the final test (None before it is claimed)."""
        held = self.holder(FINAL_TEST)
        return held.worker if held is not None else None
