"""Leases and fencing: which process executes a run's phase or rollback now.

A process holding a run renews `run.lease_until` every third of the lease; another replica
takes over only once that lapsed, or at once when the owner was an earlier incarnation of its
own replica (it was restarted). Leases are read and written on the database's clock, never a
machine's own. Each take-over increments `run.lease_epoch` (a fencing token): the holder's
writes are conditional on the epoch it took, so a stale holder's write is refused. A holder
that cannot renew (the database unreachable for half a lease, or the row shows another owner
or epoch) stops its running step at once, killing it before its lease can lapse
(docs/hardening.md).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from bot.engine.errors import LeaseLost
from bot.store import leases
from bot.store import runs as run_rows
from bot.store.models import Run, RunStatus
from bot.store.unit import DatabaseUnavailable, Store, Tx
from phases.checks.base import StopRequest
from phases.checks.leash import Leash
from phases.secrets import Masker

log = logging.getLogger(__name__)

# A holder's steps are killed once this share of a lease passed since its last renewal was
# sent: before the lease can lapse on the database's clock and another replica take over.
LEASH_SHARE = 0.8


class Leases:
    """The runs this process holds (their epochs), what it executes for them, the heartbeat
    that renews them and the reaper that takes over a dead replica's runs."""

    def __init__(
        self,
        store: Store,
        masker: Masker,
        now: Callable[[], datetime],
        replica: str,
        lease: timedelta,
        stop: threading.Event,
    ) -> None:
        self.store = store
        self.masker = masker
        self.now = now
        self.replica = replica
        self.me = f"{replica}#{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self.lease = lease
        self._stop = stop
        self.lock = threading.Lock()
        self._heartbeat: threading.Thread | None = None
        self._reaper: threading.Thread | None = None
        self._claims = 0  # bumped after each committed claim (see _renew_loop)
        # What this process executes now (a phase, a rollback) and how to stop it, by run; and
        # the lease epoch (fencing token) it took for each run it holds.
        self.executing: dict[int, tuple[StopRequest, str]] = {}
        self.epochs: dict[int, int] = {}
        # A tick's checks running now, by run: how to stop them, and the epoch they run under.
        self.checking: dict[int, tuple[StopRequest, int]] = {}
        # Kills this process's running steps once its leases may have lapsed, even if this
        # process is paused or dead (a separate process, started when a step first runs).
        self.leash = Leash()

    def dead(self, owner: str | None, lease_until: datetime | None, now: datetime) -> bool:
        """True when the owner of a run's execution is gone: its lease lapsed (`now`: the
        database's clock, `db_now`), or it was an earlier incarnation of this very replica
        (this process replaced it)."""
        if owner is None:
            return True
        if owner == self.me:
            return False
        if owner.rsplit("#", 1)[0] == self.replica:
            return True
        return lease_until is None or lease_until < now

    def take(self, tx: Tx | Any, run: Run) -> None:
        """Takes the run's lease in the caller's transaction, on the database's clock, with
        the next epoch: a conditional UPDATE (WHERE lease_epoch = the one read), so of two
        processes taking it at once one wins and the other gets LeaseLost. Call
        `ensure_heartbeat()` once the transaction committed."""
        assert run.id is not None
        asked = time.monotonic()
        epoch = leases.take(Tx.of(tx, self.now), run, self.me, self.lease)
        if epoch is None:
            raise LeaseLost(f"run #{run.id}: another process took its lease first")
        with self.lock:
            self.epochs[run.id] = epoch
            checking = self.checking.get(run.id)
        self.leash.renew(asked + self.lease.total_seconds() * LEASH_SHARE)
        if checking is not None and checking[1] != epoch:
            stop = checking[0]
            Tx.of(tx, self.now).after_commit(lambda: stop.set("the run's lease moved on"))

    def holds(self, tx: Tx | Any, run_id: int) -> bool:
        """Fencing, in the caller's transaction: True if this process still holds the run's
        lease with the epoch it took (the row is locked for the rest of the transaction, so
        no take-over can slip in before the caller's write commits)."""
        epoch = self.epochs.get(run_id)
        if epoch is None:
            return False
        return leases.holds(Tx.of(tx, self.now), run_id, self.me, epoch)

    def fence(self, tx: Tx | Any, run_id: int, what: str) -> None:
        """Raises LeaseLost (and logs it) unless this process still holds the run's lease."""
        if not self.holds(tx, run_id):
            log.warning(
                "run #%s: %s refused: this process (%s, epoch %s) no longer holds the lease",
                run_id,
                what,
                self.me,
                self.epochs.get(run_id),
            )
            raise LeaseLost(f"run #{run_id}: {what} refused: the lease was lost")

    def standing(
        self, run_id: int, begin: tuple[int, str] | None = None
    ) -> Literal["mine", "rolling_back", "lost"]:
        """Whether the executing phase may go on: still ours, aborted, or taken over.
        `begin`: (phase run, action id) of the action about to start. Then the run is locked
        and, only if the phase is still ours, the action's start written in the same
        transaction (`began_at` for the first, `began_step` for each): a take-over (which
        locks the run too) sees either that write or a lease this process no longer holds,
        so it never restarts a phase whose action may have begun, and its gate says which
        action had begun."""
        with self.store.tx() as tx:
            run = tx.lock_run(run_id) if begin is not None else run_rows.get(tx, run_id)
            if run is None:
                return "lost"
            if run.status == RunStatus.ROLLING_BACK:
                return "rolling_back"
            if (
                run.status == RunStatus.RUNNING
                and run.owner == self.me
                and run.lease_epoch == self.epochs.get(run_id)
            ):
                if begin is not None:
                    run_rows.mark_began(tx, begin[0], self.now(), begin[1])
                return "mine"
            return "lost"

    def ensure_heartbeat(self) -> None:
        with self.lock:
            self._claims += 1
            if self._heartbeat is None or not self._heartbeat.is_alive():
                self._heartbeat = threading.Thread(
                    target=self._renew_loop, name="cutover-lease", daemon=True
                )
                self._heartbeat.start()

    def renew(self) -> int:
        """Extends the lease of every run this process holds, each on its own epoch, on the
        database's clock; returns how many. A run whose row shows another owner or epoch is
        lost: its running step is stopped. A run aborted (rolling back) while this process
        executes one of its phases: that phase's running step is stopped (the abort's
        rollback waits for it)."""
        with self.lock:
            held = dict(self.epochs)
        if not held:
            return 0
        with self.store.tx() as tx:
            renewed, aborted = leases.renew(tx, held, self.me, self.lease)
        for run_id, epoch in held.items():
            if run_id not in renewed:
                said = "the lease is no longer this process's (taken over, or the run ended)"
                self.lose(run_id, epoch, said, time.monotonic())
        for rid in aborted:
            with self.lock:
                running = self.executing.get(rid)
            if running is not None and running[1] == "phase":
                running[0].set("abort")
        return len(renewed)

    def executes(self, run_id: int, what: Literal["phase", "rollback"]) -> StopRequest:
        """This process is about to execute the run's phase or rollback: how to stop it
        (an abort, a lost lease), known to this process from now on (`executing`)."""
        stop = self._leashed()
        with self.lock:
            self.executing[run_id] = (stop, what)
        return stop

    def checks(self, run_id: int, epoch: int) -> StopRequest:
        """This process is about to run a tick's checks under the run's lease `epoch`: how
        to stop them, known to this process until `checked`. They are stopped when that
        epoch is lost (`lose`) or when a newer one, taken by this process (a rollback, a
        Retry's phase), has committed (`take`): either way their results would be refused."""
        stop = self._leashed()
        with self.lock:
            self.checking[run_id] = (stop, epoch)
        return stop

    def _leashed(self) -> StopRequest:
        """A stop request whose steps' processes this process's watchdog is told of."""
        stop = StopRequest()
        stop.leash = self.leash
        return stop

    def checked(self, run_id: int, stop: StopRequest) -> None:
        """The tick's checks `checks` registered have ended."""
        with self.lock:
            if self.checking.get(run_id, (None, 0))[0] is stop:
                del self.checking[run_id]

    def done(self, run_id: int, stop: StopRequest) -> None:
        """What `executes` registered has ended (unless another took its place meanwhile)."""
        with self.lock:
            if self.executing.get(run_id, (None, ""))[0] is stop:
                del self.executing[run_id]

    def lose(self, run_id: int, epoch: int, reason: str, kill_by: float | None = None) -> None:
        """This process no longer holds the run (epoch `epoch`): forget it, and stop what it
        executes for it. A released run (its gate opened, its end recorded) has nothing
        running: then this only forgets the epoch."""
        with self.lock:
            if self.epochs.get(run_id) != epoch:
                return  # claimed again meanwhile, with a newer epoch
            del self.epochs[run_id]
            running = self.executing.get(run_id)
            checking = self.checking.get(run_id)
        if running is not None:
            log.warning("run #%s: %s; stopping its running step", run_id, reason)
            running[0].set(reason, kill_by=kill_by)
        if checking is not None and checking[1] == epoch:
            log.warning("run #%s: %s; stopping its tick's running check", run_id, reason)
            checking[0].set(reason, kill_by=kill_by)

    def _renew_loop(self) -> None:
        """Renews while this process owns runs; ends when it owns none and claimed nothing
        meanwhile (a claim after that starts a new one). When the database cannot be reached
        for half a lease, every step this process runs is stopped, and killed before the
        lease can lapse: another replica may take the runs over after that."""
        lease = self.lease.total_seconds()
        interval = max(lease / 3, 0.05)
        renewed_at = time.monotonic()  # the last renewal's request left no later than this
        while not self._stop.wait(interval):
            with self.lock:
                claims = self._claims
            asked = time.monotonic()
            try:
                renewed = self.renew()
                renewed_at = asked
                if renewed:
                    self.leash.renew(asked + lease * LEASH_SHARE)
            except Exception as exc:
                log.warning("cannot renew leases: %s", self.masker.mask(str(exc)))
                if time.monotonic() - renewed_at >= lease / 2:
                    with self.lock:
                        held = dict(self.epochs)
                    for run_id, epoch in held.items():
                        self.lose(
                            run_id,
                            epoch,
                            "the lease could not be renewed",
                            kill_by=renewed_at + lease * LEASH_SHARE,
                        )
                continue
            if renewed == 0:
                with self.lock:
                    if self._claims == claims:
                        self._heartbeat = None
                        return

    def start_reaper(self, reap: Callable[[], list[str]], interval: float | None = None) -> None:
        """Takes over, every `interval` seconds, what a dead replica left executing (`reap`)."""
        every = interval if interval is not None else max(self.lease.total_seconds() / 3, 0.05)

        def loop() -> None:
            while not self._stop.wait(every):
                try:
                    for line in reap():
                        log.warning("took over: %s", line)
                except DatabaseUnavailable as exc:
                    log.warning("cannot look for dead replicas' runs: %s", exc)
                except Exception:
                    log.exception("reaper failed")

        with self.lock:
            if self._reaper is None:
                self._reaper = threading.Thread(target=loop, name="cutover-reaper", daemon=True)
                self._reaper.start()
