"""Step results (`step_run`): what the engine records of each step and asks of them."""

from __future__ import annotations

from sqlmodel import select

from bot.models import StepRun
from bot.store.unit import Tx
from phases.checks.base import Status


def recorded(tx: Tx, phase_run_id: int, section: str, step_id: str) -> bool:
    """True if this step's result of this phase run is recorded already (a retried write
    whose first attempt did commit)."""
    found = tx.session.exec(
        select(StepRun.id).where(
            StepRun.phase_run_id == phase_run_id,
            StepRun.section == section,
            StepRun.step_id == step_id,
        )
    ).first()
    return found is not None


def any_action_ran(tx: Tx, run_id: int) -> bool:
    """True once an action step of the run ran (was not skipped)."""
    acted = tx.session.exec(
        select(StepRun.id).where(
            StepRun.run_id == run_id,
            StepRun.section == "actions",
            StepRun.status != Status.SKIPPED,
        )
    ).first()
    return acted is not None


def results(tx: Tx, phase_run_id: int | None) -> list[tuple[str, str, str]]:
    """(section, step id, status) of every step result of a phase run."""
    return [
        (sec, sid, str(status))
        for sec, sid, status in tx.session.exec(
            select(StepRun.section, StepRun.step_id, StepRun.status).where(
                StepRun.phase_run_id == phase_run_id
            )
        )
    ]
