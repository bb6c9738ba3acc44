"""Recording step results: the step row, its masked output and its audit row, once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot import metrics
from bot.domain.audit_kinds import AuditKind
from bot.engine import restore_point
from bot.store import step_outputs, steps
from bot.store.models import StepRun
from bot.store.unit import Database, Store, Tx
from bot.surface import SYSTEM
from phases.runbook import Runbook
from phases.runner import StepOutcome
from phases.secrets import Masker


class StepLog:
    """Writes step results; a fenced write goes through `fence` (the lease holder's check)."""

    def __init__(
        self,
        db: Database,
        store: Store,
        runbook: Runbook,
        masker: Masker,
        now: Callable[[], datetime],
        fence: Callable[[Tx, int, str], None],
    ) -> None:
        self.db = db
        self.store = store
        self.runbook = runbook
        self.masker = masker
        self.now = now
        self.fence = fence

    def record(
        self,
        run_id: int,
        phase_run_id: int | None,
        outcome: StepOutcome,
        *,
        fenced: bool = False,
    ) -> None:
        """Records a step result; retried while the database is unavailable, never twice.
        `fenced`: written by the lease holder, only while it still holds the lease (else
        LeaseLost)."""
        tries = 0

        def once() -> None:
            nonlocal tries
            tries += 1
            self.record_once(run_id, phase_run_id, outcome, retry=tries > 1, fenced=fenced)

        self.db.retrying(once, f"run #{run_id}: record step {outcome.step.id}")
        r = outcome.result
        metrics.observe_step(outcome.section, outcome.step.kind, str(r.status), r.duration_ms)

    def record_once(
        self,
        run_id: int,
        phase_run_id: int | None,
        outcome: StepOutcome,
        retry: bool,
        fenced: bool = False,
    ) -> None:
        with self.store.tx() as tx:
            if fenced:
                self.fence(tx, run_id, f"recording step {outcome.step.id}")
            if (
                retry
                and phase_run_id is not None
                and steps.recorded(tx, phase_run_id, outcome.section, outcome.step.id)
            ):
                return  # the attempt whose connection dropped did commit
            self.add(tx, run_id, phase_run_id, outcome)

    def add(
        self, within: Tx | Any, run_id: int, phase_run_id: int | None, outcome: StepOutcome
    ) -> None:
        """A step's result and its audit row, in the caller's transaction."""
        tx = Tx.of(within, self.now)
        r = outcome.result
        step = StepRun(
            run_id=run_id,
            phase_run_id=phase_run_id,
            section=outcome.section,
            step_id=outcome.step.id,
            name=outcome.step.name,
            status=r.status,
            evidence=r.evidence,
            duration_ms=r.duration_ms,
            at=self.now(),
        )
        tx.add(step)
        output = step_outputs.keep(tx, step, r, self.masker.mask)  # what it printed, masked
        tx.audit(
            AuditKind.STEP_RESULT,
            actor=SYSTEM.id,
            run_id=run_id,
            data={
                "section": outcome.section,
                "step": outcome.step.id,
                "status": str(r.status),
                "evidence": r.evidence,
                "duration_ms": r.duration_ms,
                # What a step made that later steps rely on (a backup's path and SHA-256).
                **({"artifact": r.details["artifact"]} if "artifact" in r.details else {}),
                **({"output": output} if output else {}),  # its digest: step_output's text
            },
            at=self.now(),
        )
        if outcome.section == "actions" and phase_run_id is not None and not r.status.blocks_gate:
            restore_point.fix_after_step(
                tx, self.runbook, run_id, phase_run_id, outcome.step, self.now()
            )
