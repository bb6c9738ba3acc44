"""After a restart, and when a replica dies: pick up every active run, take over only what a
dead owner left (an interrupted phase gets a Retry/Rollback gate; a rollback is resumed)."""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import col, select

from bot import audit
from bot.db import db_now
from bot.domain import states
from bot.domain.audit_kinds import AuditKind
from bot.engine.tick_resume import TickResume
from bot.models import (
    PhaseRun,
    PhaseStatus,
    Run,
    RunStatus,
)
from bot.surface import SYSTEM

log = logging.getLogger(__name__)


class Recovery(TickResume):
    def recover(self) -> list[str]:
        """Picks up every active run after a restart. Nothing is re-run silently, and a phase
        another live replica executes is left to it."""
        report: list[str] = []
        with self.db.session() as s:
            runs = list(s.exec(select(Run).where(col(Run.active_env).is_not(None))))
            now = db_now(s)
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
        with self.db.session() as s:
            rows = list(
                s.exec(
                    select(Run.id, Run.owner, Run.lease_until).where(
                        col(Run.active_env).is_not(None), col(Run.owner).is_not(None)
                    )
                )
            )
            now = db_now(s)
        done = []
        for run_id, owner, until in rows:
            if run_id is not None and self._dead(owner, until, now):
                line = self._take_over(run_id)
                if line:
                    done.append(line)
        return done

    def _audit_resumed(self, run_id: int, **data: Any) -> None:
        audit.record(
            self.db,
            AuditKind.ROLLBACK_RESUMED,
            actor=SYSTEM.id,
            run_id=run_id,
            data=data,
            at=self.now(),
        )

    def _take_over(self, run_id: int) -> str | None:
        """One replica wins (the run row is locked and the dead owner re-checked)."""
        with self.db.session() as s:
            run = s.exec(select(Run).where(Run.id == run_id).with_for_update()).one_or_none()
            if (
                run is None
                or run.owner is None
                or not self._dead(run.owner, run.lease_until, db_now(s))
            ):
                return None
            old = run.owner.rsplit("#", 1)[0]
            running = s.exec(
                select(PhaseRun).where(
                    PhaseRun.run_id == run_id, PhaseRun.status == PhaseStatus.RUNNING
                )
            ).first()
            if running is not None:
                states.transition(running, "interrupted")
                s.add(running)
                audit.append(
                    s,
                    AuditKind.PHASE_INTERRUPTED,
                    actor=SYSTEM.id,
                    run_id=run_id,
                    data={
                        "phase": running.phase_id,
                        "attempt": running.attempt,
                        "owner": old,
                    },
                    at=self.now(),
                )
            run.owner, run.lease_until = None, None
            run.lease_epoch = (run.lease_epoch or 0) + 1  # fences the dead holder out
            if run.status == RunStatus.ROLLING_BACK:
                run.rollback_started_at = None
            s.add(run)
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
        assert running.id is not None
        note = (
            "the bot stopped while this phase ran; its actions may be half done. "
            "Check by hand, then Retry the phase or Rollback"
        )
        gate_id = self.open_gate(run_id, running.id, phase, passed=False, note=note)
        if gate_id is not None:
            self.notify.run_changed(run_id)
            self.notify.checkpoint(gate_id)
        return f"run #{run_id}: phase {phase.id} interrupted; gate opened"
