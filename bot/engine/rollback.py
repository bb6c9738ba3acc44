"""Executing a rollback: restore (where the failed phase says so), then the rollback steps."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import datetime

from bot.domain.audit_kinds import AuditKind
from bot.engine import restore_point, rollback_report
from bot.engine.core import LeaseLost, Notify
from bot.engine.leasing import Leases
from bot.engine.step_log import StepLog
from bot.store import runs
from bot.store.models import PhaseRun, Run, RunStatus
from bot.store.unit import Database, Store
from bot.surface import SYSTEM
from phases.checks.base import Status, StepContext, StepResult, StopRequest
from phases.runbook import PhaseSpec, Runbook, Value
from phases.runner import OnResult, StepOutcome, run_actions, run_checks

log = logging.getLogger(__name__)


class Rollback:
    def __init__(
        self,
        db: Database,
        store: Store,
        runbook: Runbook,
        now: Callable[[], datetime],
        leases: Leases,
        step_log: StepLog,
        notify: Notify,
        context: Callable[..., tuple[StepContext, dict[str, Value]]],
        feed: Callable[[int, str], None],
        run_ended: Callable[[int], None],
    ) -> None:
        self.db, self.store, self.runbook, self.now = db, store, runbook, now
        self.leases, self.me, self.holds = leases, leases.me, leases.holds
        self._threads_lock, self._epochs = leases.lock, leases.epochs
        self._executing, self._take_lease = leases.executing, leases.take
        self._dead, self._ensure_heartbeat = leases.dead, leases.ensure_heartbeat
        self.record_step = step_log.record
        self.notify, self.context, self.feed, self.run_ended = notify, context, feed, run_ended

    def execute_rollback(self, run_id: int) -> None:
        """Executes the run's rollback, once its executing phase (if any) has ended: the
        rollback never runs beside an action. A phase this process runs is asked to stop
        (`waiting_for`); a phase another live replica runs stops at that replica's next lease
        renewal; either hands over (`Runs._stop_for_rollback`) once its step ended."""
        waiting: str | None = None
        try:
            with self.store.tx() as tx:
                run = tx.lock_run(run_id)
                if run is None or run.status != RunStatus.ROLLING_BACK:
                    return
                running = runs.running_phase(tx, run_id)
                now = tx.db_now()
                waiting = self.waiting_for(run, running, now)
                if waiting is not None:
                    pass  # the executing phase hands over once its running step has ended
                elif running is not None and run.owner not in (None, self.me):
                    return  # a dead replica's phase: the reaper takes it over (lease rules)
                elif run.rollback_started_at is not None and not self._dead(
                    run.owner, run.lease_until, now
                ):
                    return  # another thread or replica executes this rollback
                else:
                    self._take_lease(tx, run)
                    if running is not None:  # ours, and no thread of ours executes it now
                        tx.apply(running, "failed", SYSTEM.id)
                    run.rollback_started_at = self.now()
                    tx.add(run)
                    failed_phase = self.runbook.phases[
                        min(run.phase_index, len(self.runbook.phases) - 1)
                    ]
                    tx.audit(
                        AuditKind.ROLLBACK_STARTED,
                        actor=SYSTEM.id,
                        run_id=run_id,
                        data={
                            "phase": failed_phase.id,
                            "restore": self._restores(run, failed_phase),
                        },
                        at=self.now(),
                    )
        except LeaseLost:
            return  # another process took the rollback in the same instant
        if waiting is not None:
            self.notify.notice(run_id, waiting)
            return
        stop = self.leases.executes(run_id, "rollback")
        try:
            self._execute_rollback(run_id, run, failed_phase, stop)
        finally:
            self.leases.done(run_id, stop)

    def waiting_for(self, run: Run, running: PhaseRun | None, now: datetime) -> str | None:
        """What the rollback waits for, said for the channel, if a live process executes the
        run's phase (this process's own phase is asked to stop, here and now); else None."""
        if running is None or run.owner is None or self._dead(run.owner, run.lease_until, now):
            return None
        phase = self.runbook.phases[running.phase_index]
        if run.owner != self.me:
            return (
                f"Waiting for phase *{phase.name}*, executing on "
                f"{run.owner.rsplit('#', 1)[0]}, to stop before rolling back run #{run.id} "
                "(it sees the abort at its next lease renewal)…"
            )
        with self._threads_lock:
            executing = self._executing.get(run.id or 0)
        if executing is None or executing[1] != "phase":
            return None  # no thread of ours runs it any more: the rollback may begin
        executing[0].set("abort")
        what = f"*{executing[0].during}*" if executing[0].during else f"phase *{phase.name}*"
        return f"Waiting for {what} to stop before rolling back run #{run.id}…"

    def _execute_rollback(
        self, run_id: int, run: Run, failed_phase: PhaseSpec, stop: StopRequest
    ) -> None:
        self._ensure_heartbeat()
        self.notify.notice(
            run_id,
            f"Rolling back run #{run_id} ({run.rollback_reason}). "
            + (
                "First the restore steps (from this run's restore point, if one was fixed), "
                "then the rollback steps. "
                if self._restores(run, failed_phase) and run.reverts_run_id is None
                else f"First the restore steps (from run #{run.reverts_run_id}'s restore point, "
                "if one was fixed), then the rollback steps. "
                if self._restores(run, failed_phase)
                else ""
            ),
        )
        ctx, values = self.context(run)
        ctx = dataclasses.replace(ctx, stop=stop, fencing_token=self._epochs.get(run_id))
        started_at = run.rollback_started_at or self.now()
        phase_index = run.phase_index

        def record(outcome: StepOutcome) -> None:
            try:
                self.record_step(run_id, None, outcome, fenced=True)
            except LeaseLost:  # another process holds the rollback now: start nothing more
                stop.set("the lease was lost", kill_by=time.monotonic())

        outcomes: list[StepOutcome] = []
        restore: rollback_report.Restore | None = None
        if self._restores(run, failed_phase):
            restore = self._restore(run, values, ctx, record)
            outcomes += restore.outcomes
        outcomes += run_actions(
            self.runbook.rollback, values, ctx, "rollback", record, stop_on_failure=False
        )
        # Verified rollback: the old service must be healthy again, checked, not assumed.
        checks = run_checks(self.runbook.rollback_checks, values, ctx, on_result=record)
        outcomes += checks
        took = (self.now() - started_at).total_seconds()
        schema = self._schema_note(phase_index, restore, values)
        report = rollback_report.build(
            self.runbook, values, outcomes, checks, restore, took, schema
        )
        with self.store.tx() as tx:
            run = runs.lock(tx, run_id)
            if run.status != RunStatus.ROLLING_BACK:
                return  # another replica finished it (it took over a lapsed lease)
            if not self.holds(tx, run_id):
                log.warning("run #%s: lease lost; its rollback's end is not recorded here", run_id)
                return  # the replica that took the rollback over finishes it
            self._epochs.pop(run_id, None)
            # The table's move ends the run: ended_at, and its active slot and lease cleared.
            tx.apply(run, "rollback_finished", SYSTEM.id)
            tx.audit(
                AuditKind.RUN_ROLLED_BACK,
                actor=SYSTEM.id,
                run_id=run_id,
                data=report.facts,
                at=self.now(),
            )
        self.notify.notice(run_id, report.notice)
        self.feed(
            run_id,
            f"↩️ {run.environment}: cutover rolled back (run #{run_id}: "
            f"{run.rollback_reason or 'no reason given'}). {report.health} {report.timing}.",
        )
        self.notify.run_changed(run_id)
        self.run_ended(run_id)

    def _restores(self, run: Run, failed_phase: PhaseSpec) -> bool:
        """Whether the rollback runs the restore steps first: the failed phase says so, or
        the run reverts a completed one (which passed every phase) and the runbook restores."""
        if run.reverts_run_id is not None:
            return bool(self.runbook.restore)
        return failed_phase.on_fail == "restore_and_rollback"

    def _restore(
        self, run: Run, values: dict[str, Value], ctx: StepContext, record: OnResult
    ) -> rollback_report.Restore:
        """The restore steps, from the run's restore point (bot/engine/restore_point.py):
        the backup fixed before the first state-changing action of a restore-protected
        phase, never a later one. None fixed: said, not guessed."""
        assert run.id is not None
        run_id = run.id
        # A revert restores from the restore point of the run it undoes.
        point_run = run.reverts_run_id or run_id
        point = self.db.retrying(
            lambda: restore_point.read(self.db, point_run), f"run #{point_run}: its restore point"
        )
        steps = self.runbook.restore
        if point is None or not point.found:
            if run.dry_run:
                state: rollback_report.RestoreState = "dry_run"
                result = StepResult(Status.SKIPPED, "dry run: the database was not restored")
            elif point is None:
                state = "not_needed"
                result = StepResult(
                    Status.SKIPPED,
                    "not restored: no state-changing step of a restore-protected phase began "
                    "in this run, so the database holds no change of theirs to undo",
                )
            else:
                state = "no_restore_point"
                result = StepResult(
                    Status.ERROR,
                    "this run took no verified backup before the database was first changed, so "
                    "it was NOT restored; restore it by hand from a backup you trust",
                )
            out = []
            for st in steps:
                outcome = StepOutcome(st, "restore", result)
                record(outcome)
                out.append(outcome)
            return rollback_report.Restore(state, out, point)
        outcomes = run_actions(steps, values, ctx, "restore", record, stop_on_failure=False)
        later = self.db.retrying(
            lambda: restore_point.later_backups(self.db, point_run, point),
            f"run #{point_run}: its later backups",
        )
        return rollback_report.Restore(
            rollback_report.restore_state(outcomes), outcomes, point, later
        )

    def _schema_note(
        self, phase_index: int, restore: rollback_report.Restore | None, values: dict[str, Value]
    ) -> str | None:
        """What happens to a schema that a migration phase already changed."""
        migrating = [
            i for i, p in enumerate(self.runbook.phases) if p.on_fail == "restore_and_rollback"
        ]
        if not migrating or (
            restore is not None and restore.state in ("restored", "not_needed", "dry_run")
        ):
            return None
        first = migrating[0]
        if phase_index < first:
            return None
        if phase_index == first:
            return (
                "The database was NOT restored: it may hold a half-applied migration under the "
                "old code. Restore it before the old service takes traffic."
            )
        migrated = self.runbook.phases[first]
        backup = values.get("run_backup")
        sha = str(values.get("run_backup_sha256"))[:12]
        where = (
            f"this run's verified backup {backup} (sha256 {sha}…), its restore point"
            if backup
            else "a backup you trust (this run has no restore point)"
        )
        return (
            f"The database keeps the schema Phase {self.runbook.phase_number(first)} "
            f"({migrated.name}) migrated: the old code now runs against it. If the old code "
            f"cannot, restore {where}; skipping the restore keeps the new schema and any data "
            "written since."
        )
