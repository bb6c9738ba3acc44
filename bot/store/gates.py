"""Gate rows and what is cast at them: votes, manual ticks, the chat message they own."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import col, select

from bot.store.models import Gate, GateStatus, ManualTick, Run, Vote
from bot.store.unit import Tx


def voters(tx: Tx, gate_id: int | None) -> list[str]:
    """Who voted Continue at the gate, in order."""
    return list(
        tx.session.exec(select(Vote.actor).where(Vote.gate_id == gate_id).order_by(col(Vote.id)))
    )


def ticked(tx: Tx, gate_id: int | None) -> set[str]:
    """The manual items ticked at the gate."""
    return set(tx.session.exec(select(ManualTick.item_id).where(ManualTick.gate_id == gate_id)))


def lock(tx: Tx, gate_id: int) -> Gate:
    """The gate row, locked (its run locked first by the caller)."""
    return tx.session.exec(select(Gate).where(Gate.id == gate_id).with_for_update()).one()


def lock_open(tx: Tx, run_id: int) -> Gate | None:
    """The run's open gate, if any, locked (its run locked first by the caller)."""
    return tx.session.exec(
        select(Gate).where(Gate.run_id == run_id, Gate.status == GateStatus.OPEN).with_for_update()
    ).first()


def opened_for(tx: Tx, phase_run_id: int) -> bool:
    """True if a gate was opened for this phase run already."""
    return (
        tx.session.exec(select(Gate.id).where(Gate.phase_run_id == phase_run_id)).first()
        is not None
    )


def set_surface_ref(
    tx: Tx, ref: str | None, *, run_id: int | None, gate_id: int | None, replacing: str | None
) -> str:
    """Records the chat message of a run or gate once (only where none is set yet, or where
    `replacing` is still the one set); returns the ref recorded now."""
    table: type[Run] | type[Gate] = Run if run_id is not None else Gate
    row_id = run_id if run_id is not None else gate_id
    current = col(table.surface_ref)
    tx.session.execute(
        update(table)
        .where(
            col(table.id) == row_id,
            current.is_(None) if replacing is None else current == replacing,
        )
        .values(surface_ref=ref)
    )
    recorded = tx.session.exec(select(current).where(col(table.id) == row_id)).first()
    return str(recorded) if recorded else (ref or "")
