"""A gate's manual ticks as the trail keeps them: the tick rows, the values ticks carried
(their `manual.ticked` audit rows) and which checks of a phase run have a result."""

from __future__ import annotations

from sqlmodel import select

from bot.domain.audit_kinds import AuditKind
from bot.store.models import AuditEvent, ManualTick, StepRun
from bot.store.unit import Tx


def ticked_rows(tx: Tx, run_id: int) -> list[str]:
    """The data (JSON) of every `manual.ticked` audit row of the run, in no set order."""
    return list(
        tx.session.exec(
            select(AuditEvent.data).where(
                AuditEvent.run_id == run_id, AuditEvent.kind == AuditKind.MANUAL_TICKED
            )
        )
    )


def tick(tx: Tx, gate_id: int, item_id: str) -> ManualTick | None:
    """The tick of `item_id` at the gate, if it was ticked."""
    return tx.session.exec(
        select(ManualTick).where(ManualTick.gate_id == gate_id, ManualTick.item_id == item_id)
    ).first()


def checks_with_result(tx: Tx, phase_run_id: int | None) -> set[str]:
    """The ids of the checks that have a result in the phase run."""
    return set(
        tx.session.exec(
            select(StepRun.step_id).where(
                StepRun.phase_run_id == phase_run_id, StepRun.section == "checks"
            )
        )
    )
