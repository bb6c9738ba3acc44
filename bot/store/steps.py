"""Step results (`step_run`): what the engine records of each step and asks of them."""

from __future__ import annotations

from sqlmodel import col, select

from bot.store.models import StepRun
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


def latest_actions(tx: Tx, phase_run_id: int, step_ids: list[str]) -> dict[str, StepRun]:
    """The last result in this phase run of each of these action steps, by step id."""
    rows = tx.session.exec(
        select(StepRun)
        .where(
            StepRun.phase_run_id == phase_run_id,
            StepRun.section == "actions",
            col(StepRun.step_id).in_(step_ids),
        )
        .order_by(col(StepRun.id))
    )
    return {r.step_id: r for r in rows}  # a step's last result in this attempt


def latest_check(tx: Tx, phase_run_id: int, check: str) -> StepRun | None:
    """The last result of `check` in this phase run, if any."""
    return tx.session.exec(
        select(StepRun)
        .where(
            StepRun.phase_run_id == phase_run_id,
            StepRun.section == "checks",
            StepRun.step_id == check,
        )
        .order_by(col(StepRun.id).desc())
    ).first()
