"""Claiming a run's current phase for this process: its phase-run row, the run's lease, and
the stop request that lets an abort or a lost lease stop it (`PhaseClaim`).

A phase is claimed in a transaction of its own (`claim`) or in the one that moved the run to
it (`claim_in`: a Continue's, whose run row is locked already: one commit for both, the
click's way to its next checkpoint shorter by a BEGIN, a run lock, a read and a COMMIT).
Either way the stop request is known to this process (`executing`) before the claim
commits, so an abort that arrives the moment after finds the phase and waits for it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from bot.domain.audit_kinds import AuditKind
from bot.engine import restore_point
from bot.engine.leasing import Leases
from bot.store import runs as run_rows
from bot.store.models import PhaseRun, PhaseStatus, Run, RunStatus
from bot.store.unit import DatabaseUnavailable, Store, Tx
from bot.surface import SYSTEM
from phases.checks.base import StopRequest
from phases.runbook import PhaseSpec, Runbook

log = logging.getLogger(__name__)

Claimed = tuple[Run, PhaseRun, PhaseSpec]


@dataclass(frozen=True)
class Handoff:
    """A phase claimed for the thread that will execute it. `claimed`: the rows, when the
    claim is known to have committed; None when its commit's outcome is unknown (the
    connection dropped): the thread then claims again with `token`, which finds the row
    that claim made if its COMMIT did land."""

    run_id: int
    stop: StopRequest = field(repr=False)
    token: str
    claimed: Claimed | None = field(repr=False)  # (rows: never in a log line)
    epoch: int | None = None  # the lease epoch the claim took


class PhaseClaim:
    def __init__(
        self,
        store: Store,
        runbook: Runbook,
        digest: str,
        leases: Leases,
        now: Callable[[], datetime],
        complete: Callable[[Tx, Run], None],
    ) -> None:
        self.store, self.runbook, self.digest, self.now = store, runbook, digest, now
        self.leases, self.me, self._take_lease = leases, leases.me, leases.take
        self._complete = complete
        self.completed_by: set[str] = set()  # claims that found the run's last phase done

    def claim(self, run_id: int, token: str | None = None) -> Claimed | None:
        """Claims the run's current phase in a transaction of its own (`claim_locked`)."""
        with self.store.tx() as tx:
            run = tx.lock_run(run_id)
            return None if run is None else self.claim_locked(tx, run, token or uuid.uuid4().hex)

    def claim_in(self, tx: Tx, run: Run, *, moved_on: bool = False) -> Handoff | None:
        """Claims the phase the run was just moved to, in the caller's transaction (the run
        row locked by it). The caller hands the result to `Phases.advance` once that
        transaction committed, or to `failed` if it did not. `moved_on`: this transaction
        moved the run's phase index forward (a Continue), so that phase has no attempt yet
        (`claim_locked`)."""
        if run.status != RunStatus.RUNNING or run.phase_index >= len(self.runbook.phases):
            return None
        assert run.id is not None
        run_id, token = run.id, uuid.uuid4().hex  # (the rows expire if the claim fails)
        before = self.leases.epochs.get(run_id)
        stop = self.leases.executes(run_id, "phase")
        try:
            claimed = self.claim_locked(tx, run, token, moved_on=moved_on)
        except BaseException:
            taken = self.leases.epochs.get(run_id)
            self._forget(run_id, stop, taken if taken != before else None)
            raise
        if claimed is None:
            self.leases.done(run_id, stop)
            return None
        return Handoff(run_id, stop, token, claimed, self.leases.epochs.get(run_id))

    def committed(self) -> None:
        """A `claim_in` transaction committed: its lease is renewed from now on, even while
        the phase waits for a free thread of the pool."""
        self.leases.ensure_heartbeat()

    def failed(self, handoff: Handoff, exc: BaseException) -> Handoff | None:
        """The transaction of `claim_in` raised `exc`. Rolled back: nothing was claimed (None).
        The connection dropped at its COMMIT (`at_commit`): it may have landed, so the
        phase's thread is still to be started, with the claim's token and no rows
        (`Handoff.claimed`): its claim finds the row if the COMMIT landed."""
        if isinstance(exc, DatabaseUnavailable) and exc.at_commit:
            return Handoff(handoff.run_id, handoff.stop, handoff.token, None)
        self._forget(handoff.run_id, handoff.stop, handoff.epoch)
        return None

    def _forget(self, run_id: int, stop: StopRequest, epoch: int | None) -> None:
        """A claim that did not commit: its stop request, and the lease epoch it took (if
        any: nothing for the heartbeat to renew)."""
        self.leases.done(run_id, stop)
        if epoch is not None:  # (nothing of this claim runs: `lose` only forgets the epoch)
            self.leases.lose(run_id, epoch, "its claim did not commit")

    def claim_locked(
        self, tx: Tx, run: Run, token: str, *, moved_on: bool = False
    ) -> Claimed | None:
        """Claims the run's current phase for this process (its row locked by `tx`). `token`
        names this claim: if the database dropped the connection after the COMMIT landed,
        a retry with it finds the phase it claimed (executor = token) and carries on
        instead of leaving it stuck.

        `moved_on`: `tx` itself moved the run's phase index forward, under the run's lock.
        A phase run is only ever made at the run's index, and the index only grows, so no
        attempt of this phase exists: its read is skipped (one round trip of every
        Continue)."""
        assert run.id is not None
        run_id = run.id
        if run.status != RunStatus.RUNNING:
            return None
        if run.runbook_digest != self.digest:
            log.error("run #%s was started with another version of the runbook", run_id)
            return None  # recover() has told the channel; a person restores or aborts
        if run.owner is not None and run.owner != self.me:
            return None  # another process executes it, or the reaper will take it over
        if run.phase_index >= len(self.runbook.phases):
            self._complete(tx, run)
            self.completed_by.add(token)  # advance: run_ended once this committed
            return None
        latest = None if moved_on else run_rows.latest_attempt(tx, run_id, run.phase_index)
        if (
            latest is not None
            and latest.status == PhaseStatus.RUNNING
            and latest.executor == token
            and run.owner == self.me
        ):
            return run, latest, self.runbook.phases[run.phase_index]
        if latest is not None and latest.status in (
            PhaseStatus.RUNNING,
            PhaseStatus.CHECKED,
            PhaseStatus.INTERRUPTED,
            PhaseStatus.MONITORING,
        ):
            return None  # executing elsewhere, or its gate is open
        phase = self.runbook.phases[run.phase_index]
        attempt = latest.attempt + 1 if latest else 1
        pr = PhaseRun(
            run_id=run_id,
            phase_id=phase.id,
            phase_index=run.phase_index,
            attempt=attempt,
            started_at=self.now(),
            executor=token,
            marks_begin=True,  # its began_at is written before its first action
        )
        tx.add(pr)
        self._take_lease(tx, run)
        tx.flush()
        tx.audit(
            AuditKind.PHASE_STARTED,
            actor=SYSTEM.id,
            run_id=run_id,
            data={"phase": phase.id, "index": run.phase_index, "attempt": attempt},
            at=self.now(),
        )
        restore_point.fix_at_phase_start(tx, self.runbook, run_id, pr, self.now())
        return run, pr, phase
