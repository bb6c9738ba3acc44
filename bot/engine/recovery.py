"""After a restart, and when a replica dies: pick up every active run, take over only what a
dead owner left (an interrupted phase gets a Retry/Rollback gate; a rollback is resumed)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.domain.audit_kinds import AuditKind
from bot.engine.core import Notify, runbook_digest
from bot.engine.leasing import Leases
from bot.store import leases
from bot.store import runs as run_rows
from bot.store import steps as step_rows
from bot.store.models import RunStatus
from bot.store.unit import Store
from bot.surface import SYSTEM
from phases.checks.base import Status
from phases.runbook import PhaseSpec, Runbook

log = logging.getLogger(__name__)


class Recovery:
    def __init__(
        self,
        store: Store,
        runbook: Runbook,
        now: Callable[[], datetime],
        leases: Leases,
        notify: Notify,
        spawn: Callable[..., None],
        advance: Callable[[int], None],
        execute_rollback: Callable[[int], None],
        open_gate: Callable[..., int | None],
        resume_tick_checks: Callable[[int, str | None], str],
    ) -> None:
        self.store, self.runbook, self.digest = store, runbook, runbook_digest(runbook)
        self.now, self._dead, self.notify, self.spawn = now, leases.dead, notify, spawn
        self.advance, self.execute_rollback = advance, execute_rollback
        self.open_gate, self.resume_tick_checks = open_gate, resume_tick_checks

    def recover(self) -> list[str]:
        """Picks up every active run after a restart. Nothing is re-run silently, and a phase
        another live replica executes is left to it."""
        report: list[str] = []
        with self.store.tx() as tx:
            runs = run_rows.all_active(tx)
            now = tx.db_now()
        for run in runs:
            assert run.id is not None
            if run.runbook_digest != self.digest:
                report.append(f"run #{run.id}: runbook changed since start; left waiting")
                self.notify.notice(
                    run.id,
                    f"Run #{run.id} was started with another version of "
                    "the runbook. Restore it, or abort the run.",
                )
                continue
            if run.owner is not None and not self._dead(run.owner, run.lease_until, now):
                report.append(f"run #{run.id}: executing on {run.owner.rsplit('#', 1)[0]}")
                continue
            taken = self._take_over(run.id) if run.owner is not None else None
            if taken is not None:
                report.append(taken)
            elif run.status == RunStatus.ROLLING_BACK:
                report.append(f"run #{run.id}: rollback resumed")
                self._audit_resumed(run.id)
                self.spawn(self.execute_rollback, run.id)
            elif run.status == RunStatus.RUNNING:
                report.append(f"run #{run.id}: continuing at phase {run.phase_index + 1}")
                self.spawn(self.advance, run.id)
            elif run.status == RunStatus.REVERT_PENDING:
                report.append(f"run #{run.id}: revert waiting for its approvers")
            elif run.status == RunStatus.WAITING:
                resumed = self.resume_tick_checks(run.id, None)  # a tick's checks: who runs them
                report.append(f"run #{run.id}: waiting at phase {run.phase_index + 1}{resumed}")
                self.notify.notice(
                    run.id,
                    f"cutover-bot restarted; run #{run.id} is still "
                    f"waiting for a decision at phase {run.phase_index + 1}.",
                )
        return report

    def reap(self) -> list[str]:
        """Takes over every run whose executing replica is gone; says what it did."""
        with self.store.tx() as tx:
            rows = leases.leased(tx)
            now = tx.db_now()
        done = []
        for run_id, owner, until in rows:
            if self._dead(owner, until, now):
                line = self._take_over(run_id)
                if line:
                    done.append(line)
        return done

    def _audit_resumed(self, run_id: int, **data: Any) -> None:
        self.store.record(
            AuditKind.ROLLBACK_RESUMED,
            actor=SYSTEM.id,
            run_id=run_id,
            data=data,
            at=self.now(),
        )

    def _take_over(self, run_id: int) -> str | None:
        """One replica wins (the run row is locked and the dead owner re-checked)."""
        with self.store.tx() as tx:
            run = tx.lock_run(run_id)
            if (
                run is None
                or run.owner is None
                or not self._dead(run.owner, run.lease_until, tx.db_now())
            ):
                return None
            old = run.owner.rsplit("#", 1)[0]
            running = run_rows.running_phase(tx, run_id)
            # No action began (began_at is written, fenced, before the first one): nothing
            # can be half done, so the phase starts again instead of waiting for a person
            # (unless the run was aborted meanwhile: its rollback is resumed below).
            unbegun = (
                running is not None
                and running.marks_begin  # claimed by a version that writes began_at
                and running.began_at is None
                and run.status == RunStatus.RUNNING
            )
            results: dict[str, str] = {}  # the interrupted attempt's action results
            if running is not None:
                trigger = "not_begun" if unbegun else "interrupted"
                tx.apply(running, trigger, SYSTEM.id, {"owner": old})
            if running is not None and not unbegun:  # what its gate will say it had done
                results = {
                    sid: status
                    for section, sid, status in step_rows.results(tx, running.id)
                    if section == "actions"
                }
            run.owner, run.lease_until = None, None
            run.lease_epoch = (run.lease_epoch or 0) + 1  # fences the dead holder out
            if run.status == RunStatus.ROLLING_BACK:
                run.rollback_started_at = None
            tx.add(run)
            status = run.status
        if status == RunStatus.ROLLING_BACK:
            self._audit_resumed(run_id, owner=old)
            self.spawn(self.execute_rollback, run_id)
            return f"run #{run_id}: rollback resumed"
        if running is None and status == RunStatus.WAITING:  # it held the run for a tick's checks
            resumed = self.resume_tick_checks(run_id, old)
            return f"run #{run_id}: waiting at phase {run.phase_index + 1}{resumed}"
        if running is None:
            self.spawn(self.advance, run_id)
            return f"run #{run_id}: continuing at phase {run.phase_index + 1}"
        phase = self.runbook.phases[running.phase_index]
        if unbegun:
            self.notify.notice(
                run_id,
                f"{old} stopped after claiming phase *{phase.name}* of run #{run_id}, before "
                "any of its actions began: starting it again.",
            )
            self.spawn(self.advance, run_id)
            return f"run #{run_id}: phase {phase.id} had not begun; started again"
        assert running.id is not None
        note = interrupted_note(
            phase, results, began=running.began_at is not None, began_step=running.began_step
        )
        gate_id = self.open_gate(run_id, running.id, phase, passed=False, note=note)
        if gate_id is not None:
            self.notify.run_changed(run_id)
            self.notify.checkpoint(gate_id)
        return f"run #{run_id}: phase {phase.id} interrupted; gate opened"


def interrupted_note(
    phase: PhaseSpec, results: dict[str, str], *, began: bool, began_step: str | None = None
) -> str:
    """What an interrupted phase's gate says of its actions, from what was recorded: their
    results (step id → status) in this attempt, whether its first action began, and which
    action began last (`began_step`; None: not recorded by the version that ran it). Actions
    run one after another, and a failed one ends them."""
    head, check = "the bot stopped while this phase ran", "Check, then Retry the phase or Rollback"
    if not phase.actions:
        return f"{head}, during its checks (it has no actions). {check}"
    failed = [a for a in phase.actions if Status(results.get(a.id, "pass")).blocks_gate]
    if failed:
        return (
            f"{head}, after action *{failed[0].name}* failed (its result is recorded; no "
            f"later action ran). {check}"
        )
    pending = [a for a in phase.actions if a.id not in results]
    if not pending:
        return f"{head}, after its actions had ended (their results are recorded). {check}"
    step, index = pending[0], phase.actions.index(pending[0])
    before = phase.actions[index - 1] if index > 0 else None
    if before is not None and began_step == before.id:
        return (
            f"{head}, after action *{before.name}* ended (its result is recorded) and before "
            f"action *{step.name}* began (it did not run). {check}"
        )
    if began_step == step.id or (before is None and began):  # (began: the first one's mark)
        said = f"during action *{step.name}* (it had begun; no result was recorded)"
    elif before is None:  # claimed by a version that does not mark the first action's start
        said = f"before action *{step.name}* ended (it may have begun)"
    else:  # claimed by a version that marks the first action's start only
        said = (
            f"after action *{before.name}* ended and before action *{step.name}* ended (it may "
            "have begun)"
        )
    return f"{head}, {said}: it may be half done. Check by hand, then Retry the phase or Rollback"
