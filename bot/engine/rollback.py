"""Executing a rollback: restore (where the failed phase says so), then the rollback steps."""

from __future__ import annotations

import logging

from sqlmodel import select

from bot import audit
from bot.domain import states
from bot.domain.audit_kinds import AuditKind
from bot.engine.core import EngineCore
from bot.models import (
    PhaseRun,
    PhaseStatus,
    Run,
    RunStatus,
)
from bot.surface import SYSTEM
from bot.text import ICONS
from phases.runner import StepOutcome, run_actions

log = logging.getLogger(__name__)


class Rollback(EngineCore):
    def execute_rollback(self, run_id: int) -> None:
        with self.db.session() as s:
            run = s.exec(select(Run).where(Run.id == run_id).with_for_update()).one_or_none()
            if run is None or run.status != RunStatus.ROLLING_BACK:
                return
            running = s.exec(
                select(PhaseRun).where(
                    PhaseRun.run_id == run_id, PhaseRun.status == PhaseStatus.RUNNING
                )
            ).first()
            if running is not None and run.owner not in (None, self.me):
                return  # the executing phase hands over when it reaches its next step
            if run.rollback_started_at is not None and not self._dead(run.owner, run.lease_until):
                return  # another thread or replica executes this rollback
            if running is not None:  # ours, stopped for the rollback
                states.transition(running, "failed")
                running.ended_at = self.now()
                s.add(running)
            run.rollback_started_at = self.now()
            self._take_lease(run)
            s.add(run)
            failed_phase = self.runbook.phases[min(run.phase_index, len(self.runbook.phases) - 1)]
            audit.append(
                s,
                AuditKind.ROLLBACK_STARTED,
                actor=SYSTEM.id,
                run_id=run_id,
                data={
                    "phase": failed_phase.id,
                    "restore": failed_phase.on_fail == "restore_and_rollback",
                },
                at=self.now(),
            )
        self._ensure_heartbeat()
        self.notify.notice(
            run_id,
            f"Rolling back run #{run_id} ({run.rollback_reason}). "
            + (
                "Restoring the database from backup first. "
                if failed_phase.on_fail == "restore_and_rollback"
                else ""
            ),
        )
        ctx, values = self.context(run)

        def record(outcome: StepOutcome) -> None:
            self.record_step(run_id, None, outcome)

        outcomes: list[StepOutcome] = []
        if failed_phase.on_fail == "restore_and_rollback":
            outcomes += run_actions(
                self.runbook.restore, values, ctx, "restore", record, stop_on_failure=False
            )
        outcomes += run_actions(
            self.runbook.rollback, values, ctx, "rollback", record, stop_on_failure=False
        )
        failed = [o.step.id for o in outcomes if o.result.status.blocks_gate]
        with self.db.session() as s:
            run = s.exec(select(Run).where(Run.id == run_id).with_for_update()).one()
            if run.status != RunStatus.ROLLING_BACK:
                return  # another replica finished it (it took over a lapsed lease)
            states.transition(run, "rollback_finished")
            run.active_env, run.ended_at = None, self.now()
            run.owner, run.lease_until = None, None
            s.add(run)
            audit.append(
                s,
                AuditKind.RUN_ROLLED_BACK,
                actor=SYSTEM.id,
                run_id=run_id,
                data={"failed_steps": failed, "steps": len(outcomes)},
                at=self.now(),
            )
        lines = [
            f"{ICONS.get(o.result.status, '•')} {o.section} {o.step.name}: {o.result.evidence}"
            for o in outcomes
        ]
        summary = (
            "Rollback finished with failures in: " + ", ".join(failed) + ". Check them by hand."
            if failed
            else "Rollback finished; every step passed."
        )
        self.notify.notice(run_id, "\n".join([summary, *lines]))
        self.notify.run_changed(run_id)
